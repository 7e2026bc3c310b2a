"""Sample the toy model through the stock nodes and the pack's delayed-negative KSampler, and score it.

Shared by the known-answer test (tests/test_toy_model.py) and `make study`. Needs ComfyUI
importable and the pack imported as `delayed_negative` (comfy_env.import_pack()).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .detect import change_outside, dark_pixels_in_glasses_region, face_overlap, find_face, glasses_region

PACK_ROOT = Path(__file__).resolve().parents[2]
TOY_CHECKPOINT = PACK_ROOT / ".models" / "checkpoints" / "delayed-negative-toy-portraits.safetensors"
GLASSES_PIXELS = 20  # drawn portraits: with glasses >= 27 dark pixels there, without <= 14 (eyes)


@dataclass(frozen=True)
class Run:
    """One sampling set-up; `negative_start` None = the stock KSampler (negative from step 0; at
    cfg 1 the positive alone). With `nag` (samplers.nag.NAGSettings; set cfg 1) the negative acts
    through NAG from `negative_start` on, in `unit` ('step' or 'auto'). `batch_index` samples only
    those images of the seed's sequence of single-image noises (ComfyUI's batch_index, as Latent
    From Batch sets it) instead of a batch of `batch`."""

    positive: str
    negative: str = ""
    negative_start: float | None = None
    seed: int = 0
    batch: int = 16
    steps: int = 12
    cfg: float = 5.0
    sampler: str = "euler"
    scheduler: str = "normal"
    unit: str = "step"
    nag: object = None
    batch_index: tuple[int, ...] | None = None


def load_toy_checkpoint(path: Path = TOY_CHECKPOINT):
    """(model, clip, vae) through the stock CheckpointLoaderSimple (the toy model, or `path`)."""
    import folder_paths

    import nodes

    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing" + (": `make setup` builds it." if path == TOY_CHECKPOINT else "."))
    folder_paths.add_model_folder_path("checkpoints", str(path.parent))
    return nodes.CheckpointLoaderSimple().load_checkpoint(path.name)


def sample(checkpoint, run: Run) -> np.ndarray:
    """Decoded images, N x 64 x 64 x 3 in [0, 1]."""
    return sample_with_start(checkpoint, run)[0]


def sample_with_start(checkpoint, run: Run) -> tuple[np.ndarray, int]:
    """Decoded images, N x 64 x 64 x 3 in [0, 1], and the step the negative started at (the
    node's negative_start_step: the step 'auto' picked; -1 for never; 0 for the stock KSampler)."""
    from delayed_negative.nodes.delayed_negative import DelayedNegativeKSampler

    import nodes

    model, clip, vae = checkpoint
    positive = nodes.CLIPTextEncode().encode(clip, run.positive)[0]
    negative = nodes.CLIPTextEncode().encode(clip, run.negative)[0]
    latent = nodes.EmptyLatentImage().generate(64, 64, len(run.batch_index) if run.batch_index else run.batch)[0]
    if run.batch_index:
        latent = {**latent, "batch_index": list(run.batch_index)}
    if run.negative_start is None:
        samples = nodes.KSampler().sample(model, run.seed, run.steps, run.cfg, run.sampler, run.scheduler,
                                          positive, negative, latent)[0]
        start = 0
    else:
        samples, start = DelayedNegativeKSampler.execute(
            model, run.seed, run.steps, run.cfg, run.sampler, run.scheduler, positive, negative, latent, 1.0,
            run.negative_start, -1, run.unit, "empty prompt", clip, None, nag=run.nag).result
    return nodes.VAEDecode().decode(vae, samples)[0].detach().float().numpy(), start


def has_glasses(images: np.ndarray) -> np.ndarray:
    return np.array([dark_pixels_in_glasses_region(image) >= GLASSES_PIXELS for image in images])


@dataclass
class Comparison:
    """A run scored against the reference run without a negative, image by image."""

    glasses: np.ndarray          # bool per image
    face_overlap: np.ndarray     # skin IoU with the reference image, outside the glasses region
    change_outside: np.ndarray   # mean |pixel change| outside the reference's glasses region


def compare(images: np.ndarray, reference: np.ndarray) -> Comparison:
    overlaps, changes = [], []
    for image, before in zip(images, reference, strict=True):
        face = find_face(before)
        region = glasses_region(face, before.shape[:2]) if face else np.zeros(before.shape[:2], bool)
        overlaps.append(face_overlap(image, before, region))
        changes.append(change_outside(image, before, region))
    return Comparison(has_glasses(images), np.array(overlaps), np.array(changes))
