"""The attention view nodes, from maps with known values, checked on what they output.

Each node runs as ComfyUI runs it (its execute), on an AttentionMaps whose every value is
known, and the test asserts which rows, steps, labels, batch item, marker and words end up in
the pixels: computed here by hand, then compared with the picture the node made.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from delayed_negative import render
from delayed_negative.attention.maps import AttentionMaps, Track
from delayed_negative.nodes.attention_maps import (AttentionChart, AttentionGrid, AttentionMask, AttentionOverlay,
                                                   negative_start, parse_steps)
from delayed_negative.nodes.image_grid import LabeledImageGrid
from delayed_negative.render.labelled_grid import GAP
from delayed_negative.render.grid import ABSENT_FILL, GridLayout
from delayed_negative.render.convert import to_uint8
from delayed_negative.render.text import draw_text, fit_text, label_font, text_height

NAN = float("nan")
PIXEL = 1.0 / 255.0 + 1e-6
TRACKS = (Track("positive", "positive", "man"), Track("positive", "positive", "photo"),
          Track("unconditional", "negative", "mustache"), Track("unconditional", "empty", "<end>"))
STEPS, BATCH, HEIGHT, WIDTH = 5, 2, 4, 6
NEGATIVE_FROM = 2  # the negative's words appear at step 2, the empty prompt's <end> before it


def level(step, track, batch):
    """The value of every pixel of one constant map."""
    return 0.05 + 0.01 * step + 0.1 * track + 0.4 * batch


def present(step, track):
    prompt = TRACKS[track].prompt
    return not (prompt == "negative" and step < NEGATIVE_FROM or prompt == "empty" and step >= NEGATIVE_FROM)


def constant_maps(tracks=TRACKS):
    maps = torch.full((STEPS, len(tracks), BATCH, HEIGHT, WIDTH), NAN)
    for step in range(STEPS):
        for track in range(len(tracks)):
            for batch in range(BATCH):
                if present(step, track):
                    maps[step, track, batch] = level(step, track, batch)
    return AttentionMaps(tuple(tracks), maps, tuple(float(14 - 3 * s) for s in range(STEPS)))


# --- parse_steps ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("all", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]), (" ALL ", list(range(15))), ("", list(range(15))),
    ("0, 5, 10-14", [0, 5, 10, 11, 12, 13, 14]), ("3", [3]), ("3-3", [3]), ("14, 2", [14, 2]), ("1 - 2", [1, 2]),
])
def test_parse_steps(text, expected):
    assert parse_steps(text, 15) == expected


@pytest.mark.parametrize("text, message", [
    ("five", "'five' is not a step"), ("2-x", "'2-x' is not a step"), ("-1", "'-1' is not a step"),
    ("3, 15", r"Steps \[15\] were not recorded; this run has steps 0 to 14"),
    ("13-16", r"Steps \[15, 16\] were not recorded"),
])
def test_parse_steps_names_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_steps(text, 15)


# --- grid -------------------------------------------------------------------------------------------------------

def grid(maps, words, steps, batch_index, normalization="global", cell=32):
    return AttentionGrid.execute(attention_maps=maps, words=words, steps=steps, batch_index=batch_index,
                                 colormap="gray", normalization=normalization, cell_size=cell).result[0]


def test_grid_rows_columns_labels_batch_and_normalization():
    maps = constant_maps()
    image = grid(maps, "mustache, man", "1, 3-4", batch_index=1)
    rows, steps = [2, 0], [1, 3, 4]  # the words in the order asked, the steps as listed
    layout = GridLayout(len(steps), len(rows), 32)
    assert image.shape == (1, layout.height, layout.width, 3)
    # "global": one range over the chosen words of batch item 1 at every recorded step.
    values = [level(s, t, 1) for s in range(STEPS) for t in rows if present(s, t)]
    low, high = min(values), max(values)
    for column, step in enumerate(steps):
        for row, track in enumerate(rows):
            x, y = layout.cell_origin(column, row)
            colour = image[0, y + 4, x + 4]
            if present(step, track):
                grey = (level(step, track, 1) - low) / (high - low)
                torch.testing.assert_close(colour, torch.full((3,), grey), atol=PIXEL, rtol=0)
            else:
                torch.testing.assert_close(colour, torch.tensor(ABSENT_FILL) / 255.0, atol=PIXEL, rtol=0)
    # The labels: "-" for the unconditional branch, "+" for the positive one, "step n" above.
    expected = torch.stack([torch.full((HEIGHT, WIDTH), (level(s, t, 1) - low) / (high - low))
                            if present(s, t) else torch.full((HEIGHT, WIDTH), NAN) for s in steps for t in rows])
    drawn = render.word_step_grid(expected.reshape(len(steps), len(rows), HEIGHT, WIDTH), ["- mustache", "+ man"],
                                  ["step 1", "step 3", "step 4"], "gray", 32)
    torch.testing.assert_close(image, drawn, atol=PIXEL, rtol=0)


def test_grid_every_word_and_step_by_default_with_the_empty_prompt_label():
    maps = constant_maps()
    image = grid(maps, "", "all", batch_index=0, normalization="per map")
    layout = GridLayout(STEPS, len(TRACKS), 32)
    assert image.shape == (1, layout.height, layout.width, 3)
    nan = torch.full((HEIGHT, WIDTH), NAN)
    expected = torch.stack([torch.zeros(HEIGHT, WIDTH) if present(s, t) else nan
                            for s in range(STEPS) for t in range(len(TRACKS))])  # a flat map scales to 0
    drawn = render.word_step_grid(expected.reshape(STEPS, len(TRACKS), HEIGHT, WIDTH),
                                  ["+ man", "+ photo", "- mustache", "- <end> (empty prompt)"],
                                  [f"step {s}" for s in range(STEPS)], "gray", 32)
    torch.testing.assert_close(image, drawn, atol=PIXEL, rtol=0)


def test_grid_refuses_a_batch_item_past_the_batch():
    with pytest.raises(ValueError, match="batch_index 2 is past the batch of 2; use 0 to 1"):
        grid(constant_maps(), "", "all", batch_index=2)


# --- chart ------------------------------------------------------------------------------------------------------

def chart(maps, words="", batch_index=1, mark_step=-1):
    return AttentionChart.execute(attention_maps=maps, words=words, batch_index=batch_index,
                                  mark_step=mark_step).result[0]


def expected_chart(tracks, batch, marker):
    series = [render.Series(TRACKS[t].label, torch.tensor([level(s, t, batch) if present(s, t) else NAN
                                                          for s in range(STEPS)]), TRACKS[t].branch)
              for t in tracks]
    return render.strength_chart(series, "Attention per word over the sampling steps", marker)


def test_chart_marks_where_the_negative_first_appears_and_draws_the_chosen_batch_item():
    maps = constant_maps()
    image = chart(maps)
    assert negative_start(maps) == NEGATIVE_FROM
    torch.testing.assert_close(image, expected_chart(range(len(TRACKS)), 1, NEGATIVE_FROM), atol=PIXEL, rtol=0)
    for wrong in (NEGATIVE_FROM - 1, NEGATIVE_FROM + 1, None):
        assert not torch.allclose(image, expected_chart(range(len(TRACKS)), 1, wrong), atol=PIXEL)
    assert not torch.allclose(image, expected_chart(range(len(TRACKS)), 0, NEGATIVE_FROM), atol=PIXEL)


def test_chart_marker_given_by_hand_and_words_chosen():
    image = chart(constant_maps(), words="photo, mustache", batch_index=0, mark_step=4)
    torch.testing.assert_close(image, expected_chart([1, 2], 0, 4), atol=PIXEL, rtol=0)


def test_chart_has_no_marker_when_the_negative_acts_from_step_0_or_is_not_recorded():
    maps = constant_maps()
    from_zero = maps.maps.clone()
    from_zero[:NEGATIVE_FROM, 2] = 0.3
    assert negative_start(AttentionMaps(TRACKS, from_zero, maps.sigmas)) is None
    # In one batch item only: it is there from step 1 on.
    one_item = maps.maps.clone()
    one_item[1, 2, 1] = 0.3
    assert negative_start(AttentionMaps(TRACKS, one_item, maps.sigmas)) == 1
    positive_only = AttentionMaps(TRACKS[:2], maps.maps[:, :2], maps.sigmas)
    assert negative_start(positive_only) is None
    torch.testing.assert_close(chart(positive_only), expected_chart([0, 1], 1, None), atol=PIXEL, rtol=0)


# --- overlay and mask: maps with a place -----------------------------------------------------------------------

def placed_maps():
    """Track t, batch item b looks at row 3 - (2t + b) (0.5 everywhere on it); step s adds 0.5 on column s."""
    tracks = (TRACKS[0], TRACKS[2])
    maps = torch.zeros(STEPS, 2, BATCH, HEIGHT, WIDTH)
    for track in range(2):
        for batch in range(BATCH):
            maps[:, track, batch, 3 - (2 * track + batch)] += 0.5
            for step in range(STEPS):
                maps[step, track, batch, :, step] += 0.5
    maps[:NEGATIVE_FROM, 1] = NAN
    return AttentionMaps(tracks, maps, tuple(range(STEPS, 0, -1)))


def placed_mean(row, columns):
    """The mean over steps whose hot column is in `columns` of a placed map, scaled to 0..1 (per map)."""
    mean = torch.zeros(HEIGHT, WIDTH)
    mean[row] += 0.5
    for column in columns:
        mean[:, column] += 0.5 / len(columns)
    return (mean - mean.min()) / (mean.max() - mean.min())


def at(image_size, latent_map):
    return F.interpolate(latent_map[None, None], size=image_size, mode="bilinear", align_corners=False)[0, 0]


def test_overlay_averages_its_step_range_per_batch_item_and_labels_the_word():
    size = (HEIGHT * 16, WIDTH * 16)
    image = torch.zeros(BATCH, *size, 3)
    out = AttentionOverlay.execute(attention_maps=placed_maps(), image=image, words="man", first_step=0, last_step=1,
                                   colormap="gray", opacity=1.0).result[0]
    assert out.shape == (BATCH, *size, 3)
    for batch in range(BATCH):
        heat = at(size, placed_mean(3 - batch, [0, 1]))
        # Below the label box, on a black image at opacity 1 in gray: the heat's own grey, weighted by the heat.
        torch.testing.assert_close(out[batch, 24:, :, 0], heat[24:] ** 2, atol=1e-5, rtol=0)
    assert (out[:, :4, :4] < 0.2).all()  # the label box
    labelled = render.heatmap_overlay(image, torch.stack([placed_mean(3 - b, [0, 1]) for b in range(BATCH)]), "gray",
                                      1.0, "+ man")
    torch.testing.assert_close(out, labelled, atol=1e-5, rtol=0)


def test_overlay_default_range_runs_to_the_last_step_and_skips_steps_a_word_is_absent():
    size = (HEIGHT * 16, WIDTH * 16)
    out = AttentionOverlay.execute(attention_maps=placed_maps(), image=torch.zeros(1, *size, 3), words="mustache",
                                   first_step=1, last_step=-1, colormap="gray", opacity=1.0).result[0]
    assert out.shape == (BATCH, *size, 3)  # one image, repeated for each batch item's map
    for batch in range(BATCH):
        heat = at(size, placed_mean(1 - batch, [2, 3, 4]))  # step 1: the negative is not there yet
        torch.testing.assert_close(out[batch, 24:, :, 0], heat[24:] ** 2, atol=1e-5, rtol=0)


@pytest.mark.parametrize("first, last", [(3, 2), (0, 5)])
def test_overlay_refuses_steps_outside_the_recording(first, last):
    with pytest.raises(ValueError, match=r"use 0 to 4 \(-1 = the last\)"):
        AttentionOverlay.execute(attention_maps=placed_maps(), image=torch.zeros(1, 8, 8, 3), words="", first_step=first,
                                 last_step=last, colormap="gray", opacity=1.0)


def mask(word, batch_index, first, last, width=0, height=0, threshold=0.0):
    return AttentionMask.execute(attention_maps=placed_maps(), word=word, batch_index=batch_index, first_step=first,
                                 last_step=last, width=width, height=height, threshold=threshold).result[0]


@pytest.mark.parametrize("word, batch_index, row", [("man", 0, 3), ("man", 1, 2), ("mustache", 0, 1),
                                                    ("mustache", 1, 0)])
def test_mask_takes_the_word_and_batch_item_asked(word, batch_index, row):
    out = mask(word, batch_index, 2, 3)
    assert out.shape == (1, HEIGHT * 8, WIDTH * 8)  # 0 = the latent's size times 8
    torch.testing.assert_close(out[0], at((HEIGHT * 8, WIDTH * 8), placed_mean(row, [2, 3])), atol=1e-5, rtol=0)


def test_mask_size_and_threshold():
    out = mask("mustache", 1, 2, 3, width=60, height=20, threshold=0.5)
    assert out.shape == (1, 20, 60)
    expected = (at((20, 60), placed_mean(0, [2, 3])) >= 0.5).float()
    assert torch.equal(out[0], expected)
    assert out[0, 2].min() == 1 and out[0, 17, 5] == 0  # row 0 of the latent is on, row 3 off


def test_mask_of_a_word_not_recorded_names_the_words_that_are():
    with pytest.raises(ValueError, match="'beard' was not recorded. Recorded words: man, mustache"):
        mask("beard", 0, 0, 1)


# --- Label and Grid Images ---------------------------------------------------------------------------------------

RED, GREEN, BLUE, YELLOW = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 0.0)


def solid(colour, height=24, width=32):
    return torch.tensor(colour).expand(1, height, width, 3).clone()


def dark_pixels(region):
    return int((region.sum(-1) < 1.5).sum())


def test_label_and_grid_images_places_each_picture_under_its_label_in_order():
    pictures = {"image_1": torch.cat([solid(RED), solid(GREEN)]), "image_2": solid(BLUE),
                "image_4": solid(YELLOW, 12, 16)}  # image_3 not connected; the small one is centred
    out = LabeledImageGrid.execute(labels="first, second, third", columns=2, **pictures).result[0]
    label_height = text_height(label_font(12)) + 8
    cell_w, cell_h = 32, 24
    assert out.shape == (1, 2 * (label_height + cell_h) + 3 * GAP, 2 * cell_w + 3 * GAP, 3)

    def cell(index):
        x = GAP + (index % 2) * (cell_w + GAP)
        y = GAP + (index // 2) * (label_height + cell_h + GAP)
        return out[0, y:y + label_height, x:x + cell_w], out[0, y + label_height:y + label_height + cell_h,
                                                            x:x + cell_w]

    for index, colour in enumerate((RED, GREEN, BLUE)):
        label, picture = cell(index)
        assert torch.equal(picture, solid(colour)[0]), f"picture {index}"
        assert dark_pixels(label) > 10, f"label {index}"
    label, picture = cell(3)
    assert dark_pixels(label) == 0  # three labels for four pictures: the fourth has none
    assert torch.equal(picture[6:18, 8:24], solid(YELLOW, 12, 16)[0])
    assert torch.equal(picture[:6], torch.ones(6, cell_w, 3))  # white around it
    # The labels differ from each other: each cell has its own.
    assert not torch.equal(cell(0)[0], cell(1)[0]) and not torch.equal(cell(1)[0], cell(2)[0])


def test_label_and_grid_images_in_one_row_without_labels_and_with_too_many_labels():
    out = LabeledImageGrid.execute(labels="", columns=0, image_1=solid(RED), image_2=solid(BLUE)).result[0]
    assert out.shape == (1, 24 + 2 * GAP, 2 * 32 + 3 * GAP, 3)
    assert torch.equal(out[0, GAP:GAP + 24, GAP + 32 + GAP:GAP + 64 + GAP], solid(BLUE)[0])
    with pytest.raises(ValueError, match="^3 labels for 2 pictures: remove 1 label"):
        LabeledImageGrid.execute(labels="a, b, c", columns=0, image_1=solid(RED), image_2=solid(BLUE))
    with pytest.raises(ValueError, match="^No image is connected"):
        LabeledImageGrid.execute(labels="", columns=0)


def test_label_and_grid_images_one_column_cells_sized_by_the_first_picture_and_labels_split_at_commas():
    big = solid(RED, 40, 210)
    # As many labels as pictures, each with a space in it; one picture per row; the second is smaller.
    out = LabeledImageGrid.execute(labels="step 0, step 3", columns=1, image_1=big, image_2=solid(BLUE)).result[0]
    label_height = text_height(label_font(210 // 14)) + 8  # the label font grows with the cells
    assert out.shape == (1, 2 * (label_height + 40) + 3 * GAP, 210 + 2 * GAP, 3)
    top = GAP + label_height
    assert torch.equal(out[0, top:top + 40, GAP:GAP + 210], big[0])
    second = 2 * GAP + 2 * label_height + 40
    x = GAP + (210 - 32) // 2
    y = second + (40 - 24) // 2
    assert torch.equal(out[0, y:y + 24, x:x + 32], solid(BLUE)[0])  # centred in a cell of the first's size
    # The second label is the second caption: changing it changes only the second label strip.
    other = LabeledImageGrid.execute(labels="step 0, step 9", columns=1, image_1=big, image_2=solid(BLUE)).result[0]
    strip = slice(second - label_height, second)
    assert not torch.equal(out[0, strip], other[0, strip]) and torch.equal(out[0, :strip.start], other[0, :strip.start])


def caption(text, width, font_size=12):
    """A label strip drawn here with PIL: the text cut to the cell's width less 4 px, centred."""
    font = label_font(font_size)
    height = text_height(font) + 8
    strip = Image.new("RGB", (width, height), (255, 255, 255))
    draw_text(ImageDraw.Draw(strip), (width / 2, height / 2), fit_text(text, font, width - 4), font, (30, 30, 30),
              "mm")
    return torch.from_numpy(np.asarray(strip, dtype="float32") / 255.0)


def test_label_and_grid_images_captions_pixels_shrunk_pictures_and_the_last_input():
    gradient = torch.linspace(0, 1, 64)[None, None, :, None].expand(1, 48, 64, 3).clone()
    long_label = "negative_start 0.25 of the steps: the sweep's first picture"
    out = LabeledImageGrid.execute(labels=f"{long_label}, last", columns=0, image_1=solid(RED),
                                   image_8=gradient).result[0]
    label_height = text_height(label_font(12)) + 8
    assert out.shape == (1, label_height + 24 + 2 * GAP, 2 * 32 + 3 * GAP, 3)
    for index, text in enumerate((long_label, "last")):
        x = GAP + index * (32 + GAP)
        torch.testing.assert_close(out[0, GAP:GAP + label_height, x:x + 32], caption(text, 32), atol=PIXEL, rtol=0)
    # image_8, twice the cell's size, is shrunk (Lanczos, proportions kept) into the second cell.
    expected = Image.fromarray(to_uint8(gradient[0]))
    expected.thumbnail((32, 24), Image.LANCZOS)
    x, y = GAP + 32 + GAP, GAP + label_height
    torch.testing.assert_close(out[0, y:y + 24, x:x + 32],
                               torch.from_numpy(np.asarray(expected, dtype="float32") / 255.0),
                               atol=PIXEL, rtol=0)


def test_overlay_draws_each_batch_item_on_its_own_image_or_on_the_first_when_the_batches_differ():
    size = (HEIGHT * 16, WIDTH * 16)
    images = torch.stack([torch.full((*size, 3), shade) for shade in (0.0, 0.5, 0.25)])
    heats = [at(size, placed_mean(3 - batch, [0, 1])) for batch in range(BATCH)]
    for given, drawn_on in ((images[:2], (0, 1)), (images, (0, 0))):
        out = AttentionOverlay.execute(attention_maps=placed_maps(), image=given, words="man", first_step=0,
                                       last_step=1, colormap="gray", opacity=1.0).result[0]
        assert out.shape == (BATCH, *size, 3)
        for batch, source in enumerate(drawn_on):
            heat = heats[batch][24:]
            expected = images[source, 24:, :, 0] * (1 - heat) + heat * heat
            torch.testing.assert_close(out[batch, 24:, :, 0], expected, atol=1e-5, rtol=0)


def test_overlay_of_a_word_absent_over_the_whole_range_leaves_the_image_as_it_was():
    size = (HEIGHT * 16, WIDTH * 16)
    image = torch.full((BATCH, *size, 3), 0.5)
    out = AttentionOverlay.execute(attention_maps=placed_maps(), image=image, words="mustache", first_step=0,
                                   last_step=1, colormap="gray", opacity=1.0).result[0]
    assert torch.equal(out[:, 24:], image[:, 24:])


def test_a_range_of_one_step_and_a_marker_at_step_0():
    # last_step 0 is step 0 (only -1 means the last step); first == last is a range of one step.
    out = mask("man", 0, 0, 0)
    torch.testing.assert_close(out[0], at((HEIGHT * 8, WIDTH * 8), placed_mean(3, [0])), atol=1e-5, rtol=0)
    image = chart(constant_maps(), batch_index=1, mark_step=0)
    torch.testing.assert_close(image, expected_chart(range(len(TRACKS)), 1, 0), atol=PIXEL, rtol=0)


# --- video: items are the latent frames of each video ----------------------------------------------------------

VIDEOS, FRAMES = 2, 3


def video_maps():
    """2 videos of 3 latent frames (6 items, video-major); item i looks at row i % HEIGHT, with a value that
    grows with the step as a different power in each frame."""
    maps = torch.zeros(STEPS, 1, VIDEOS * FRAMES, HEIGHT, WIDTH)
    for item in range(VIDEOS * FRAMES):
        for step in range(STEPS):
            maps[step, 0, item, item % HEIGHT] = frame_value(item, step)
    return AttentionMaps(TRACKS[:1], maps, tuple(range(STEPS, 0, -1)), frames=FRAMES)


def frame_value(item, step):
    return 0.1 + 0.1 * (item // FRAMES) + 0.02 * step ** (item % FRAMES + 1)


def test_video_items_their_videos_and_the_decoded_frames_they_show():
    maps = video_maps()
    assert maps.video_of(4) == [3, 4, 5] and maps.video_of(0) == [0, 1, 2]
    # Wan's VAE: 1 + 4 x (3 - 1) = 9 images per video; the first from latent frame 0, each next 4 from the next
    assert maps.items_for_images(18) == [0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 4, 4, 4, 4, 5, 5, 5, 5]
    assert maps.items_for_images(6) == list(range(6))
    assert maps.items_for_images(10) == [0, 1, 1, 2, 2, 3, 4, 4, 5, 5]  # 5 per video: 1 + 2 x 2
    assert maps.items_for_images(8) is None  # 4 per video: not 1 + k x 2
    two = AttentionMaps(TRACKS[:1], maps.maps, maps.sigmas, frames=2)  # 3 videos of 2 latent frames: 5 images each
    assert two.items_for_images(15) == [0, 1, 1, 1, 1, 2, 3, 3, 3, 3, 4, 5, 5, 5, 5]
    assert two.items_for_images(9) == [0, 1, 1, 2, 3, 3, 4, 5, 5]  # 1 + 2 x 1 each
    four = AttentionMaps(TRACKS[:1], torch.zeros(1, 1, 4, 1, 1), (1.0,), frames=4)  # one video of 4: 1 + 4 x 3 = 13
    assert four.items_for_images(13) == [0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
    assert four.items_for_images(11) is None and four.items_for_images(14) is None
    images = AttentionMaps(TRACKS[:1], maps.maps, maps.sigmas)  # the same 6 items as images, not video frames
    assert images.items_for_images(3) is None and images.items_for_images(12) is None
    assert images.items_for_images(6) == list(range(6)) and images.video_of(4) == [4]


def test_video_chart_averages_the_frames_of_the_video_asked():
    maps = video_maps()
    image = chart(maps, words="man", batch_index=4)
    # each frame's strength is its row's value over HEIGHT rows; video 1 holds items 3, 4, 5
    expected = [sum(frame_value(item, step) for item in (3, 4, 5)) / 3 / HEIGHT for step in range(STEPS)]
    series = [render.Series("man", torch.tensor(expected), "positive")]
    torch.testing.assert_close(image, render.strength_chart(series, "Attention per word over the sampling steps",
                                                            None), atol=PIXEL, rtol=0)
    other = [render.Series("man", torch.tensor([frame_value(4, s) / HEIGHT for s in range(STEPS)]), "positive")]
    assert not torch.allclose(image, render.strength_chart(other, "Attention per word over the sampling steps", None),
                              atol=PIXEL)


def test_video_overlay_draws_each_decoded_frame_with_its_latent_frame_s_map():
    maps = video_maps()
    size = (HEIGHT * 16, WIDTH * 16)
    images = torch.rand(VIDEOS * 9, *size, 3, generator=torch.Generator().manual_seed(0))
    out = AttentionOverlay.execute(attention_maps=maps, image=images, words="man", first_step=0, last_step=-1,
                                   colormap="gray", opacity=0.7).result[0]
    heat = render.normalize_maps(maps.maps[:, 0].nanmean(dim=0)[None], "per map")[0]
    order = [0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 4, 4, 4, 4, 5, 5, 5, 5]
    torch.testing.assert_close(out, render.heatmap_overlay(images, heat[order], "gray", 0.7, "+ man"), atol=1e-6,
                               rtol=0)


def test_video_grid_and_mask_show_the_latent_frame_asked():
    maps = video_maps()
    for item in (0, 4, 5):
        mask = AttentionMask.execute(attention_maps=maps, word="man", batch_index=item, first_step=0, last_step=-1,
                                     width=WIDTH, height=HEIGHT, threshold=0.0).result[0]
        assert mask[0, item % HEIGHT].min() > 0.99 and mask[0].sum(dim=1).argmax() == item % HEIGHT
