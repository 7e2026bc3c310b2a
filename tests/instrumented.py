"""An instrumented model: records, for every real model evaluation, which unconditional
conditioning it saw and which step the sampler's own loop was on.

The step comes from the sampler itself (the loop variable of the running k-diffusion or
UniPC function, read from the call stack), so it is an independent reference for the pack's
step clock, not a copy of its rule.
"""

import inspect
from dataclasses import dataclass
from pathlib import Path

import comfy.extra_samplers.uni_pc
import comfy.k_diffusion.sampling
import third_party_samplers
import torch

# Files whose sampler loops name their step `i` next to `sigmas`.
LOOP_FILES = {Path(module.__file__).resolve() for module in (comfy.k_diffusion.sampling, third_party_samplers)}
UNI_PC_FILE = Path(comfy.extra_samplers.uni_pc.__file__).resolve()


@dataclass
class Evaluation:
    sigma: float
    sampler_step: int | None  # None where the sampler has no per-step loop (dpm_fast, dpm_adaptive)
    uncond: str | None  # the name of the conditioning the unconditional chunk used, None if skipped
    chunks: tuple = ()  # ComfyUI's cond_or_uncond: the order of the branches in the batch


def sampler_loop_step():
    frame = inspect.currentframe()
    while frame is not None:
        path = Path(frame.f_code.co_filename).resolve()
        local = frame.f_locals
        if path in LOOP_FILES and isinstance(local.get("i"), int) and "sigmas" in local:
            return local["i"]
        if path == UNI_PC_FILE and frame.f_code.co_name == "sample":
            # Iteration step_index of UniPC's loop evaluates the model at timesteps[step_index].
            return local.get("step_index", 0)
        frame = frame.f_back
    return None


def instrument(model, embeddings: dict[str, torch.Tensor], log: list):
    """A clone of `model` that appends an Evaluation to `log` for every model evaluation.

    `embeddings` maps a name to the cross-attention tensor of each conditioning in play, so the
    unconditional chunk can be named by what it holds.
    """

    def name_of(crossattn):
        for name, tensor in embeddings.items():
            own = tensor[0].to(crossattn)
            lead = crossattn.shape[0] - own.shape[0]  # Flux.2's model pads it in front with zeros (model_base.Flux2)
            if lead >= 0 and crossattn.shape[1:] == own.shape[1:] and torch.equal(crossattn[lead:], own) \
                    and not crossattn[:lead].any():
                return name
        return "unknown"

    def wrapper(apply_model, args):
        c = args["c"]
        chunks = args["cond_or_uncond"]
        batch = args["input"].shape[0] // len(chunks)
        uncond = None
        if 1 in chunks:
            uncond = name_of(c["c_crossattn"][chunks.index(1) * batch])
        log.append(Evaluation(float(args["timestep"][0]), sampler_loop_step(), uncond, tuple(chunks)))
        return apply_model(args["input"], args["timestep"], **c)

    patched = model.clone()
    patched.set_model_unet_function_wrapper(wrapper)
    return patched
