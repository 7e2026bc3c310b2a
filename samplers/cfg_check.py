"""Whether a negative prompt can act at the cfg a user set, on the model given: said before
sampling, in words that say what to change, rather than a run whose negative does nothing."""

from .nag import NAGSettings
from .nag_model import nag_covers, uncovered_message

NAG_HINT = "or connect a 'NAG Settings (Delayed Negative)' node to 'nag' to guide with the negative at cfg 1"


def check_cfg(cfg: float, model=None, nag: NAGSettings | None = None) -> None:
    if nag is not None:
        check_nag(cfg, model, nag)
        return
    if cfg <= 1.0 and model is not None and reads_unconditional_at_cfg1(model):
        return  # e.g. ComfyUI's NAGuidance: the negative acts in the model's attention
    if cfg <= 1.0 and guidance_distilled(model):
        raise ValueError(f"cfg is {cfg:g}, and this {type(model.model).__name__} model is guidance-distilled (like Flux "
                         "dev: it takes its guidance from FluxGuidance, not cfg), so ComfyUI evaluates no "
                         f"unconditional branch and a negative prompt does nothing. Keep cfg 1 {NAG_HINT}; or "
                         "raise cfg above 1 (slower, and distilled models were not trained for it).")
    if cfg <= 1.0:
        raise ValueError(f"cfg is {cfg:g}: at cfg 1 or below the unconditional branch has no effect, so a "
                         "negative prompt (delayed or not) does nothing through CFG. Raise cfg above 1 "
                         f"(SD1.5: 5-8), {NAG_HINT} (for models sampled at cfg 1: Flux dev, Lightning LoRAs).")


def check_nag(cfg: float, model, nag: NAGSettings) -> None:
    nag.check()
    if cfg != 1.0:
        raise ValueError(f"cfg is {cfg:g}, and 'nag' is connected: NAG uses the negative prompt inside the model "
                         "at cfg 1, for models sampled without CFG. Set cfg to 1, or disconnect 'nag' to use the "
                         "negative through CFG (cfg above 1).")
    if model is not None and not nag_covers(model):
        raise ValueError(uncovered_message(model))
    if model is not None and reads_unconditional_at_cfg1(model):
        raise ValueError("This model already has a node that reads the unconditional branch at cfg 1 (like "
                         "ComfyUI's Normalized Attention Guidance): with 'nag' connected too the negative would "
                         "guide twice. Remove that node (the 'nag' settings time it by the sampler's steps), or "
                         "disconnect 'nag' to let it guide from negative_start on.")


def reads_unconditional_at_cfg1(model) -> bool:
    """Whether a node on the MODEL asks ComfyUI to evaluate the unconditional branch even at cfg 1
    (disable_cfg1_optimization: ComfyUI's NAGuidance does, to guide in the attention)."""
    return bool(getattr(model, "model_options", {}).get("disable_cfg1_optimization", False))


def guidance_distilled(model) -> bool:
    """Whether a MODEL embeds its guidance (Flux dev and schnell) instead of being sampled with cfg."""
    config = getattr(getattr(model, "model", None), "model_config", None)
    return bool(getattr(config, "unet_config", {}).get("guidance_embed", False))
