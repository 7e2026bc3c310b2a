"""`make study` (part 3): the negative at cfg 1 through NAG beside the negative through CFG, on the toy model.

    .venv/bin/python -m devtools.toy_model.nag_study [--seeds 0,1] [--batch 16] [--steps 12]
                                                     [--nag-scale 3] [--nag-tau 1.5] [--nag-only]
    .venv/bin/python -m devtools.toy_model.nag_study --pick-scale [--scales 3,5,8] [--seeds 2,3]

The same seeds, prompts and scores as study.py (removed among the images that had the thing,
face IoU, change outside the glasses region), for the object "glasses" and the attribute "red"
of a red hat, with the negative from step 0, from 1/6, 1/3 and 1/2 of the steps, from the step
timing_unit 'auto' picks (one start per batch: the automatic start averages the batch), and
never, sampled twice: through CFG at cfg 5 (as study.py: the stock KSampler for step 0, KSampler
(Delayed Negative) with the empty prompt before the start) and through NAG at cfg 1 (KSampler
(Delayed Negative) with NAG settings: the positive alone before the start, from step 0 too).
Each is scored against its own never: cfg 5 without a negative, and cfg 1 (the positive alone).
It also counts reverse activation under NAG, as study.py does under CFG.

--pick-scale samples other seeds (2 and 3) with a few nag_scale values from step 0 and from
1/3, to choose the scale the study uses (3: docs/toy-model.md says why); --nag-tau changes tau
(ComfyUI's default 1.5) in either mode, alpha stays at its default 0.5.
"""

import argparse
import time
from dataclasses import replace
from devtools.host import comfy_env

# isort: split
import numpy as np
import torch

from devtools.toy_model.experiments import Run, compare, load_toy_checkpoint, sample_with_start
from devtools.toy_model.study import PROBES

PROBE_NAMES = ("glasses (object)", "red, of a red hat (attribute)")
CFG = 5.0


def sample_seeds(checkpoint, run: Run, seeds: list[int]):
    """Images of every seed's batch, concatenated, and the starts the negative took (one per seed)."""
    images, starts = zip(*(sample_with_start(checkpoint, replace(run, seed=seed)) for seed in seeds))
    return np.concatenate(images), list(starts)


def cells(steps: int) -> dict:
    """label -> (negative_start, unit); step 0 is the pack's node with NAG, the stock KSampler with CFG."""
    fixed = {"1/6": steps / 6, "1/3": steps / 3, "1/2": steps / 2}
    return {"0": (0, "step"), **{label: (-(-start // 1), "step") for label, start in fixed.items()},
            "auto": (0, "auto")}


def reference_run(checkpoint, probe, nag, seeds, batch, steps):
    """The run without a negative (cfg 5 for CFG, cfg 1 for NAG): its images and the shared settings."""
    common = {"positive": probe.positive, "batch": batch, "steps": steps, "cfg": 1.0 if nag is not None else CFG,
              "nag": nag}
    reference, _ = sample_seeds(checkpoint, Run(negative="", negative_start=None, **common), seeds)
    return reference, common


def score_cells(checkpoint, probe, nag, seeds, batch, steps, only=None, reference=None):
    """{label: (removed, had, face IoU, change outside, starts)} for the guidance `nag` (None: CFG at cfg 5)."""
    images_without, common = reference_run(checkpoint, probe, nag, seeds, batch, steps) if reference is None \
        else reference
    had = probe.present(images_without)
    rows = {}
    for label, (start, unit) in cells(steps).items():
        if only is not None and label not in only:
            continue
        if nag is None and start == 0 and unit == "step":
            start = None  # CFG from step 0: the stock KSampler, as study.py
        images, starts = sample_seeds(checkpoint, Run(negative=probe.negative, negative_start=start, unit=unit,
                                                      **{**common, "nag": nag}), seeds)
        scored = compare(images, images_without)
        removed = (~probe.present(images) & had).sum()
        rows[label] = (removed, had.sum(), scored.face_overlap.mean(), scored.change_outside.mean(), starts)
    rows["never"] = (0, had.sum(), 1.0, 0.0, [-1] * len(seeds))
    return rows, len(had)


def row_label(label, starts, steps) -> str:
    if label == "auto":
        return f"auto (picked {', '.join(map(str, starts))})"
    if label in ("1/6", "1/3", "1/2"):
        return f"{starts[0]} ({label})"
    return label


def study(seeds: list[int], batch: int, steps: int, nag_scale: float, tau: float, with_cfg: bool = True) -> None:
    from delayed_negative.samplers.nag import NAGSettings

    nag = NAGSettings(scale=nag_scale, tau=tau)
    checkpoint = load_toy_checkpoint()
    print(f"seeds {seeds} x batch {batch} = {len(seeds) * batch} images per cell; {steps} euler steps, 64x64; "
          + (f"CFG at cfg {CFG:g}; " if with_cfg else "")
          + f"NAG at cfg 1 with scale {nag.scale:g}, tau {nag.tau:g}, alpha {nag.alpha:g}\n")
    for probe in (p for p in PROBES if p.name in PROBE_NAMES):
        groups = {"NAG": score_cells(checkpoint, probe, nag, seeds, batch, steps)[0]}
        if with_cfg:
            groups = {"CFG": score_cells(checkpoint, probe, None, seeds, batch, steps)[0], **groups}
        total = len(seeds) * batch
        print(f"## {probe.name}: '{probe.positive}', negative '{probe.negative}'; present without a negative in "
              + ", ".join(f"{rows['never'][1]}/{total} at cfg {1 if name == 'NAG' else CFG:g}"
                          for name, rows in groups.items()))
        print("| negative from | " + " | ".join(f"{name}: removed | face IoU | change outside" for name in groups)
              + " |\n|---|" + "---|---|---|" * len(groups))
        for label in groups["NAG"]:
            shown = " / ".join(dict.fromkeys(row_label(label, rows[label][4], steps) for rows in groups.values()))
            print(f"| {shown} | " + " | ".join(
                f"{removed}/{had} | {iou:.2f} | {change:.3f}"
                for removed, had, iou, change, _ in (rows[label] for rows in groups.values())) + " |", flush=True)
        if probe.name.startswith("glasses"):
            reverse_activation(checkpoint, probe, nag, seeds, batch, steps)
        print()


def reverse_activation(checkpoint, probe, nag, seeds, batch, steps) -> None:
    common = {"positive": probe.plain_positive, "batch": batch, "steps": steps, "cfg": 1.0, "nag": nag}
    counts = []
    for negative, start in (("", None), (probe.negative, 0), (probe.negative, -(-steps // 3))):
        images, _ = sample_seeds(checkpoint, Run(negative=negative, negative_start=start, **common), seeds)
        counts.append(probe.present(images).sum())
    print(f"\nreverse activation under NAG, '{probe.plain_positive}' at cfg 1: present in {counts[0]} without a "
          f"negative, {counts[1]} with '{probe.negative}' from step 0, {counts[2]} from 1/3")


def pick_scale(seeds: list[int], batch: int, steps: int, scales: list[float], tau: float) -> None:
    """Glasses only: at cfg 1 the toy draws too few red hats to compare scales on."""
    from delayed_negative.samplers.nag import NAGSettings

    checkpoint = load_toy_checkpoint()
    probe = next(p for p in PROBES if p.name.startswith("glasses"))
    reference = reference_run(checkpoint, probe, NAGSettings(), seeds, batch, steps)
    print(f"choosing nag_scale: '{probe.positive}', negative '{probe.negative}', seeds {seeds} x batch {batch}, "
          f"{steps} euler steps, cfg 1, tau {tau:g}, alpha 0.5; glasses in "
          f"{probe.present(reference[0]).sum()}/{len(reference[0])} without a negative\n")
    print("| nag_scale | from | removed | face IoU | change outside |\n|---|---|---|---|---|")
    for scale in scales:
        rows, _ = score_cells(checkpoint, probe, NAGSettings(scale=scale, tau=tau), seeds, batch, steps, ("0", "1/3"),
                              reference)
        for label in ("0", "1/3"):
            removed, had, iou, change, starts = rows[label]
            print(f"| {scale:g} | {row_label(label, starts, steps)} | {removed}/{had} | {iou:.2f} | {change:.3f} |",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default=None, help="comma-separated seeds; each samples a batch "
                                                      "(default 0,1; with --pick-scale 2,3: other seeds)")
    parser.add_argument("--batch", type=int, default=None, help="default 16")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--nag-scale", type=float, default=3.0,
                        help="NAG's scale (chosen with --pick-scale: docs/toy-model.md); alpha stays 0.5")
    parser.add_argument("--nag-tau", type=float, default=1.5, help="NAG's tau (ComfyUI's default 1.5)")
    parser.add_argument("--nag-only", action="store_true", help="leave out the CFG columns")
    parser.add_argument("--pick-scale", action="store_true", help="compare --scales instead of the study")
    parser.add_argument("--scales", default="3,5,8")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1 is fastest on a busy machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    comfy_env.import_pack()
    import comfy.utils

    comfy.utils.PROGRESS_BAR_ENABLED = False
    started = time.time()
    seeds = [int(s) for s in (args.seeds or ("2,3" if args.pick_scale else "0,1")).split(",")]
    if args.pick_scale:
        pick_scale(seeds, args.batch or 16, args.steps, [float(s) for s in args.scales.split(",")], args.nag_tau)
    else:
        study(seeds, args.batch or 16, args.steps, args.nag_scale, args.nag_tau, not args.nag_only)
    print(f"({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
