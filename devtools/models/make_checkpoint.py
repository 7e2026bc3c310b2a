"""Write a seeded checkpoint the tests (and `make run`, for SD1.5) use.

Usage: python -m devtools.models.make_checkpoint OUTPUT.safetensors [sd15|sd3]
  sd15 (default): the SD1.5 architecture with a reduced-depth UNet
  sd3: an SD3 MMDiT of 2 blocks with ComfyUI's CLIP-L and a TAESD3 VAE (devtools/models/tiny_models.py)
"""

import sys
from pathlib import Path
from devtools.host import comfy_env  # noqa: E402,F401  (puts ComfyUI on the path)
import safetensors.torch  # noqa: E402

from devtools.models.tiny_models import sd3_checkpoint, sd15_checkpoint  # noqa: E402

ARCHITECTURES = {"sd15": sd15_checkpoint, "sd3": sd3_checkpoint}

if __name__ == "__main__":
    output = Path(sys.argv[1])
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_suffix(".partial")
    build = ARCHITECTURES[sys.argv[2] if len(sys.argv) > 2 else "sd15"]
    safetensors.torch.save_file(build(), str(partial), metadata={"format": "pt"})
    partial.rename(output)
    print(f"wrote {output} ({output.stat().st_size / 1e6:.0f} MB)")
