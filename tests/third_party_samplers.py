"""Samplers no table knows: stand-ins for what other packs or future ComfyUI releases bring.

Each is a plain k-diffusion-style function, wrapped in ComfyUI's own KSAMPLER like any
custom sampler. Their loop variable `i` is the reference step (tests/instrumented.py reads it
from the call stack), so the tests hold the pack's clock to the sampler's own loop.
"""

import comfy.model_patcher
import comfy.model_sampling
import comfy.samplers
import torch


def euler_step(x, sigmas, i, denoised):
    """Euler from sigmas[i] to sigmas[i + 1] with the prediction `denoised`."""
    return x + (x - denoised) / sigmas[i] * (sigmas[i + 1] - sigmas[i])


def heun_step(model, x, sigmas, i, s_in, extra_args, denoised):
    """Heun's corrector: a second evaluation at the *next* step's sigma, inside step i."""
    d = (x - denoised) / sigmas[i]
    dt = sigmas[i + 1] - sigmas[i]
    if sigmas[i + 1] == 0:
        return x + d * dt
    x_2 = x + d * dt
    denoised_2 = model(x_2, sigmas[i + 1] * s_in, **extra_args)
    d_2 = (x_2 - denoised_2) / sigmas[i + 1]
    return x + (d + d_2) / 2 * dt


@torch.no_grad()
def sample_heun_reporting_first(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Reports each step right after its first evaluation, as ComfyUI's own samplers do."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "denoised": denoised})
        x = heun_step(model, x, sigmas, i, s_in, extra_args, denoised)
    return x


@torch.no_grad()
def sample_heun_reporting_last(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Reports each step only once it is finished, after the corrector."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        x = heun_step(model, x, sigmas, i, s_in, extra_args, denoised)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "denoised": denoised})
    return x


@torch.no_grad()
def sample_heun_silent(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Never reports its steps: the pack cannot learn where they begin."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        x = heun_step(model, x, sigmas, i, s_in, extra_args, denoised)
    return x


@torch.no_grad()
def sample_euler_adaptive(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Adds a midpoint evaluation whenever the prediction is not zero: what it evaluates
    depends on the model's output, so a dry run cannot predict it."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "denoised": denoised})
        if sigmas[i + 1] > 0 and denoised.abs().sum() > 0:
            sigma_mid = (sigmas[i] * sigmas[i + 1]).sqrt()
            x_mid = x + (x - denoised) / sigmas[i] * (sigma_mid - sigmas[i])
            denoised = model(x_mid, sigma_mid * s_in, **extra_args)
            x = x + (x_mid - denoised) / sigma_mid * (sigmas[i + 1] - sigmas[i])
        else:
            x = euler_step(x, sigmas, i, denoised)
    return x


@torch.no_grad()
def sample_euler_with_a_final_touch(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Euler, then one more evaluation at the last step's sigma whenever the prediction is not
    zero: the real run makes an evaluation its dry run never made."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "denoised": denoised})
        x = euler_step(x, sigmas, i, denoised)
    if denoised.abs().sum() > 0:
        model(x, sigmas[-2] * s_in, **extra_args)
    return x


@torch.no_grad()
def sample_euler_looking_back(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Begins each step after the first with an evaluation at the previous step's sigma (a
    corrector for the step before) and reports it as the step's first: its steps do not begin in
    their own sigma intervals, so the pack cannot learn them."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        if i > 0:
            looked_back = model(x, sigmas[i - 1] * s_in, **extra_args)
            if callback is not None:
                callback({"x": x, "i": i, "sigma": sigmas[i], "denoised": looked_back})
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if i == 0 and callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "denoised": denoised})
        x = euler_step(x, sigmas, i, denoised)
    return x


@torch.no_grad()
def sample_euler_reusing_its_last_prediction(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Reports each step at its end, and makes its last step from the previous prediction without
    evaluating the model: a step without an evaluation has no first evaluation to learn."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        if i < len(sigmas) - 2:
            denoised = model(x, sigmas[i] * s_in, **extra_args)
        x = euler_step(x, sigmas, i, denoised)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "denoised": denoised})
    return x


def midpoint_sigma(sigmas, i):
    """A sigma inside step i: between its own sigma and the next."""
    return (sigmas[i] * sigmas[i + 1]).sqrt() if sigmas[i + 1] > 0 else sigmas[i] / 2


@torch.no_grad()
def sample_midpoint(model, x, sigmas, extra_args=None, callback=None, disable=None, reuse_at=None):
    """Evaluates each step once, at a sigma inside it (never at the step's own sigma), and reports
    right after; with `reuse_at`, that step evaluates nothing and reuses the previous prediction."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        if i != reuse_at:
            denoised = model(x, midpoint_sigma(sigmas, i) * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "denoised": denoised})
        x = euler_step(x, sigmas, i, denoised)
    return x


@torch.no_grad()
def sample_midpoint_reusing_at_step_3(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """The midpoint sampler whose step 3 makes no evaluation: step 2's evaluation is also the
    last one before step 3's report, so the reports alone would give it to step 3."""
    return sample_midpoint(model, x, sigmas, extra_args, callback, disable, reuse_at=3)



@torch.no_grad()
def sample_cfgpp_history(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """A CFG++ sampler with a multistep history, standing in for ComfyUI's `cfgpp_ud10_ab` (added
    after 0.33): one evaluation per step, reported right after it; the unconditional prediction
    read through a post-cfg function the sampler adds to the model options, as CFG++ samplers do;
    each step blended with the previous step's slope; the last step to sigma 0 extrapolated from
    the last two predictions. It reads the model's sampling through the wrapped model, as the real
    one does, so the dry run's stand-in must answer that too."""
    extra_args = {} if extra_args is None else extra_args
    flow = isinstance(model.inner_model.model_patcher.get_model_object("model_sampling"), comfy.model_sampling.CONST)
    unconditional = {}

    def keep_unconditional(args):
        unconditional["denoised"] = args["uncond_denoised"] if args["uncond"] is not None else args["cond_denoised"]
        return args["denoised"]

    options = comfy.model_patcher.set_model_options_post_cfg_function(dict(extra_args.get("model_options", {})),
                                                                      keep_unconditional)
    extra_args = {**extra_args, "model_options": options}
    scale = (lambda sigma: 1 - sigma) if flow else (lambda sigma: 1)  # the signal's share of x at sigma
    s_in = x.new_ones([x.shape[0]])
    previous_slope = previous_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        noise = (x - scale(sigmas[i]) * unconditional["denoised"]) / sigmas[i]  # CFG++: renoise with the uncond
        step = scale(sigmas[i + 1]) * denoised + sigmas[i + 1] * noise - x
        slope = step / (sigmas[i + 1] - sigmas[i])
        if previous_slope is not None:
            step = torch.lerp(step, (1.5 * slope - 0.5 * previous_slope) * (sigmas[i + 1] - sigmas[i]), 0.25)
        x = x + step
        if sigmas[i + 1] == 0 and previous_denoised is not None:
            x = denoised - sigmas[i] * (denoised - previous_denoised) / (sigmas[i] - sigmas[i - 1])
        previous_slope, previous_denoised = slope, denoised
    return x


class SilentEulerSampler(comfy.samplers.Sampler):
    """A SAMPLER that is no KSAMPLER (no `sampler_function`), as a pack may bring: euler, never
    reporting its steps."""

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        x = noise * sigmas[0] + (latent_image if latent_image is not None else 0)
        s_in = x.new_ones([x.shape[0]])
        for i in range(len(sigmas) - 1):
            denoised = model_wrap(x, sigmas[i] * s_in, **extra_args)
            x = euler_step(x, sigmas, i, denoised)
        return x
