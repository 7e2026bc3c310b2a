"""Seeded models built from ComfyUI's own classes: the generated checkpoints and the small in-memory ones."""
