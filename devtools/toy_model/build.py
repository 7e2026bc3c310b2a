"""Write the toy portraits checkpoint: committed UNet and VAE weights + the seeded CLIP-L.

    python -m devtools.toy_model.build BASE.safetensors OUTPUT.safetensors

BASE is the generated test checkpoint (devtools/models/make_checkpoint.py); only its text encoder is
used, after checking that its tensors hash to what the UNet was trained with
(devtools/toy_model/weights/text_encoder.sha256). The output loads through the stock
CheckpointLoaderSimple: an SD1.5-architecture UNet, CLIP-L, and a TAESD VAE.
Standard library, torch and safetensors only: it does not need ComfyUI.
"""

import sys
from pathlib import Path

import safetensors
import safetensors.torch
import torch


from devtools.toy_model.int8_weights import dequantise
from devtools.toy_model.text_encoder import FINGERPRINT_FILE, TEXT_ENCODER_PREFIX, fingerprint

WEIGHTS = Path(__file__).resolve().parent / "weights"


def toy_checkpoint(base: Path) -> dict:
    """The full state dict, fp16, with ComfyUI's checkpoint key prefixes."""
    expected = FINGERPRINT_FILE.read_text().strip()
    found = fingerprint(base)
    if found != expected:
        sys.exit(f"The text encoder in {base} is not the one the toy model was trained with "
                 f"(sha256 {found[:16]}…, trained with {expected[:16]}…). It comes from "
                 "devtools/models/make_checkpoint.py and devtools/models/tiny_models.py: if those changed, restore "
                 "them or retrain with `make train`.")
    for needed in ("unet.safetensors", "taesd.safetensors"):
        if not (WEIGHTS / needed).is_file():
            sys.exit(f"{WEIGHTS / needed} is missing: it is committed with the repository "
                     "(or made by `make train`).")
    state = {}
    with safetensors.safe_open(str(base), framework="pt") as tensors:
        for name in tensors.keys():  # noqa: SIM118 (safe_open is not iterable)
            if name.startswith(TEXT_ENCODER_PREFIX):
                state[name] = tensors.get_tensor(name)
    unet = dequantise(safetensors.torch.load_file(str(WEIGHTS / "unet.safetensors")), torch.float16)
    state.update({"model.diffusion_model." + k: v for k, v in unet.items()})
    taesd = safetensors.torch.load_file(str(WEIGHTS / "taesd.safetensors"))
    state.update({"first_stage_model." + k: v.half() for k, v in taesd.items()})
    return state


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    base, output = Path(sys.argv[1]), Path(sys.argv[2])
    if not base.is_file():
        sys.exit(f"{base} is missing: `make setup` generates it first.")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_suffix(".partial")
    safetensors.torch.save_file(toy_checkpoint(base), str(partial), metadata={"format": "pt"})
    partial.rename(output)
    print(f"wrote {output} ({output.stat().st_size / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()
