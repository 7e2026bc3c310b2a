"""Sample like ComfyUI's KSampler / KSamplerAdvanced, with the delayed-negative guider.

Mirrors `nodes.common_ksampler` and `comfy.samplers.KSampler.sample` step for step (noise,
schedule, start/end slicing, previews, progress bar), so that with the negative on from
step 0 the result is bit-identical to the stock node. Only the guider differs.

The output LATENT also says when the negative starts (NEGATIVE_START_KEY: a step of the whole
schedule; None for never, or an automatic start still to be found) and, for the automatic
start, what it found (AUTO_STATE_KEY), so that the next pass of a two-pass workflow carries on
from it.
"""

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
import torch

from .auto_start import AutoStart
from .delayed_negative_guider import DelayedNegativeGuider
from .guidance_schedule import GuidanceSchedule
from .nag import NAGSettings
from .negative_window import NegativeTiming
from .shared_prefix import SharedPrefix

NEGATIVE_START_KEY = "delayed_negative_start"
AUTO_STATE_KEY = "delayed_negative_auto"


def full_schedule(model, steps: int, sampler_name: str, scheduler: str, denoise: float = 1.0):
    """The sigmas the stock KSampler samples for these settings (before start/end slicing)."""
    return comfy.samplers.KSampler(model, steps=steps, device=model.load_device, sampler=sampler_name,
                                   scheduler=scheduler, denoise=denoise, model_options=model.model_options).sigmas


def delayed_negative_ksampler(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                              timing: NegativeTiming, before_negative=None, denoise=1.0, add_noise=True,
                              start_at_step=None, end_at_step=None, return_with_leftover_noise=False,
                              guidance: GuidanceSchedule | None = None, shared: SharedPrefix | None = None,
                              auto: AutoStart | None = None, nag: NAGSettings | None = None):
    """Run one sampling pass; returns the output LATENT dict, as the stock nodes do."""
    schedule = full_schedule(model, steps, sampler_name, scheduler, denoise)
    sigmas = schedule
    if end_at_step is not None and end_at_step < len(sigmas) - 1:
        sigmas = sigmas[:end_at_step + 1].clone()
        if not return_with_leftover_noise:
            sigmas[-1] = 0
    latent_image = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    out = latent.copy()
    first_step = start_at_step or 0
    if first_step >= len(sigmas) - 1:
        out["samples"] = latent_image  # nothing left to sample, as with the stock KSamplerAdvanced
        return out
    sigmas = sigmas[first_step:]

    if add_noise:
        noise = comfy.sample.prepare_noise(latent_image, seed, latent.get("batch_index"))
    else:
        noise = torch.zeros(latent_image.size(), dtype=latent_image.dtype, layout=latent_image.layout, device="cpu")

    guider = DelayedNegativeGuider(model, timing, schedule, first_step, guidance, auto, latent.get(AUTO_STATE_KEY),
                                   nag)
    guider.set_conds(positive, negative, before_negative)
    guider.set_cfg(cfg)
    guider.shared = shared
    callback = latent_preview.prepare_callback(model, steps)
    samples = guider.sample(noise, latent_image, comfy.samplers.sampler_object(sampler_name), sigmas,
                            denoise_mask=latent.get("noise_mask"), callback=callback,
                            disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
    out["samples"] = samples.to(comfy.model_management.intermediate_device())
    start = guider.window.start_step
    known = guider.finder is None or guider.finder.state.start_step is not None
    out[NEGATIVE_START_KEY] = start if known and start < len(schedule) - 1 else None
    if guider.finder is not None:
        out[AUTO_STATE_KEY] = guider.finder.state
    return out
