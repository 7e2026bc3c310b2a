"""Cost of recording attention maps, one block at each family's real width (issue 22).

Each family's block (real_blocks.py: ComfyUI's own classes at the released models' widths, heads
and token counts, float32 on the CPU, batch 1) is called, in turns, plain and with the recorder
on it, 20 words of one token each recorded into a real AttentionRecording:
- DiT blocks (SD3.5, Flux, Qwen-Image, Wan): the recorder's attention override
  (dit_hooks.observing_override) on its two paths: `kernel LSE`, the image made by the kernel
  that also gives the log-sum-exp (kernel_lse.py: what runs where ComfyUI attends with its PyTorch
  attention, the default on NVIDIA GPUs), and `second pass`, the exact second attention pass
  (joint_share.py: what runs under any other attention function or another node's override);
- UNet blocks (SD1.5, SDXL): the recorder's attn2 patch (unet_hooks.observing_patch, recording.add),
  on the same two paths: the layer's own attention through the kernel that gives the LSE, and
  without it (the share then comes from joint_share.text_probabilities, one fused pass over the
  prompt's tokens).
Every call, plain or recorded, attends with ComfyUI's attention_pytorch: a DiT's handed to it
through the override slot, a UNet's by setting ComfyUI's function to it while the block runs (a CPU
process of ComfyUI picks sub-quadratic attention unless started with --use-pytorch-cross-attention;
the kernel path needs PyTorch's). Figures: medians of interleaved
rounds (the variants' order rotates each round) of each block's wall time, recorded / plain;
and, steadier on a shared machine, 1 + the recorder's own work / the plain block, its work being
the time the calls to the text and the observer took beyond the plain calls to the text, timed
inside the block (the rest of the block, the same on both sides, then adds no noise). The whole
model's ratio is estimated from its block counts; its other parts (embedders, final layer, a
UNet's ResNet blocks and up/down-sampling) are left out, which brings a real ratio nearer 1.
Wan runs on fewer latent frames (`BENCH_BLOCKS_WAN_FRAMES`, default 3) and is scaled to 21:
its self-attention (timed inside the block) by the square of the frames, the rest and the
recorder by the frames.

The memory figure: the AttentionRecording of a Wan 2.1 run, 81 frames at 480p (21 latent
frames of 60x104), 30 steps, 20 words in each of the two branches, started as a run starts it
(begin_run), against steps x words x branches x frames x height x width x 4 bytes (goal <= 2);
and the process's resident memory while Collect Attention Maps takes its snapshot, and after.

    .venv/bin/python -m devtools.bench.bench --only bench_blocks --repeats 3
    BENCH_BLOCKS=flux_double,wan ...   only these blocks (real_blocks.py keys)

Rounds: --repeats, at most 3 when every block runs (a round of them all took 4 to 9 minutes on
this project's 2 shared CPU cores, by the load); as given with BENCH_BLOCKS.
"""

import contextlib
import os
import statistics
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import comfy.ldm.modules.attention as comfy_attention
import torch
from delayed_negative.attention.dit_hooks import OVERRIDE, TextAttentionCall, observing_override
from delayed_negative.attention.kernel_lse import KernelLSE
from delayed_negative.attention.recording import AttentionRecording
from delayed_negative.attention.unet_hooks import observing_patch, with_layer_patches

from devtools.bench.real_blocks import WAN_FRAMES, Block, all_blocks

WORDS = 20
GOAL, MEMORY_GOAL = 1.05, 2.0
MAX_ROUNDS = 3
# What ComfyUI hands an override: the function under its wrap_attn decorator.
PYTORCH_ATTENTION = getattr(comfy_attention.attention_pytorch, "__wrapped__", comfy_attention.attention_pytorch)


class Stopwatch:
    """Seconds and counts accumulated inside one block call."""

    def __init__(self):
        self.seconds, self.counts = {}, {}

    def add(self, name: str, began: float):
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - began

    def count(self, name: str):
        self.counts[name] = self.counts.get(name, 0) + 1


@dataclass
class Variant:
    name: str  # "plain", "kernel LSE", "second pass"
    options: dict  # the transformer_options of a call
    recording: AttentionRecording | None = None
    kernel: KernelLSE | None = None
    times: dict = field(default_factory=dict)  # measure -> [seconds per round]


def word_columns(prefix: str) -> list[tuple[str, list[int]]]:
    return [(f"{prefix} {index + 1}", [index + 1]) for index in range(WORDS)]


def timed_attention(stopwatch: Stopwatch, layout, recorder=None, text_tokens: int | None = None):
    """The override of every call: ComfyUI's attention_pytorch, through the recorder's override
    where given, timed apart for the calls to the text (the ones the recorder touches; a DiT's
    layout tells them, a UNet's have the prompt's `text_tokens` keys) and the others."""
    def override(func, *args, **kwargs):
        began = time.perf_counter()
        try:
            if recorder is None:
                return PYTORCH_ATTENTION(*args, **kwargs)
            return recorder(PYTORCH_ATTENTION, *args, **kwargs)
        finally:
            call = TextAttentionCall(args, kwargs)
            queries, keys = call.queries.shape[2], call.keys.shape[2]
            to_text = layout.attends_to_text(queries, keys) if layout is not None else keys == text_tokens
            stopwatch.add("text attention" if to_text else "image attention", began)

    return override


def recording_for(block: Block) -> tuple[AttentionRecording, dict]:
    """A recording of 20 positive words started as a run starts it (one step), and the options
    naming the call's one batch chunk as the positive prompt."""
    recording = AttentionRecording({"positive": word_columns("word")}, None)
    recording.begin_run(None, torch.tensor([1.0, 0.0]), block.latent_shape)
    cond = uuid.uuid4()
    recording.name_conds([[{"uuid": cond, "cross_attn": torch.zeros(1, block.text_tokens, 1)}]])
    return recording, {"cond_or_uncond": [0], "uuids": [cond]}


def dit_observer(stopwatch: Stopwatch, recording: AttentionRecording):
    def observe(call, layout):
        began = time.perf_counter()
        recording.add_text_attention(call, layout)
        stopwatch.add("recorder", began)
        stopwatch.count("recorded")
        if call.lse is not None:
            stopwatch.count("with the kernel's LSE")

    return observe


def unet_observer(stopwatch: Stopwatch, recording: AttentionRecording):
    def observe(q, k, heads, extra_options, lse=None):
        began = time.perf_counter()
        recording.add(q, k, heads, extra_options, lse)
        stopwatch.add("recorder", began)
        stopwatch.count("recorded")
        if lse is not None:
            stopwatch.count("with the kernel's LSE")

    return observe


def timed_patch(stopwatch: Stopwatch, attend):
    """A UNet's attn2 patch: `attend` (the layer's attention, or the recorder's patch around it),
    timed as the call to the text."""
    def patch(q, k, v, extra_options):
        began = time.perf_counter()
        try:
            return attend(q, k, v, extra_options)
        finally:
            stopwatch.add("text attention", began)

    return patch


def unet_variants(block: Block, stopwatch: Stopwatch) -> list[Variant]:
    """Plain, and the recorder's attn2 patch on its two paths: the layer's own attention through the
    kernel that gives the LSE, and with the kernel left out (what runs under any other attention
    function, a CPU's default one included)."""
    layers = {(*block.unet_block, 0): block.module.transformer_blocks[0].attn2}
    base = {"block": block.unet_block, "original_shape": list(block.latent_shape)}
    found = [Variant("plain", with_layer_patches({**base, "cond_or_uncond": [0], "uuids": [uuid.uuid4()]}, layers,
                                                 lambda attend: timed_patch(stopwatch, attend)))]
    for name, kernel in (("kernel LSE", KernelLSE()), ("second pass", None)):
        recording, names = recording_for(block)
        observer = unet_observer(stopwatch, recording)
        options = with_layer_patches({**base, **names}, layers, lambda attend, observer=observer, kernel=kernel:
                                     timed_patch(stopwatch, observing_patch(observer, attend, kernel)))
        found.append(Variant(name, options, recording, kernel))
    return found


class PytorchAttention:
    """ComfyUI's attention function set to its PyTorch attention while the UNet blocks run, as
    --use-pytorch-cross-attention sets it at start (a CPU process gets sub-quadratic attention; the
    DiT blocks get PyTorch's through the override slot instead, which would keep a UNet's recorder
    off the kernel: another node's override runs as it is)."""

    def __enter__(self):
        self.before = comfy_attention.optimized_attention
        comfy_attention.optimized_attention = comfy_attention.attention_pytorch

    def __exit__(self, *exc):
        comfy_attention.optimized_attention = self.before


def variants(block: Block, stopwatch: Stopwatch) -> list[Variant]:
    if block.layout is None:
        return unet_variants(block, stopwatch)
    names = {"cond_or_uncond": [0], "uuids": [uuid.uuid4()]}
    found = [Variant("plain", {**names, OVERRIDE: timed_attention(stopwatch, block.layout)})]
    for name, kernel in (("kernel LSE", KernelLSE()), ("second pass", None)):
        recording, names = recording_for(block)
        recorder = observing_override(dit_observer(stopwatch, recording), block.layout, None, kernel)
        found.append(Variant(name, {**names, OVERRIDE: timed_attention(stopwatch, block.layout, recorder)}, recording,
                             kernel))
        if kernel is not None:  # its one check against ComfyUI's function, outside the timed calls
            tiny = torch.zeros(1, 2, 4, 8)
            kernel.attention(PYTORCH_ATTENTION, (tiny, tiny, tiny, 2), {"skip_reshape": True})
    return found


def same_output(first, second) -> bool:
    first, second = (value if isinstance(value, tuple) else (value,) for value in (first, second))
    return len(first) == len(second) and all(torch.equal(a, b) for a, b in zip(first, second))


def time_block(block: Block, rounds: int) -> dict:
    """Each variant of `block` once per round, in an order that rotates; per variant the medians of
    wall time, of the time in attention calls and the recorder ("work"), and of the recorder alone."""
    stopwatch = Stopwatch()
    found = variants(block, stopwatch)
    plain_output, identical, counts = None, {}, {}
    with torch.inference_mode(), PytorchAttention() if block.layout is None else contextlib.nullcontext():
        for round_index in range(rounds):
            for variant in found[round_index % len(found):] + found[:round_index % len(found)]:
                stopwatch.seconds, stopwatch.counts = {}, {}
                began = time.perf_counter()
                output = block.run(dict(variant.options))
                wall = time.perf_counter() - began
                seconds = stopwatch.seconds
                # the recorder's work: the calls to the text, the recorder inside them
                work = seconds.get("text attention", 0.0)
                for measure, value in (("wall", wall), ("work", work), ("recorder", seconds.get("recorder", 0.0)),
                                       ("image attention", seconds.get("image attention", 0.0))):
                    variant.times.setdefault(measure, []).append(value)
                counts[variant.name] = dict(stopwatch.counts)
                if variant.name == "plain":
                    plain_output = output
                elif plain_output is not None:
                    identical[variant.name] = identical.get(variant.name, True) and same_output(output, plain_output)
                del output
    return summary(block, found, identical, counts)


def summary(block: Block, found: list[Variant], identical: dict, counts: dict) -> dict:
    medians = {variant.name: {measure: statistics.median(values) for measure, values in variant.times.items()}
               for variant in found}
    plain = medians.pop("plain")
    scale = block.frames[1] / block.frames[0] if block.frames else 1.0
    # Wan on fewer frames: self-attention grows with the square of the frames, the rest with the frames
    plain_wall = plain["image attention"] * scale ** 2 + (plain["wall"] - plain["image attention"]) * scale
    paths = {}
    for variant in found[1:]:
        measured = medians[variant.name]
        paths[variant.name] = {
            "ratio": (plain_wall + (measured["wall"] - plain["wall"]) * scale) / plain_wall,
            "work_ratio": (plain_wall + (measured["work"] - plain["work"]) * scale) / plain_wall,
            "measured_ratio": measured["wall"] / plain["wall"],
            "wall_s": measured["wall"], "recorder_s": measured["recorder"],
            "identical": identical.get(variant.name, False),
            "recorded_calls": counts.get(variant.name, {}).get("recorded", 0),
            "lse_calls": counts.get(variant.name, {}).get("with the kernel's LSE", 0),
            "maps_filled": bool(variant.recording.counts.sum() > 0),
            "kernel_checked": None if variant.kernel is None else all(variant.kernel.checked.values()),
        }
    return {"key": block.key, "model": block.model, "title": block.title, "per_model": block.per_model,
            "plain_s": plain["wall"], "plain_scaled_s": plain_wall, "image_attention_s": plain["image attention"],
            "frames": block.frames, "paths": paths}


def model_ratios(results: list[dict]) -> dict:
    """model -> path -> (ratio, work ratio): the blocks' recorded and plain times weighted by their counts."""
    models = {}
    for result in results:
        models.setdefault(result["model"], []).append(result)
    ratios = {}
    for model, blocks in models.items():
        plain = sum(block["per_model"] * block["plain_scaled_s"] for block in blocks)
        def weighted(path, measure, blocks=blocks, plain=plain):
            return sum(block["per_model"] * block["plain_scaled_s"] * block["paths"][path][measure]
                       for block in blocks) / plain

        ratios[model] = {path: (weighted(path, "ratio"), weighted(path, "work_ratio")) for path in blocks[0]["paths"]}
    return ratios


def resident(field_name: str = "VmRSS") -> int | None:
    """This process's resident (or, VmHWM, peak resident) memory in bytes, where Linux says it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM back to the current resident size
        return True
    except OSError:
        return False


def wan_memory(tiny: bool) -> dict:
    """The recording of a Wan 2.1 run (81 frames at 480p, 30 steps, 20 words in each branch) as a
    run starts it, and the resident memory while its maps are collected (snapshot) and after."""
    frames, height, width, steps = (2, 4, 8, 3) if tiny else (WAN_FRAMES, 60, 104, 30)
    branches = 2
    before = resident()
    recording = AttentionRecording({"positive": word_columns("positive word"),
                                    "negative": word_columns("negative word")}, None)
    recording.begin_run(None, torch.linspace(1.0, 0.0, steps + 1), (1, 16, frames, height, width))
    held = sum(value.nbytes for value in vars(recording).values() if isinstance(value, torch.Tensor))
    recording.attention_calls = [1] * steps  # as a run that evaluated every step leaves it
    peak_known = reset_peak()
    maps = recording.snapshot()
    peak, after = resident("VmHWM"), resident()
    product = steps * WORDS * branches * frames * height * width * 4
    measured = before is not None and peak is not None and peak_known
    result = {"steps": steps, "words": WORDS, "branches": branches, "frames": frames, "height": height,
              "width": width, "held": held, "product": product, "collected": maps.maps.nbytes,
              "snapshot_peak": peak - before if measured else None, "after": after - before if measured else None}
    del maps, recording
    return result


def measure(tiny: bool = False, rounds: int = MAX_ROUNDS, only: set[str] | None = None,
            wan_frames: int = 3) -> dict:
    """Every family's blocks timed (one family built at a time), and the Wan recording's memory."""
    load_before = os.getloadavg()[0]
    results = []
    for keys, build in all_blocks(tiny, 1 if tiny else wan_frames):
        if only is not None and not only & set(keys):
            continue
        blocks = build()
        for block in blocks:
            if only is None or block.key in only:
                results.append(time_block(block, rounds))
        del blocks
    return {"tiny": tiny, "rounds": rounds, "threads": torch.get_num_threads(), "blocks": results,
            "models": model_ratios(results), "memory": wan_memory(tiny),
            "load": (load_before, os.getloadavg()[0])}


def block_lines(result: dict) -> list[str]:
    lines = [f"  {result['title']}: plain {result['plain_s']:.2f} s"]
    if result["frames"]:
        run, real = result["frames"]
        lines[0] += (f" on {run} latent frames (self-attention {result['image_attention_s']:.2f} s of it); scaled to "
                     f"{real} frames {result['plain_scaled_s']:.1f} s")
    for name, path in result["paths"].items():
        scaled = f"; measured on {result['frames'][0]} frames {path['measured_ratio']:.3f}" if result["frames"] else ""
        lse = f", the kernel's LSE in {path['lse_calls']} of {path['recorded_calls']} calls" if path["kernel_checked"] \
            is not None else ""
        lines.append(f"    {name}: recorded / plain {path['ratio']:.3f} ({path['wall_s']:.2f} s){scaled}; the "
                     f"recorder's own work / plain {path['work_ratio']:.3f}; output bit-identical: "
                     f"{'yes' if path['identical'] else 'NO'}{lse}  goal <= {GOAL}")
    return lines


def report(measured: dict) -> list[str]:
    size = "tiny sizes (the tests')" if measured["tiny"] else "real widths"
    load = measured["load"]
    lines = [(f"Blocks at {size}, float32 on the CPU ({measured['threads']} torch threads), batch 1, {WORDS} "
              f"recorded words of one token each, ComfyUI's attention_pytorch; medians of {measured['rounds']} "
              f"interleaved rounds; load average {load[0]:.1f} at the start, {load[1]:.1f} at the end")]
    for result in measured["blocks"]:
        lines += block_lines(result)
    lines.append("  whole models from their block counts (the blocks only: embedders, final layers, a UNet's ResNet "
                 "blocks left out):")
    for model, paths in measured["models"].items():
        counts = " + ".join(f"{block['per_model']} {block['key']}" for block in measured["blocks"]
                            if block["model"] == model)
        lines.append(f"    {model} ({counts}): " + ", ".join(
            f"{path} {ratio:.3f} (own work {work:.3f})" for path, (ratio, work) in paths.items()) + f"  goal <= {GOAL}")
    return lines + memory_lines(measured["memory"])


def memory_lines(memory: dict) -> list[str]:
    product, held = memory["product"], memory["held"]
    lines = [(f"  Wan 2.1 recording, {memory['frames']} latent frames of {memory['height']}x{memory['width']}, "
              f"{memory['steps']} steps, {memory['words']} words in each of {memory['branches']} branches: bytes "
              f"held / (steps x words x branches x frames x H x W x 4) {held / product:.3f} ({held:,} / "
              f"{product:,} bytes)  goal <= {MEMORY_GOAL}")]
    if memory["snapshot_peak"] is not None:
        lines.append(f"    resident memory while Collect Attention Maps takes its snapshot: peak "
                     f"{memory['snapshot_peak'] / product:.2f} x the product ({memory['snapshot_peak']:,} bytes); "
                     f"after it, recording and collected maps {memory['after'] / product:.2f} x "
                     f"({memory['after']:,} bytes)")
    return lines


def run(options) -> list[str]:
    only = os.environ.get("BENCH_BLOCKS")
    frames = int(os.environ.get("BENCH_BLOCKS_WAN_FRAMES", "3"))
    rounds = options.repeats if only else min(options.repeats, MAX_ROUNDS)
    return report(measure(rounds=rounds, only=set(only.split(",")) if only else None, wan_frames=frames))
