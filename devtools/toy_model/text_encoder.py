"""The frozen text encoder: the seeded CLIP-L of the generated test checkpoint.

The toy UNet was trained on this encoder's embeddings of the caption vocabulary; a different
CLIP (another seed, another generator) would give it prompts it has never seen. `fingerprint`
identifies the encoder by its tensors, so the builder can refuse a mismatch.
"""

import hashlib
from pathlib import Path

import safetensors
import torch

TEXT_ENCODER_PREFIX = "cond_stage_model."
FINGERPRINT_FILE = Path(__file__).resolve().parent / "weights" / "text_encoder.sha256"


def fingerprint(checkpoint: Path) -> str:
    """SHA-256 over the text encoder's tensors (names, dtypes, shapes and bytes, in name order)."""
    digest = hashlib.sha256()
    with safetensors.safe_open(str(checkpoint), framework="pt") as tensors:
        for name in sorted(k for k in tensors.keys() if k.startswith(TEXT_ENCODER_PREFIX)):  # noqa: SIM118 (safe_open is not iterable)
            tensor = tensors.get_tensor(name).contiguous()
            digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(tensor.view(-1).view(dtype=torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def load_clip(checkpoint: Path):
    """The checkpoint's CLIP as ComfyUI loads it (the object CLIPTextEncode uses)."""
    import comfy.sd

    loaded = comfy.sd.load_checkpoint_guess_config(str(checkpoint), output_vae=False, output_clip=True)
    return loaded[1]


def embed(clip, captions: list[str]):
    """captions -> N x 77 x 768 float32 tensor, exactly what CLIPTextEncode gives the sampler."""
    import torch

    return torch.cat([clip.encode_from_tokens(clip.tokenize(text)).float() for text in captions])
