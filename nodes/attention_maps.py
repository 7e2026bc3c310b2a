"""Record Attention Maps, Collect Attention Maps, and the four views of them.

The recorder patches a MODEL clone; the maps fill in while the sampler runs; "Collect" takes
the sampler's LATENT (so it runs after sampling) and freezes the maps of that run into an
ATTENTION_MAPS value. The views only read that value, so changing a view's settings re-renders
without re-sampling.
"""


from functools import partial

import torch
from comfy_api.latest import io

from .. import render
from ..attention.maps import AttentionMaps
from ..attention.record_model import record_attention
from ..attention.unet_hooks import LAYER_CHOICES
from ..attention.recording import AttentionRecording
from ..attention.words import ColumnsFromConditioning, recording_columns
from .empty_prompt import empty_in_place_of, empty_prompt

CATEGORY = "sampling/delayed negative/attention maps"
AttentionRecordingType = io.Custom("ATTENTION_RECORDING")
AttentionMapsType = io.Custom("ATTENTION_MAPS")


def maps_input():
    return AttentionMapsType.Input("attention_maps", tooltip="From Collect Attention Maps.")


def words_input(tooltip="Comma-separated words to show; empty = every recorded word."):
    return io.String.Input("words", default="", tooltip=tooltip)


def batch_input(tooltip="Which image of the batch to show. For video: which latent frame, the frames of each "
                        "video in turn (video 2 of 3 frames starts at 3)."):
    return io.Int.Input("batch_index", default=0, min=0, max=4096, tooltip=tooltip)


def colormap_input():
    return io.Combo.Input("colormap", options=render.COLORMAP_NAMES, default="viridis",
                          tooltip="Colours for low to high attention.")


def normalization_input():
    return io.Combo.Input("normalization", options=render.NORMALIZATION_MODES, default="per word over steps",
                          tooltip="Scale each map to its own range, each word over all its steps (shows when a "
                                  "word acts), or everything to one range (compares words; the negative influence "
                                  "keeps a range of its own).")


def pick_batch(maps: AttentionMaps, batch_index: int) -> int:
    if batch_index >= maps.maps.shape[2]:
        raise ValueError(f"batch_index {batch_index} is past the batch of {maps.maps.shape[2]}; "
                         f"use 0 to {maps.maps.shape[2] - 1}.")
    return batch_index


def step_range(maps: AttentionMaps, first_step: int, last_step: int) -> tuple[int, int]:
    last = maps.steps - 1 if last_step < 0 else last_step
    if not 0 <= first_step <= last < maps.steps:
        raise ValueError(f"Steps {first_step} to {last_step} are outside the {maps.steps} recorded steps; "
                         f"use 0 to {maps.steps - 1} (-1 = the last).")
    return first_step, last


def parse_steps(steps: str, count: int) -> list[int]:
    """'all', or a list like '0, 5, 10-14' of step numbers."""
    if steps.strip().lower() in ("", "all"):
        return list(range(count))
    chosen = []
    for part in steps.split(","):
        first, _, last = part.strip().partition("-")
        try:
            chosen += list(range(int(first), int(last or first) + 1))
        except ValueError:
            raise ValueError(f"'{part.strip()}' is not a step or a range of steps such as 5 or 10-14.") from None
    wrong = [step for step in chosen if not 0 <= step < count]
    if wrong:
        raise ValueError(f"Steps {wrong} were not recorded; this run has steps 0 to {count - 1}.")
    return chosen


def branch_label(maps: AttentionMaps, index: int) -> str:
    track = maps.tracks[index]
    sign = {"positive": "+ ", "unconditional": "- "}.get(track.branch, "")  # the influence: no branch of CFG
    return f"{sign}{track.label}"


NEGATIVE_INFLUENCE_TOOLTIP = (
    "Also measure where the negative prompt acted: at each step where it is in force, how much the guided "
    "prediction with the negative differs from the one the empty prompt would give, (cfg - 1) x (prediction of the "
    "empty prompt - prediction of the negative), per latent pixel, as one more track 'negative influence' (grid, "
    "overlay, mask, viewer; the chart draws it beside the words' attention). Cost: one more unconditional "
    "evaluation per step from the negative's start, batched with the positive and the negative (measured on a CPU: "
    "about 40% more time at those steps); the image does not change.")


class RecordAttentionMaps(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DelayedNegativeRecordAttentionMaps",
            display_name="Record Attention Maps",
            category=CATEGORY,
            description="Records, per sampling step, where each chosen word of the positive and negative prompt "
                        "draws the attention, positive and unconditional branches apart (the paper's Fig. 1): a "
                        "UNet's cross-attention, or a DiT's attention to the text (its exact share of the joint "
                        "attention). Connect MODEL to any sampler; then Collect Attention Maps after it.",
            inputs=[
                io.Model.Input("model", tooltip="An SD1.x, SD2.x or SDXL UNet, or an SD3.x, Flux, Flux.2, Chroma, "
                                                "Qwen-Image, Z-Image or Wan 2.x DiT. It is not changed; a patched "
                                                "copy comes out."),
                io.Clip.Input("clip", tooltip="The CLIP (text encoder) that encodes the prompts, to find each "
                                              "word's tokens: CLIP, T5-XXL, UMT5-XXL or Qwen2.5-VL."),
                io.String.Input("positive_prompt", multiline=True, default="",
                                tooltip="Leave empty when the positive prompt is encoded with CLIP Text Encode "
                                        "(Attention Words): its words are read from the conditioning. Else the "
                                        "positive prompt exactly as given to its CLIP Text Encode."),
                io.String.Input("negative_prompt", multiline=True, default="",
                                tooltip="Leave empty when the negative prompt is encoded with CLIP Text Encode "
                                        "(Attention Words). Else the negative prompt exactly as given to its "
                                        "CLIP Text Encode."),
                io.String.Input("positive_words", default="",
                                tooltip="Comma-separated words of the positive prompt to record; empty = all."),
                io.String.Input("negative_words", default="",
                                tooltip="Comma-separated words of the negative prompt to record; empty = all."),
                io.Combo.Input("layers", options=list(LAYER_CHOICES), default="all",
                               tooltip="Which UNet cross-attention blocks to average: all, or only the input "
                                       "(down), middle or output (up) blocks. DiT models: all."),
                io.Boolean.Input("negative_influence", default=False, optional=True,
                                 tooltip=NEGATIVE_INFLUENCE_TOOLTIP),
            ],
            outputs=[io.Model.Output(tooltip="The model, recording while it samples."),
                     AttentionRecordingType.Output("recording", tooltip="Connect to Collect Attention Maps.")],
        )

    @classmethod
    def execute(cls, model, clip, positive_prompt, negative_prompt, positive_words, negative_words, layers,
                negative_influence=False):
        columns = recording_columns(clip, positive_prompt, negative_prompt, positive_words, negative_words)
        typed = {"positive": positive_prompt, "negative": negative_prompt}
        learn = None if all(text.strip() for text in typed.values()) else \
            ColumnsFromConditioning(clip, typed, {"positive": positive_words, "negative": negative_words})
        empty = empty_prompt(clip)
        recording = AttentionRecording(columns, empty[0][0], learn, negative_influence)
        in_place = partial(empty_in_place_of, empty=empty) if negative_influence else None
        return io.NodeOutput(record_attention(model, recording, layers, in_place), recording)


class CollectAttentionMaps(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DelayedNegativeCollectAttentionMaps",
            display_name="Collect Attention Maps",
            category=CATEGORY,
            description="Takes the maps of the last sampling run with the recording model.",
            inputs=[
                AttentionRecordingType.Input("recording", tooltip="From Record Attention Maps."),
                io.Latent.Input("samples", tooltip="The sampler's output: makes this node run after sampling."),
            ],
            outputs=[AttentionMapsType.Output("attention_maps", tooltip="Connect to the attention views.")],
        )

    @classmethod
    def execute(cls, recording, samples):
        return io.NodeOutput(recording.snapshot())


class AttentionGrid(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DelayedNegativeAttentionGrid",
            display_name="Attention Maps Grid (words × steps)",
            category=CATEGORY,
            inputs=[maps_input(), words_input(),
                    io.String.Input("steps", default="all", tooltip="'all', or steps such as 0, 5, 10-14."),
                    batch_input(), colormap_input(), normalization_input(),
                    io.Int.Input("cell_size", default=96, min=32, max=512, tooltip="Pixel size of each map.")],
            outputs=[io.Image.Output(tooltip="Rows: words (+ positive branch, - unconditional); columns: steps.")],
        )

    @classmethod
    def execute(cls, attention_maps, words, steps, batch_index, colormap, normalization, cell_size):
        tracks = attention_maps.select(words)
        chosen = parse_steps(steps, attention_maps.steps)
        batch = pick_batch(attention_maps, batch_index)
        maps = attention_maps.maps[:, tracks, batch]  # [steps, words, h, w]
        influence = [row for row, index in enumerate(tracks) if index in attention_maps.influence_tracks()]
        maps = render.normalize_maps(maps, normalization, influence)[chosen]
        labels = [branch_label(attention_maps, index) for index in tracks]
        skipped = set(attention_maps.steps_not_evaluated())
        step_labels = [f"step {s}" + (" (not evaluated)" if s in skipped else "") for s in chosen]
        columns_skipped = [column for column, s in enumerate(chosen) if s in skipped]
        return io.NodeOutput(render.word_step_grid(maps, labels, step_labels, colormap, cell_size, columns_skipped))


class AttentionOverlay(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DelayedNegativeAttentionOverlay",
            display_name="Attention Heat Map Overlay",
            category=CATEGORY,
            inputs=[maps_input(), io.Image.Input("image", tooltip="The decoded image of the same run."),
                    words_input(),
                    io.Int.Input("first_step", default=0, min=0, max=10000, tooltip="First step to average."),
                    io.Int.Input("last_step", default=-1, min=-1, max=10000,
                                 tooltip="Last step to average; -1 = last."),
                    colormap_input(),
                    io.Float.Input("opacity", default=0.6, min=0.0, max=1.0, step=0.05,
                                   tooltip="How strongly the heat map covers the image.")],
            outputs=[io.Image.Output(tooltip="One image per word and batch item (for a decoded video, per frame, "
                                             "each with its latent frame's map), labelled.")],
        )

    @classmethod
    def execute(cls, attention_maps, image, words, first_step, last_step, colormap, opacity):
        first, last = step_range(attention_maps, first_step, last_step)
        order = attention_maps.items_for_images(image.shape[0])
        pictures = []
        for index in attention_maps.select(words):
            heat = attention_maps.maps[first:last + 1, index].nanmean(dim=0)  # [items, h, w]
            heat = render.normalize_maps(heat[None], "per map")[0].nan_to_num(0.0)
            if order is not None:
                heat = heat[order]
            batch = image if image.shape[0] == heat.shape[0] else image[:1]
            pictures.append(render.heatmap_overlay(batch, heat, colormap, opacity, branch_label(attention_maps, index)))
        return io.NodeOutput(torch.cat(pictures))


class AttentionChart(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DelayedNegativeAttentionChart",
            display_name="Attention Strength Chart",
            category=CATEGORY,
            description="Each word's attention over the steps; positive branch solid, unconditional branch dashed. "
                        "A negative word's line starts where the negative starts to act. A thin grey line shows "
                        "the cfg of each step, and steps sampled without guidance are shaded. With the negative "
                        "influence recorded, a black line on its own scale at the right shows it (its mean over "
                        "the image, latent units): where the negative is attended to beside where it acts.",
            inputs=[maps_input(), words_input(),
                    batch_input("Which image of the batch to chart. For video: any latent frame of the video; the "
                                "chart averages over its frames."),
                    io.Int.Input("mark_step", default=-1, min=-1, max=10000,
                                 tooltip="Draw a 'negative starts' line at this step; -1 = where the negative "
                                         "prompt first appears in the unconditional branch (none if from step 0).")],
            outputs=[io.Image.Output(tooltip="The chart, with axes, labels and a legend.")],
        )

    @classmethod
    def execute(cls, attention_maps, words, batch_index, mark_step):
        batch = pick_batch(attention_maps, batch_index)
        strength = attention_maps.strength()[:, :, attention_maps.video_of(batch)].mean(dim=-1)  # [steps, tracks]
        tracks = attention_maps.select(words)
        series = [render.Series(attention_maps.tracks[i].label, strength[:, i], attention_maps.tracks[i].branch)
                  for i in tracks]
        marker = mark_step if mark_step >= 0 else negative_start(attention_maps)
        return io.NodeOutput(render.strength_chart(series, "Attention per word over the sampling steps", marker,
                                                   cfg=attention_maps.cfg,
                                                   not_evaluated=attention_maps.steps_not_evaluated()))


def negative_start(maps: AttentionMaps) -> int | None:
    negative = [i for i, track in enumerate(maps.tracks) if track.prompt == "negative"]
    if not negative:
        return None
    present = (~maps.strength()[:, negative].isnan()).any(dim=(1, 2)).nonzero()
    return int(present[0]) if len(present) and int(present[0]) > 0 else None


class AttentionMask(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DelayedNegativeAttentionMask",
            display_name="Attention Mask",
            category=CATEGORY,
            description="Where a word acts over a range of steps, as a MASK (for inpainting or masked guidance).",
            inputs=[maps_input(), io.String.Input("word", default="", tooltip="One recorded word."),
                    batch_input(),
                    io.Int.Input("first_step", default=0, min=0, max=10000, tooltip="First step to average."),
                    io.Int.Input("last_step", default=-1, min=-1, max=10000, tooltip="Last step; -1 = last."),
                    io.Int.Input("width", default=0, min=0, max=16384, tooltip="Mask width; 0 = latent width × 8."),
                    io.Int.Input("height", default=0, min=0, max=16384, tooltip="Mask height; 0 = latent height × 8."),
                    io.Float.Input("threshold", default=0.0, min=0.0, max=1.0, step=0.01,
                                   tooltip="0 = a soft mask; above 0, pixels at or above it become 1, others 0.")],
            outputs=[io.Mask.Output(tooltip="1 where the word draws the most attention.")],
        )

    @classmethod
    def execute(cls, attention_maps, word, batch_index, first_step, last_step, width, height, threshold):
        index = attention_maps.track_index(word)
        batch = pick_batch(attention_maps, batch_index)
        first, last = step_range(attention_maps, first_step, last_step)
        latent_height, latent_width = attention_maps.maps.shape[-2:]
        mask = render.word_mask(attention_maps.maps[:, index, batch], first, last, height or latent_height * 8,
                                width or latent_width * 8, threshold if threshold > 0 else None)
        return io.NodeOutput(mask)


NODES = [RecordAttentionMaps, CollectAttentionMaps, AttentionGrid, AttentionOverlay, AttentionChart, AttentionMask]
