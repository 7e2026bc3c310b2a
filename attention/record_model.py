"""Attach an AttentionRecording to a clone of a MODEL through ComfyUI's documented hooks.

- on a UNet, an attn2 replace patch on every cross-attention layer chosen, added at each
  evaluation on top of any other pack's (unet_hooks.py): it returns exactly what would have run
  without it (so the image is bit-identical) and hands q and k to the recording on the side; on
  a DiT, an attention override that does the same at every image-to-text attention call
  (dit_hooks.py);
- three wrappers (add_wrapper_with_key): SAMPLER_SAMPLE starts a run with the schedule and
  learns the sampler's step pattern (clock/step_clock.py), PREDICT_NOISE attributes each
  model evaluation to its step, CALC_COND_BATCH tells which prompt each batch chunk holds;
- a pre-cfg function (set_model_sampler_pre_cfg_function) notes the cfg of each step, for the
  chart's guidance line; it returns the predictions unchanged;
- with the negative's influence measured, the hooks of negative_influence.py inside these.
"""

from comfy.patcher_extension import WrappersMP

from ..clock.step_clock import StepClock
from .dit_hooks import observe_dit_attention
from .dit_layout import FAMILIES, family_of
from .negative_influence import measure_negative_influence
from .recording import AttentionRecording
from .unet_hooks import cross_attention_blocks, observe_unet_attention


WRAPPER_KEY = "delayed_negative.attention"


def record_attention(model, recording: AttentionRecording, layers: str = "all", empty_in_place_of=None):
    """A clone of `model` that records into `recording`; the input model is left as it was.

    With `empty_in_place_of` (the negative's CONDITIONING -> the empty prompt's in its place) and a
    recording made with negative_influence, the clone also measures the negative's influence."""
    patched = model.clone()
    attach_recording(patched, recording, layers)

    def sampler_sample(executor, guider, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
                       *args, **kwargs):
        clock = StepClock.learn(executor.class_obj, guider, sigmas, noise, latent_image, denoise_mask,
                                extra_args.get("model_options"), extra_args.get("seed"))
        recording.learn_prompts(getattr(guider, "original_conds", {}))
        recording.begin_run(clock, sigmas, noise.shape, other_hooks(extra_args.get("model_options") or {}))
        return executor(guider, sigmas, extra_args, callback, noise, latent_image, denoise_mask, *args, **kwargs)

    def predict_noise(executor, x, timestep, model_options={}, seed=None):
        recording.begin_evaluation(float(timestep[0]))
        return executor(x, timestep, model_options, seed)

    def calc_cond_batch(executor, model, conds, x_in, timestep, model_options):
        recording.name_conds(conds)
        return executor(model, conds, x_in, timestep, model_options)

    def note_cfg(args):
        recording.note_cfg(args["cond_scale"])
        return args["conds_out"]

    patched.set_model_sampler_pre_cfg_function(note_cfg)
    patched.add_wrapper_with_key(WrappersMP.SAMPLER_SAMPLE, WRAPPER_KEY, sampler_sample)
    patched.add_wrapper_with_key(WrappersMP.PREDICT_NOISE, WRAPPER_KEY, predict_noise)
    run_first(patched, WrappersMP.PREDICT_NOISE, WRAPPER_KEY)
    patched.add_wrapper_with_key(WrappersMP.CALC_COND_BATCH, WRAPPER_KEY, calc_cond_batch)
    if recording.negative_influence:
        if empty_in_place_of is None:
            raise ValueError("The recording keeps the negative's influence, which needs the empty prompt: pass "
                             "empty_in_place_of to record_attention.")
        # added after the recording's own hooks, so they run inside them: after the run has begun,
        # the step is known and the conds are named
        measure_negative_influence(patched, recording, empty_in_place_of, f"{WRAPPER_KEY}.influence")
    return patched


def run_first(patched, kind: str, key: str) -> None:
    """Make the clone's wrapper `key` the outermost of its kind (ComfyUI runs them in the order of
    their keys): a cache wrapper placed before Record (LazyCache) answers some evaluations without
    calling the ones inside it, and the step clock must still count every evaluation."""
    ours = patched.wrappers[kind]  # the clone's own copy (ModelPatcher.clone copies it)
    patched.wrappers[kind] = {key: ours[key], **{name: value for name, value in ours.items() if name != key}}


def attach_recording(patched, recording: AttentionRecording, layers: str) -> None:
    """Hook the recording into a UNet's cross-attention blocks or a mapped DiT's text attention."""
    blocks = cross_attention_blocks(patched.get_model_object("diffusion_model"), layers)
    if blocks:
        observe_unet_attention(patched, blocks, recording.add, WRAPPER_KEY)
        return
    family = family_of(patched)
    if family is None:
        mapped = ", ".join(name for name, _joint in FAMILIES.values())
        raise ValueError(f"Attention maps do not cover this model ({type(patched.model).__name__}) yet: they work "
                         f"with SD1.x, SD2.x and SDXL UNets and with {mapped} DiT models.")
    if layers != "all":
        raise ValueError(f"{family[0]} is a DiT: it has no input, middle or output blocks. Set layers to 'all'.")
    observe_dit_attention(patched, recording.add_text_attention, WRAPPER_KEY)


def other_hooks(model_options: dict) -> list[str]:
    """What else on the sampled model runs around the model's evaluation and could compute the
    image without ComfyUI's attention functions: other packs' wrappers by their keys (e.g.
    'easycache'), a model function wrapper, block replace patches. Named in the message a user
    gets when no attention reached the recording."""
    options = model_options.get("transformer_options", {})
    names = []
    for kind in ("outer_sample", "predict_noise", "calc_cond_batch", "apply_model", "diffusion_model"):
        names += [f"{key} ({kind} wrapper)" for key in options.get("wrappers", {}).get(kind, {})
                  if not key.startswith("delayed_negative.")]
    if model_options.get("model_function_wrapper") is not None:
        names.append("a model function wrapper (set_model_unet_function_wrapper)")
    names += [f"{kind} replace patches" for kind in options.get("patches_replace", {}) if kind not in ("attn2",)]
    return names

