"""Delayed negative prompts and attention maps for ComfyUI (arXiv 2406.02965). Registers only."""

# ComfyUI always imports this folder as a package. pytest imports this file alone when the
# checkout's folder name is no Python name (a clone named comfyui-delayed-negative): then there
# is nothing to register.
if __package__:
    from .nodes import comfy_entrypoint

# The Attention Viewer's widget; ComfyUI serves it for V3 packs too (nodes.py reads this attribute).
WEB_DIRECTORY = "./web"

__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
