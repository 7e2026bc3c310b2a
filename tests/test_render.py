"""Tests for render/: attention maps to IMAGE / MASK tensors. Needs torch, numpy and Pillow only."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from delayed_negative.render import (
    COLORMAP_NAMES,
    NORMALIZATION_MODES,
    GridLayout,
    Series,
    apply_colormap,
    heatmap_overlay,
    normalize_maps,
    strength_chart,
    upsample_maps,
    word_mask,
    word_step_grid,
)
from delayed_negative.render.chart import AXIS_COLOUR, MARKER_COLOUR, SERIES_COLOURS
from delayed_negative.render.colormaps import hex_to_rgb
from delayed_negative.render.convert import to_uint8
from delayed_negative.render.dashes import draw_dashed_line
from delayed_negative.render.grid import ABSENT_FILL, ABSENT_SLASH, BACKGROUND, TEXT_COLOUR
from delayed_negative.render.overlay import LABEL_BOX, LABEL_TEXT
from delayed_negative.render.text import fit_text, label_font, text_width
from delayed_negative.render.ticks import format_tick, step_ticks, value_ticks
from PIL import Image, ImageDraw

NAN = float("nan")
PIXEL = 1.0 / 255.0 + 1e-6  # one uint8 step: what a trip through PIL may cost


def pixel(image: torch.Tensor, x: float, y: float) -> torch.Tensor:
    return image[0, int(y), int(x)]


def runs(flags: torch.Tensor) -> list[tuple[int, int]]:
    """(start, length) of each run of True in a 1-D bool tensor."""
    found, start = [], None
    for index, flag in enumerate(flags.tolist() + [False]):
        if flag and start is None:
            start = index
        elif not flag and start is not None:
            found.append((start, index - start))
            start = None
    return found


def colour_pixels(image: torch.Tensor, colour: tuple[int, int, int]) -> torch.Tensor:
    """[H, W] bool: pixels of `image` exactly equal to the uint8 `colour`."""
    target = torch.tensor(colour, dtype=torch.float32) / 255.0
    return ((image[0] - target).abs() < 0.5 / 255.0).all(dim=-1)


# --- colormaps ---------------------------------------------------------------------------------

def test_viridis_endpoints_and_middle_match_matplotlib():
    colours = apply_colormap(torch.tensor([0.0, 0.5, 1.0]), "viridis")
    assert torch.allclose(colours[0], torch.tensor(hex_to_rgb("#440154")), atol=PIXEL)
    assert torch.allclose(colours[2], torch.tensor(hex_to_rgb("#fde725")), atol=PIXEL)
    assert torch.allclose(colours[1], torch.tensor([0.128, 0.567, 0.551]), atol=0.02)


def test_colormap_keeps_shape_clamps_and_passes_nan():
    values = torch.tensor([[0.25, -3.0], [7.0, NAN]])
    colours = apply_colormap(values, "gray")
    assert colours.shape == (2, 2, 3)
    assert torch.allclose(colours[0, 0], torch.full((3,), 0.25))
    assert torch.equal(colours[0, 1], torch.zeros(3)) and torch.equal(colours[1, 0], torch.ones(3))
    assert torch.isnan(colours[1, 1]).all()


@pytest.mark.parametrize("name", COLORMAP_NAMES)
def test_every_colormap_stays_in_range(name):
    colours = apply_colormap(torch.linspace(0, 1, 101), name)
    assert colours.min() >= 0 and colours.max() <= 1
    assert not torch.allclose(colours[0], colours[-1])


def test_known_ends_of_other_colormaps():
    ends = apply_colormap(torch.tensor([0.0, 1.0]), "turbo")
    turbo_ends = torch.tensor([[0.18995, 0.07176, 0.23217], [0.47960, 0.01583, 0.01055]])
    assert torch.allclose(ends, turbo_ends, atol=PIXEL)
    assert torch.allclose(apply_colormap(torch.tensor(0.5), "jet"), torch.tensor([0.5, 1.0, 0.5]), atol=PIXEL)


def test_unknown_colormap_lists_the_valid_names():
    with pytest.raises(ValueError, match="viridis.*magma"):
        apply_colormap(torch.zeros(2), "rainbow")


# --- normalisation -----------------------------------------------------------------------------

def two_words_two_steps() -> torch.Tensor:
    """[steps=2, words=2, 2, 2]; word 1 is ten times weaker, step 1 twice as strong."""
    base = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
    return torch.stack([torch.stack([base, base / 10]), torch.stack([2 * base, 2 * base / 10])])


def test_per_map_stretches_every_map_to_0_1():
    out = normalize_maps(two_words_two_steps(), "per map")
    assert torch.allclose(out.amin(dim=(2, 3)), torch.zeros(2, 2))
    assert torch.allclose(out.amax(dim=(2, 3)), torch.ones(2, 2))
    assert torch.allclose(out[0, 0], torch.tensor([[0.0, 0.25], [0.5, 1.0]]))


def test_per_word_over_steps_keeps_growth_over_steps():
    out = normalize_maps(two_words_two_steps(), "per word over steps")
    for word in range(2):
        assert out[:, word].min() == 0 and torch.isclose(out[:, word].max(), torch.tensor(1.0))
        # step 0 peaks at 5 of the word's 1..10 range
        assert torch.isclose(out[0, word].max(), torch.tensor(4 / 9))


def test_global_keeps_words_comparable():
    out = normalize_maps(two_words_two_steps(), "global")
    assert out.min() == 0 and torch.isclose(out.max(), torch.tensor(1.0))
    assert out[:, 1].max() < 0.1  # the weak word stays weak


def test_nan_maps_stay_nan_and_are_ignored_in_min_max():
    maps = two_words_two_steps()
    maps[0, 1] = NAN  # word 1 absent at step 0
    for mode in NORMALIZATION_MODES:
        out = normalize_maps(maps, mode)
        assert torch.isnan(out[0, 1]).all()
        assert not torch.isnan(out[1]).any() and not torch.isnan(out[0, 0]).any()
    out = normalize_maps(maps, "per word over steps")
    assert out[1, 1].min() == 0 and out[1, 1].max() == 1


def test_constant_maps_become_zeros():
    maps = torch.full((2, 1, 3, 3), 0.7)
    maps[1, 0] = NAN
    for mode in NORMALIZATION_MODES:
        out = normalize_maps(maps, mode)
        assert torch.equal(out[0, 0], torch.zeros(3, 3))
        assert torch.isnan(out[1, 0]).all()


def test_unknown_normalization_lists_the_modes():
    with pytest.raises(ValueError, match="choose one of: per map, per word over steps, global"):
        normalize_maps(torch.zeros(1, 1, 2, 2), "per pixel")
    with pytest.raises(ValueError, match=r"\[steps, words, height, width\], got \(2, 2\)"):
        normalize_maps(torch.zeros(2, 2), "per map")


# --- resize ------------------------------------------------------------------------------------

def test_upsample_keeps_leading_dims_and_matches_bilinear():
    maps = torch.rand(2, 3, 4, 4)
    out = upsample_maps(maps, 8, 12)
    assert out.shape == (2, 3, 8, 12)
    expected = F.interpolate(maps[1, 2][None, None], size=(8, 12), mode="bilinear", align_corners=False)
    assert torch.allclose(out[1, 2], expected[0, 0])
    assert torch.allclose(upsample_maps(torch.full((5, 5), 0.3), 7, 9), torch.full((7, 9), 0.3))
    assert upsample_maps(torch.zeros(0, 3, 4, 4), 8, 12).shape == (0, 3, 8, 12)  # no maps: none, at the size
    with pytest.raises(ValueError, match=r"\[\.\.\., height, width\], got \(4,\)"):
        upsample_maps(torch.zeros(4), 8, 8)


def test_colours_outside_0_to_1_are_clamped_not_wrapped():
    assert to_uint8(torch.tensor([[-0.5, 0.5, 1.5]])).tolist() == [[0, 128, 255]]


def test_dashes_are_8_pixels_every_13_and_keep_their_rhythm_round_a_corner():
    def inked(points):
        picture = Image.new("RGB", (120, 120), (255, 255, 255))
        draw_dashed_line(ImageDraw.Draw(picture), points, (0, 0, 0))
        return torch.from_numpy(np.asarray(picture)[..., 0] == 0)

    straight = inked([(5, 10), (105, 10)])
    assert straight.any(dim=1).nonzero().flatten().tolist() == [10, 11]  # 2 pixels wide
    assert runs(straight[10]) == [(5 + 13 * k, 9) for k in range(8)]  # 8 px and the end pixel, every 13 px
    bent = inked([(10, 5), (10, 25), (50, 25), (50, 45)])
    assert runs(bent[:, 10]) == [(5, 9), (18, 9)]
    assert runs(bent[25]) == [(10, 2), (16, 9), (29, 9), (42, 9)]  # the dash begun on the way down ends here
    assert runs(bent[:, 50]) == [(25, 2), (30, 9), (43, 3)]  # and round the second: 60 px before it, a gap from 60


# --- grid --------------------------------------------------------------------------------------

def test_grid_layout_size_cell_colours_and_absent_cells():
    steps, words, cell = 3, 2, 32
    values = torch.tensor([[0.0, 0.9], [0.3, NAN], [0.6, 1.0]])  # [steps, words]
    maps = values[:, :, None, None].expand(steps, words, 4, 4).clone()
    image = word_step_grid(maps, ["cat", "blurry"], [f"step {i}" for i in range(steps)], "viridis", cell)

    layout = GridLayout(steps, words, cell)
    assert image.shape == (1, layout.height, layout.width, 3) == (1, 20 + 2 * 34, 64 + 3 * 34, 3)
    assert image.dtype == torch.float32 and image.min() >= 0 and image.max() <= 1
    for step in range(steps):
        for word in range(words):
            x, y = layout.cell_origin(step, word)
            if math.isnan(values[step, word]):
                grey = torch.tensor(ABSENT_FILL) / 255.0
                assert torch.allclose(pixel(image, x + 3, y + 3), grey, atol=PIXEL)
                slash = torch.tensor(ABSENT_SLASH) / 255.0
                assert torch.allclose(pixel(image, x + cell / 2, y + cell / 2 - 1), slash, atol=PIXEL)
            else:
                expected = apply_colormap(values[step, word], "viridis")
                assert torch.allclose(pixel(image, x + cell / 2, y + cell / 2), expected, atol=PIXEL)
    # labels: dark text in the word column and in the step header
    assert (image[0, layout.header_height:, :layout.label_width].sum(-1) < 1.5).any()
    assert (image[0, :layout.header_height, layout.label_width:].sum(-1) < 1.5).any()


def ink_box(ink: torch.Tensor) -> tuple[float, float, int, int]:
    """Centre (x, y) and left and right column of the True pixels of a [H, W] mask."""
    rows, columns = ink.nonzero(as_tuple=True)
    return float(columns.float().mean()), float(rows.float().mean()), int(columns.min()), int(columns.max())


def test_grid_cells_gaps_slashes_and_labels_are_where_the_layout_says():
    steps, words, long_label = 3, 2, "an-extremely-long-word-label-here"
    values = torch.tensor([[0.2, 0.9], [0.5, NAN], [0.7, 1.0]])
    maps = values[:, :, None, None].expand(steps, words, 4, 4).clone()
    maps[2, 1, 0, 0] = NAN  # one pixel absent: grey where it reaches, the cell's colour elsewhere
    image = word_step_grid(maps, ["cat", long_label], ["step 0", "step 1", "step 2"], "viridis")  # the default cell, 96

    layout = GridLayout(steps, words, 96)
    # In numbers: labels two cells wide, the header two font sizes (96 // 6) high, cells 2 px apart.
    assert (layout.label_width, layout.header_height, layout.cell_origin(2, 1)) == (192, 32, (192 + 2 * 98, 32 + 98))
    assert image.shape == (1, 32 + 2 * 98, 192 + 3 * 98, 3)
    background, dark = colour_pixels(image, BACKGROUND), colour_pixels(image, TEXT_COLOUR) | (image[0].sum(-1) < 1.0)
    for step in range(steps):
        for word in range(words):
            x, y = layout.cell_origin(step, word)
            assert background[y:y + 98, x + 96:x + 98].all() and background[y + 96:y + 98, x:x + 98].all()
            cell = image[0, y:y + 96, x:x + 96]
            if (step, word) == (1, 1):  # absent: grey, with a 2-pixel slash from corner to corner
                grey, slash = (colour_pixels(image, colour)[y:y + 96, x:x + 96] for colour in (ABSENT_FILL, ABSENT_SLASH))
                assert (grey | slash).all() and slash[95, 0] and slash[0, 94] and slash[1, 95]
                assert slash[1:-1].sum(dim=1).tolist() == [3] * 94
            elif (step, word) == (2, 1):
                assert torch.allclose(cell[0, 0], torch.tensor(ABSENT_FILL) / 255.0, atol=0.5 / 255.0)
                assert torch.allclose(cell[95, 95], apply_colormap(torch.tensor(1.0), "viridis"), atol=PIXEL)
            else:
                assert (cell - apply_colormap(values[step, word], "viridis")).abs().max() <= PIXEL
    for step in range(steps):  # step labels centred over their column, in a 16 px font
        x, _ = layout.cell_origin(step, 0)
        centre_x, centre_y, _, _ = ink_box(dark[:32, x:x + 96])
        assert abs(centre_x - 48) < 3 and abs(centre_y - 16) < 2
        rows = dark[:32, x:x + 96].any(dim=1).nonzero()
        assert int(rows.max() - rows.min()) >= 10  # a 16 px font (the default would be 10)
    padding, font = 8, label_font(16)
    for word, label in enumerate(["cat", long_label]):  # word labels left-aligned, centred on their row
        _, y = layout.cell_origin(0, word)
        _, centre_y, left, right = ink_box(dark[y:y + 96, :192])
        assert abs(centre_y - 48) < 2.5 and padding <= left <= padding + 2
        assert abs((right - left + 1) - text_width(fit_text(label, font, 192 - 2 * padding), font)) <= 2
    assert fit_text(long_label, font, 192 - 2 * padding).endswith("...")
    assert not dark[:32, :192].any() and not dark[32:, 192:].any()


def test_grid_cells_of_16_pixels_are_the_smallest():
    assert word_step_grid(torch.zeros(1, 1, 4, 4), ["cat"], ["s0"], "viridis", 16).shape == (1, 20 + 18, 32 + 18, 3)
    with pytest.raises(ValueError, match="cell_size 15 is too small"):
        word_step_grid(torch.zeros(1, 1, 4, 4), ["cat"], ["s0"], "viridis", 15)
    with pytest.raises(ValueError, match=r"\[steps, words, height, width\], got \(1, 4, 4\)"):
        word_step_grid(torch.zeros(1, 4, 4), ["cat"], ["s0"], "viridis")


def test_grid_wants_one_label_per_word_and_step():
    with pytest.raises(ValueError, match="one label each"):
        word_step_grid(torch.zeros(2, 2, 4, 4), ["cat"], ["step 0", "step 1"], "viridis")


# --- overlay -----------------------------------------------------------------------------------

@pytest.mark.parametrize("images, heat, opacity, message", [
    (torch.zeros(1, 8, 8, 4), torch.zeros(1, 8, 8), 0.5, r"images shaped \[batch, height, width, 3\], got \(1, 8, 8, 4\)"),
    (torch.zeros(8, 8, 3), torch.zeros(1, 8, 8), 0.5, r"got \(8, 8, 3\)"),
    (torch.zeros(1, 8, 8, 3), torch.zeros(8, 8), 0.5, r"heat shaped \[batch, height, width\], got \(8, 8\)"),
    (torch.zeros(2, 8, 8, 3), torch.zeros(3, 1, 8), 0.5, "2 images but 3 heat maps; give one heat map per image"),
    (torch.zeros(1, 8, 8, 3), torch.zeros(1, 8, 8), 1.5, "opacity 1.5 must be between 0 and 1"),
])
def test_overlay_refuses_what_it_cannot_draw(images, heat, opacity, message):
    with pytest.raises(ValueError, match=message):
        heatmap_overlay(images, heat, "jet", opacity)


def test_overlay_heat_outside_0_to_1_counts_as_its_nearest_end():
    images = torch.full((1, 8, 8, 3), 0.5)
    hot = heatmap_overlay(images, torch.ones(1, 8, 8), "jet", 0.7)
    cold = heatmap_overlay(images, torch.zeros(1, 8, 8), "jet", 0.7)
    assert torch.equal(heatmap_overlay(images, torch.full((1, 8, 8), 2.0), "jet", 0.7), hot)
    assert torch.equal(heatmap_overlay(images, torch.full((1, 8, 8), -1.0), "jet", 0.7), cold)


def test_overlay_with_zero_opacity_returns_the_image():
    images = torch.rand(2, 32, 48, 3)
    out = heatmap_overlay(images, torch.rand(2, 8, 12), "jet", 0.0)
    assert torch.equal(out, images)


def test_overlay_tints_only_the_hot_spot():
    images = torch.full((1, 64, 64, 3), 0.5)
    heat = torch.zeros(1, 8, 8)
    heat[0, :4, :4] = 1.0
    out = heatmap_overlay(images, heat, "inferno", 0.8)
    hot, cold = out[0, 12, 12], out[0, 52, 52]
    assert hot[0] > 0.85 and hot[1] > 0.85 and hot[2] < hot[1]  # inferno's pale yellow
    assert torch.equal(cold, images[0, 52, 52])


def test_overlay_repeats_a_single_image_and_writes_the_label():
    images = torch.full((1, 64, 64, 3), 0.5)
    out = heatmap_overlay(images, torch.zeros(3, 8, 8), "magma", 0.5, label="cat")
    assert out.shape == (3, 64, 64, 3)
    assert (out[:, :4, :4] < 0.2).all()  # dark label box in the corner
    assert torch.equal(out[:, 40:, 40:], images[:, 40:, 40:].expand(3, -1, -1, -1))


@pytest.mark.parametrize("height, font_size, padding", [(64, 12, 3), (480, 20, 5), (500, 20, 5)])
def test_overlay_label_is_its_text_on_a_dark_box_padded_on_every_side(height, font_size, padding):
    label = "/blurry background"  # "/" reaches left of where the text is placed
    images = torch.full((1, height, 256, 3), 0.5)
    out = heatmap_overlay(images, torch.zeros(1, 8, 8), "magma", 0.5, label=label)
    changed = (out[0] != 0.5).any(dim=-1)
    box_rows, box_columns = changed.nonzero(as_tuple=True)
    box_height, box_width = int(box_rows.max()) + 1, int(box_columns.max()) + 1
    assert int(box_rows.min()) == 0 and int(box_columns.min()) == 0 and changed[:box_height, :box_width].all()
    assert colour_pixels(out, LABEL_BOX)[0, 0] and torch.equal(out.amax(dim=(0, 1, 2)), torch.tensor(LABEL_TEXT) / 255.0)
    text_rows, text_columns = (out[0] > 0.5).all(dim=-1).nonzero(as_tuple=True)  # the light text on the dark box
    left, top = int(text_columns.min()), int(text_rows.min())
    right, bottom = box_width - 1 - int(text_columns.max()), box_height - 1 - int(text_rows.max())
    assert max(abs(margin - padding) for margin in (left, top, right, bottom)) <= 2  # ink within its box
    assert box_width == text_width(label, label_font(font_size)) + 2 * padding


# --- chart -------------------------------------------------------------------------------------

def busiest_row(image: torch.Tensor, colour) -> torch.Tensor:
    mask = colour_pixels(image, colour)
    return mask[mask.sum(dim=1).argmax()]


def test_chart_size_solid_dashed_and_nan_gap():
    steps = 10
    gap = torch.full((steps,), 0.75)
    gap[4:6] = NAN
    series = [
        Series("cat", torch.full((steps,), 0.5)),
        Series("blurry", torch.full((steps,), 0.25), "unconditional"),
        Series("sofa", gap),
        Series("ceiling", torch.full((steps,), 1.0)),
    ]
    image = strength_chart(series, "attention per step", width=640, height=400)
    assert image.shape == (1, 400, 640, 3)

    solid = [length for _, length in runs(busiest_row(image, SERIES_COLOURS[0])) if length > 2]
    dashed = [length for _, length in runs(busiest_row(image, SERIES_COLOURS[1])) if length > 2]
    broken = [length for _, length in runs(busiest_row(image, SERIES_COLOURS[2])) if length > 2]
    assert len(solid) == 1 and solid[0] > 300
    assert len(dashed) >= 15 and max(dashed) < 15
    assert len(broken) == 2


def line_rows(image: torch.Tensor, colour) -> tuple[int, int, int]:
    """The row holding most of `colour`, and the first and last column of that colour in it."""
    row = busiest_row(image, colour)
    columns = row.nonzero().flatten()
    return int(colour_pixels(image, colour).sum(dim=1).argmax()), int(columns.min()), int(columns.max())


def test_chart_lines_sit_at_their_values_between_the_axes_with_a_legend_row_each():
    steps = 10
    series = [Series("half", torch.full((steps,), 0.5)), Series("one", torch.full((steps,), 1.0)),
              Series("zero", torch.zeros(steps), "unconditional")]
    image = strength_chart(series, "attention per step", width=640, height=400)
    axis = colour_pixels(image, AXIS_COLOUR)
    left = int(axis.sum(dim=0).argmax())  # the value axis: the longest run of the axis colour
    (half, half_from, half_to), (one, one_from, one_to), (zero, zero_from, zero_to) = (
        line_rows(image, SERIES_COLOURS[index]) for index in range(3))
    assert abs(zero - int(axis[:, left].nonzero().max()) + 4) <= 1  # 0 on the step axis (ticks reach 4 px below)
    assert abs(half - (one + zero) / 2) <= 1 and zero - one > 200
    assert half_from == one_from == zero_from and abs(half_from - left) <= 1
    assert half_to == one_to and abs(zero_to - one_to) <= 8  # the dashed line may end in a gap
    legend = [colour_pixels(image, SERIES_COLOURS[index])[:, one_to + 10:].nonzero() for index in range(3)]
    assert all(len(swatch) for swatch in legend), "a legend row per series, right of the plot"
    tops = [int(swatch[:, 0].min()) for swatch in legend]
    assert tops[0] < tops[1] < tops[2] and tops[1] - tops[0] == tops[2] - tops[1]


def test_chart_values_start_from_0_and_a_flat_chart_still_has_a_scale():
    image = strength_chart([Series("two", torch.full((6,), 2.0)), Series("three", torch.full((6,), 3.0))], "")
    axis = colour_pixels(image, AXIS_COLOUR)
    bottom = int(axis[:, int(axis.sum(dim=0).argmax())].nonzero().max()) - 4
    two, three = (line_rows(image, SERIES_COLOURS[index])[0] for index in range(2))
    assert abs((bottom - two) / (bottom - three) - 2 / 3) < 0.02
    flat = strength_chart([Series("nothing", torch.zeros(6))], "")
    assert colour_pixels(flat, SERIES_COLOURS[0]).sum() > 100


def test_chart_guidance_marks_shade_the_unguided_steps_and_draw_cfg_to_scale():
    from delayed_negative.render.guidance_marks import CFG_COLOUR, UNGUIDED_LABEL, UNGUIDED_SHADE

    cfg = torch.tensor([1.0, 1.0, 7.0, 7.0, 7.0, 7.0, 7.0, 1.0])  # steps 0-1 and 7 without guidance
    image = strength_chart([Series("cat", torch.full((8,), 0.5))], "", width=640, height=400, cfg=cfg)
    axis = colour_pixels(image, AXIS_COLOUR)
    left = int(axis.sum(dim=0).argmax())
    _, _, right = line_rows(image, SERIES_COLOURS[0])  # the series spans the plot: steps 0 to 7
    top, bottom = int(axis[:, left].nonzero().min()), int(axis[:, left].nonzero().max()) - 4

    def x_of(step):
        return left + (right - left) * step / 7

    shaded = colour_pixels(image, UNGUIDED_SHADE).any(dim=0)
    ends = [end for start, length in runs(shaded) if length > 3 for end in (start, start + length - 1)]
    assert ends == pytest.approx([left, x_of(1.5), x_of(6.5), right], abs=2)  # half a step either side, cut at the plot
    label = colour_pixels(image, UNGUIDED_LABEL)[top:bottom].any(dim=0).nonzero().flatten()
    assert len(label) and label.min() > left and label.max() < x_of(1.5)  # only where it fits
    cfg_line = colour_pixels(image, CFG_COLOUR)
    for step, value in ((0.5, 1.0), (4, 7.0)):  # the highest cfg at 90% of the plot's height, 0 at the bottom
        rows = cfg_line[:, round(x_of(step))].nonzero().flatten().float()
        assert abs(rows.mean() - (bottom - 0.9 * (bottom - top) * value / 7.0)) <= 3


def test_chart_draws_lone_points_as_dots_and_places_negative_values_below_0():
    lone = torch.full((8,), NAN)
    lone[3] = 0.5  # present at one step only: no line to draw, a dot
    series = [Series("up", torch.full((8,), 0.5)), Series("down", torch.full((8,), -0.5)),
              Series("zero", torch.zeros(8)), Series("lone", lone)]
    image = strength_chart(series, "", width=640, height=400)
    (up, _, _), (down, _, _), (zero, _, _) = (line_rows(image, SERIES_COLOURS[index]) for index in range(3))
    assert abs((up + down) / 2 - zero) <= 1 and down - up > 150  # -0.5 as far below 0 as 0.5 above it
    assert (colour_pixels(image, SERIES_COLOURS[0]).sum(dim=1) > 300).sum() == 2  # lines 2 pixels wide
    dot = colour_pixels(image, SERIES_COLOURS[3])
    rows, columns = dot[:, :int(busiest_row(image, SERIES_COLOURS[0]).nonzero().max())].nonzero(as_tuple=True)
    assert 9 <= len(rows) <= 25 and int(rows.max() - rows.min()) <= 4 and abs(float(rows.float().mean()) - up) <= 1.5
    _, left, right = line_rows(image, SERIES_COLOURS[0])
    assert abs(float(columns.float().mean()) - (left + (right - left) * 3 / 7)) <= 1.5  # at step 3 of 0-7


def test_chart_legend_rows_that_do_not_fit_are_counted():
    series = [Series(f"word {index}", torch.full((6,), index / 10), "unconditional" if index == 1 else "positive")
              for index in range(9)]
    image = strength_chart(series, "", width=400, height=200)
    _, _, plot_right = line_rows(image, SERIES_COLOURS[0])
    legend = image[:, :, plot_right + 8:]
    shown = [index for index in range(9) if colour_pixels(legend, SERIES_COLOURS[index]).any()]
    assert shown == list(range(len(shown))) and 2 <= len(shown) < 9
    dashed = busiest_row(legend, SERIES_COLOURS[1])
    assert len(runs(dashed)) >= 2  # the unconditional branch's swatch is dashed, the others solid
    assert len(runs(busiest_row(legend, SERIES_COLOURS[0]))) == 1
    last_swatch = int(colour_pixels(legend, SERIES_COLOURS[shown[-1]]).nonzero()[:, 0].max())
    more = (legend[0, last_swatch + 4:].sum(dim=-1) < 1.0).any(dim=1)  # "+N more" in dark text below
    assert more.any()


@pytest.mark.parametrize("width, height", [(319, 200), (320, 199)])
def test_chart_smaller_than_320_by_200_is_refused(width, height):
    assert strength_chart([], "", width=320, height=200).shape == (1, 200, 320, 3)
    with pytest.raises(ValueError, match=f"Chart size {width}x{height} is too small; use at least 320x200"):
        strength_chart([], "", width=width, height=height)


def test_chart_marker_sits_where_the_negative_line_starts():
    steps, start = 12, 5
    negative = torch.full((steps,), NAN)
    negative[start:] = torch.linspace(0.1, 0.9, steps - start)
    series = [Series("cat", torch.linspace(0.2, 0.6, steps)), Series("blurry", negative, "unconditional")]
    image = strength_chart(series, "Fig. 1", marker_step=start)

    marker = colour_pixels(image, MARKER_COLOUR)
    column = int(marker.sum(dim=0).argmax())
    covered = int(marker[:, column].sum())
    assert 100 < covered < 0.9 * image.shape[1]  # a long but dashed vertical line
    negative_columns = colour_pixels(image, SERIES_COLOURS[1])[:, : image.shape[2] * 2 // 3].any(dim=0)
    assert abs(int(negative_columns.nonzero().min()) - column) <= 3

    plain = strength_chart(series, "Fig. 1")
    assert colour_pixels(plain, MARKER_COLOUR).sum(dim=0).max() < 20


def test_chart_without_series_and_bad_branch():
    assert strength_chart([], "nothing recorded").shape == (1, 432, 768, 3)
    with pytest.raises(ValueError, match="unconditional"):
        Series("cat", torch.zeros(3), "negative")


def test_ticks_are_round_numbers():
    assert value_ticks(0.0, 0.83) == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert step_ticks(9) == list(range(10)) and step_ticks(29) == [0, 5, 10, 15, 20, 25, 30]


@pytest.mark.parametrize("low, high, ticks", [
    (0.0, 1.0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),  # a tick on the top value: no tick beyond it
    (-0.3, 0.9, [-0.4, -0.2, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),  # 1.2 in at most 6 intervals of 1, 2 or 5 x 10^n
    (0.0, 12.0, [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0]),  # exactly 6 intervals of 2
    (0.0, 7.0, [0.0, 2.0, 4.0, 6.0, 8.0]),  # 7 would need 7 intervals of 1
    (0.0, 9.5, [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]),
    (0.0, 55.0, [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]),  # 9.2 per interval: the next power of ten
    (2.0, 2.0, [2.0, 3.0]),  # no span: a unit step, two ticks
])
def test_value_ticks_enclose_the_range_in_at_most_six_round_intervals(low, high, ticks):
    assert value_ticks(low, high) == pytest.approx(ticks)


@pytest.mark.parametrize("value, step, text", [(0.4, 0.2, "0.4"), (0.25, 0.05, "0.25"), (2.0, 1.0, "2"),
                                               (20.0, 10.0, "20"), (3.0, 0.0, "3")])
def test_tick_labels_have_just_the_decimals_their_step_needs(value, step, text):
    assert format_tick(value, step) == text


def test_step_ticks_take_at_most_ten_intervals():
    assert step_ticks(10) == list(range(11)) and step_ticks(11) == [0, 2, 4, 6, 8, 10, 12]


def test_fit_text_cuts_with_an_ellipsis_only_what_does_not_fit():
    font = label_font(16)
    assert fit_text("glasses", font, text_width("glasses", font)) == "glasses"  # exactly as wide: kept
    assert fit_text("glasses", font, text_width("glass...", font)) == "glass..."  # the ellipsis exactly fits
    assert fit_text("glasses", font, text_width("glass...", font) - 1) == "glas..."
    assert fit_text("glasses", font, 2) == ""  # not even the ellipsis fits


# --- mask --------------------------------------------------------------------------------------

def quadrant_maps() -> torch.Tensor:
    """[steps=4, 8, 8]: the word looks top-left at steps 0-1, bottom-right at steps 2-3."""
    maps = torch.zeros(4, 8, 8)
    maps[:2, :4, :4] = 1.0
    maps[2:, 4:, 4:] = 1.0
    return maps


def test_word_mask_picks_the_region_of_the_step_range():
    early = word_mask(quadrant_maps(), 0, 1, 64, 64, None)
    late = word_mask(quadrant_maps(), 2, 3, 64, 64, None)
    assert early.shape == (1, 64, 64) and early.dtype == torch.float32
    assert early[0, 10, 10] == 1 and early[0, 54, 54] == 0
    assert late[0, 10, 10] == 0 and late[0, 54, 54] == 1
    assert early.min() == 0 and early.max() == 1


def test_word_mask_ignores_absent_steps_and_thresholds():
    maps = quadrant_maps()
    maps[1] = NAN
    assert torch.equal(word_mask(maps, 0, 1, 32, 32, None), word_mask(maps, 0, 0, 32, 32, None))
    binary = word_mask(quadrant_maps(), 0, 3, 32, 32, 0.5)
    assert set(binary.unique().tolist()) == {0.0, 1.0}
    assert binary[0, 5, 5] == 1 and binary[0, 26, 26] == 1 and binary[0, 5, 26] == 0


def test_word_mask_stretches_the_mean_from_its_lowest_to_its_highest_value():
    maps = torch.full((2, 4, 4), 0.2)
    maps[0, :, 2:] = 0.6  # the mean: 0.2 on the left half, 0.4 on the right
    mask = word_mask(maps, 0, 1, 4, 4, None)
    assert torch.allclose(mask[0, :, :2], torch.zeros(4, 2)) and torch.allclose(mask[0, :, 2:], torch.ones(4, 2))
    assert torch.equal(word_mask(maps, 0, 1, 4, 4, 1.0), mask.round())  # a threshold is reached at equality


@pytest.mark.parametrize("maps", [torch.full((3, 4, 4), NAN), torch.full((3, 4, 4), 0.7)], ids=["absent", "even"])
def test_word_mask_of_an_absent_or_even_word_is_empty(maps):
    assert torch.equal(word_mask(maps, 0, 2, 8, 8, None), torch.zeros(1, 8, 8))


def test_word_mask_wants_one_words_maps():
    with pytest.raises(ValueError, match=r"\[steps, height, width\], got \(2, 3, 4, 4\)"):
        word_mask(torch.zeros(2, 3, 4, 4), 0, 1, 8, 8)


@pytest.mark.parametrize("first, last", [(2, 1), (-1, 2), (0, 4)])
def test_word_mask_rejects_bad_ranges(first, last):
    with pytest.raises(ValueError, match=r"0\.\.3"):
        word_mask(quadrant_maps(), first, last, 16, 16, None)
