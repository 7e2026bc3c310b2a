"""Delayed negative prompts and attention maps for ComfyUI (arXiv 2406.02965). Registers only."""

from .nodes import comfy_entrypoint

__all__ = ["comfy_entrypoint"]
