"""Whether a negative prompt can act at the cfg a user set, on the model given: said before
sampling, in words that say what to change, rather than a run whose negative does nothing."""


def check_cfg(cfg: float, model=None) -> None:
    if cfg <= 1.0 and guidance_distilled(model):
        raise ValueError(f"cfg is {cfg:g}, and this {type(model.model).__name__} model is guidance-distilled (like Flux "
                         "dev: it takes its guidance from FluxGuidance, not cfg), so ComfyUI evaluates no "
                         "unconditional branch and a negative prompt does nothing. Raise cfg above 1 (slower, and "
                         "distilled models were not trained for it), or use a model made for cfg and negative "
                         "prompts (SD3.x, Chroma, Qwen-Image, Wan).")
    if cfg <= 1.0:
        raise ValueError(f"cfg is {cfg:g}: at cfg 1 or below the unconditional branch has no effect, so a "
                         "negative prompt (delayed or not) does nothing. Raise cfg above 1 (SD1.5: 5-8), or "
                         "use the stock KSampler for models sampled without CFG.")


def guidance_distilled(model) -> bool:
    """Whether a MODEL embeds its guidance (Flux dev and schnell) instead of being sampled with cfg."""
    config = getattr(getattr(model, "model", None), "model_config", None)
    return bool(getattr(config, "unet_config", {}).get("guidance_embed", False))
