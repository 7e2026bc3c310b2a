"""A critical-step sweep: one seed sampled with the negative starting at several steps.

Each start gives exactly the latent of a separate KSampler (Delayed Negative) run with that
start. The runs go latest start first and share their model evaluations of the steps before
each start (shared_prefix.py), so the common prefix is paid once. An automatic start ('auto')
runs first, since its start is known only once it has sampled; the others then share with it
the steps before both their starts.
"""

from dataclasses import dataclass

import torch

from .auto_start import AUTO
from .ksampler import NEGATIVE_START_KEY, delayed_negative_ksampler, full_schedule
from .negative_window import NEVER, NegativeTiming, resolve_window
from .shared_prefix import SharedPrefix

NEVER_WORDS = ("never", "none", "off")


@dataclass(frozen=True)
class SweepStart:
    text: str  # as the user wrote it, for the label
    value: float  # in the sweep's timing unit; NEVER_START for never

    @property
    def label(self) -> str:
        return "never" if self.value == NEVER_START else f"start {self.text}"

    @property
    def automatic(self) -> bool:
        return self.value == AUTO_START


NEVER_START = float("inf")
AUTO_START = float("-inf")


def parse_starts(text: str) -> list[SweepStart]:
    """'0, 3, 6, 10, never' -> the starts in order; a clear ValueError otherwise."""
    starts = []
    for part in (part.strip() for part in text.replace(";", ",").split(",")):
        if not part:
            continue
        if part.lower() in NEVER_WORDS:
            starts.append(SweepStart(part, NEVER_START))
            continue
        if part.lower() == AUTO:
            if any(start.automatic for start in starts):
                raise ValueError("starts: 'auto' is listed twice; it always picks the same step for one seed.")
            starts.append(SweepStart(part, AUTO_START))
            continue
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"starts: '{part}' is neither a number, 'never' nor 'auto'. Write the starts like "
                             "'0, 3, 6, 10, never' (in the timing unit), with 'auto' for the automatic start.") \
                from None
        if value < 0:
            raise ValueError(f"starts: {part} is negative; a start is 0 or more (0 = the stock KSampler).")
        starts.append(SweepStart(part, value))
    if not starts:
        raise ValueError("starts is empty: list the negative starts to compare, like '0, 3, 6, 10, never'.")
    return starts


@dataclass(frozen=True)
class SweepResult:
    latents: list[dict]  # one LATENT per start, in the order given
    labels: list[str]  # one caption per start ("auto" with the step it picked)

    def decoded(self, latent_image: dict, vae):
        """(one LATENT of every start's samples, their decoded IMAGE, a caption per image): a video
        VAE's frames are laid out as images, each captioned with its start."""
        out = latent_image.copy()
        out.pop("batch_index", None)
        out.pop("noise_mask", None)
        out["samples"] = torch.cat([latent["samples"] for latent in self.latents])
        images = vae.decode(out["samples"])
        if images.ndim == 5:  # video VAEs decode [batch, frames, H, W, 3]
            images = images.reshape(-1, *images.shape[-3:])
        per_start = images.shape[0] // len(self.latents)
        return out, images, [label for label in self.labels for _ in range(per_start)]


def sweep(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent, starts: list[SweepStart],
          unit: str, before_negative, denoise=1.0, guidance=None, auto=None, nag=None) -> SweepResult:
    """Sample once per start; `before_negative` is the conditioning used before each start, `auto`
    the automatic start's settings (AutoStart; None for the defaults), `nag` the NAG settings at
    cfg 1 (NAGSettings; None: through CFG)."""
    schedule = full_schedule(model, steps, sampler_name, scheduler, denoise)
    last = len(schedule) - 1
    timings = [NegativeTiming(0.0, NEVER, AUTO) if start.automatic
               else NegativeTiming(float(last) if start.value == NEVER_START else start.value, NEVER,
                                   "step" if start.value == NEVER_START else unit) for start in starts]
    for start in starts:
        if unit == "step" and not start.automatic and start.value != NEVER_START and start.value > last:
            raise ValueError(f"starts: {start.text} is past the last of the {last} steps. Write 'never' for the run "
                             "without the negative, or a start below the steps.")
    first_steps = [-1 if start.automatic else resolve_window(timing, schedule).start_step
                   for start, timing in zip(starts, timings, strict=True)]
    shared = SharedPrefix()
    results, previous_start = {}, last
    for index in sorted(range(len(starts)), key=lambda i: (not starts[i].automatic, -first_steps[i])):
        shared.begin_run(reuse_before=min(first_steps[index], previous_start))
        results[index] = delayed_negative_ksampler(
            model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent, timings[index],
            before_negative, denoise=denoise, guidance=guidance, shared=shared, auto=auto, nag=nag)
        started = results[index].get(NEGATIVE_START_KEY)
        previous_start = last if started is None else started
    labels = [auto_label(results[index].get(NEGATIVE_START_KEY)) if start.automatic else start.label
              for index, start in enumerate(starts)]
    return SweepResult([results[index] for index in range(len(starts))], labels)


def auto_label(start: int | None) -> str:
    return "auto: never" if start is None else f"auto: start {start}"
