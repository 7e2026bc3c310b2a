"""Write the seeded SD1.5-architecture checkpoint the tests and `make run` use.

Usage: python devtools/make_checkpoint.py OUTPUT.safetensors
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfy_env  # noqa: E402,F401  (puts ComfyUI on the path)
import safetensors.torch  # noqa: E402

from tiny_models import sd15_checkpoint  # noqa: E402

if __name__ == "__main__":
    output = Path(sys.argv[1])
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_suffix(".partial")
    safetensors.torch.save_file(sd15_checkpoint(), str(partial), metadata={"format": "pt"})
    partial.rename(output)
    print(f"wrote {output} ({output.stat().st_size / 1e6:.0f} MB)")
