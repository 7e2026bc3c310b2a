"""Delayed-negative guidance: which steps use the negative prompt, and the guider that applies it.

Importable and testable without a ComfyUI server; needs only the `comfy` package.
"""
