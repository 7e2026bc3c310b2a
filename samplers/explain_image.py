"""Explain an existing image: where the model sees each word in it, at chosen noise levels.

A picture that was not sampled here (a photo, another workflow's output) has no sampling run for
Record Attention Maps to watch, so this makes the runs. For each chosen step of a schedule, the
image's latent is noised to the sigma that step starts at, with ComfyUI's noise for the seed
(comfy.sample.prepare_noise, scaled by the model's own noise_scaling), and the model is evaluated
once there through ComfyUI's CFGGuider, positive and unconditional branch at the cfg given. That
is exactly what the stock KSampler Advanced does at the first step of a pass that starts at that
step (add_noise on, the same seed), so the recorder sees a stock evaluation: a sampler of one model
evaluation, at the first of [sigma of the step, sigma of the next], as every stock sampler's
first step evaluates it.

Every chosen step starts from the clean latent and the same noise, so the steps differ only in
their noise level. The maps of the runs are put side by side: the ATTENTION_MAPS' step i is the
i-th chosen step, its sigma the one that step starts at.
"""

import comfy.sample
import comfy.samplers
import comfy.utils
import torch
from comfy.patcher_extension import WrappersMP

from ..attention.maps import AttentionMaps
from ..attention.record_model import WRAPPER_KEY
from ..attention.recording import AttentionRecording



def evaluate_once(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """A sampler (k-diffusion form) that evaluates the model once, at sigmas[0], and returns its prediction.

    It reports its one step as every k-diffusion sampler does, so the recorder's step clock knows
    the evaluation is step 0 (a sampler that reports nothing is told to the user as one whose
    steps the pack cannot follow)."""
    denoised = model(x, sigmas[0] * x.new_ones([x.shape[0]]), **(extra_args or {}))
    if callback is not None:
        callback({"x": x, "i": 0, "sigma": sigmas[0], "sigma_hat": sigmas[0], "denoised": denoised})
    return denoised


ONE_EVALUATION = comfy.samplers.KSAMPLER(evaluate_once)


def chosen_steps(text: str, steps: int) -> list[int]:
    """'all', or steps of the schedule such as '3, 6, 9' or '2-5': each once, in schedule order."""
    if text.strip().lower() == "all":
        return list(range(steps))
    chosen = set()
    for part in (part.strip() for part in text.split(",")):
        if not part:
            continue
        first, _, last = part.partition("-")
        try:
            chosen.update(range(int(first), int(last or first) + 1))
        except ValueError:
            raise ValueError(f"'{part}' is not a step or a range of steps such as 6 or 2-5.") from None
    if not chosen:
        raise ValueError(f"No step to explain: give 'all', or steps of the schedule such as 3, 6, 9 "
                         f"(0 to {steps - 1}, 0 the noisiest).")
    past = sorted(step for step in chosen if step >= steps)
    if past:
        raise ValueError(f"Steps {past} are past the schedule of {steps} steps: choose steps 0 to {steps - 1}, "
                         "or raise steps.")
    return sorted(chosen)


def explain_latent(model, recording: AttentionRecording, latent: dict, positive, negative, steps: int,
                   scheduler: str, explain_steps: str, seed: int, cfg: float) -> AttentionMaps:
    """The recorded maps of one evaluation per chosen step of `latent` (a LATENT dict) noised to
    that step's sigma. `model` is the MODEL of Record Attention Maps that records into `recording`."""
    if WRAPPER_KEY not in model.wrappers.get(WrappersMP.SAMPLER_SAMPLE, {}):
        raise ValueError("This model does not record attention: connect the MODEL output of Record Attention "
                         "Maps (and its recording output) to Explain Image.")
    schedule = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, steps).cpu()
    chosen = chosen_steps(explain_steps, len(schedule) - 1)
    latent_image = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    noise = comfy.sample.prepare_noise(latent_image, seed, latent.get("batch_index"))
    progress = comfy.utils.ProgressBar(len(chosen))
    runs = []
    for done, step in enumerate(chosen):
        runs.append(evaluate_at(model, recording, schedule[step:step + 2].clone(), noise, latent_image,
                                latent.get("noise_mask"), positive, negative, seed, cfg))
        progress.update_absolute(done + 1)
    return side_by_side(runs)


def evaluate_at(model, recording: AttentionRecording, sigmas, noise, latent_image, noise_mask, positive, negative,
                seed: int, cfg: float) -> AttentionMaps:
    """One evaluation at sigmas[0], as comfy.samplers.sample runs it (KSampler Advanced's path)."""
    before = recording.sums
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(positive, negative)
    guider.set_cfg(cfg)
    guider.sample(noise, latent_image, ONE_EVALUATION, sigmas,
                  denoise_mask=noise_mask, disable_pbar=True, seed=seed)
    if recording.sums is None or recording.sums is before:
        raise ValueError("The model recorded into another recording: connect the MODEL and the recording "
                         "outputs of the same Record Attention Maps node to Explain Image.")
    return recording.snapshot()


def side_by_side(runs: list[AttentionMaps]) -> AttentionMaps:
    """One AttentionMaps whose steps are the runs' (one step each), in order."""
    first = runs[0]
    cfg = None if any(run.cfg is None for run in runs) else torch.cat([run.cfg for run in runs])
    evaluated = torch.cat([run.evaluated if run.evaluated is not None else torch.ones(run.steps, dtype=torch.bool)
                           for run in runs])
    shares = [run.influence_share for run in runs]
    share = None if any(each is None for each in shares) else torch.cat(shares)
    return AttentionMaps(first.tracks, torch.cat([run.maps for run in runs]),
                         tuple(sigma for run in runs for sigma in run.sigmas), cfg, first.frames, evaluated, share)
