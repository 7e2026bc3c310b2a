"""Delayed negative prompts and attention maps for ComfyUI (arXiv 2406.02965). Registers only."""

from .nodes import comfy_entrypoint

# The Attention Viewer's widget; ComfyUI serves it for V3 packs too (nodes.py reads this attribute).
WEB_DIRECTORY = "./web"

__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
