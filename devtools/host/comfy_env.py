"""Make the real ComfyUI importable in a plain Python process (tests, benchmarks, scripts).

ComfyUI reads its command-line flags when `comfy.model_management` is first imported; a
process that is not `main.py` gets the defaults, which assume a GPU. This sets `--cpu`
where there is none, before anything else of ComfyUI is imported.
"""

import sys
from pathlib import Path
from devtools.host.comfyui_home import comfyui_home  # noqa: E402

COMFYUI = comfyui_home()
if str(COMFYUI) not in sys.path:
    sys.path.insert(0, str(COMFYUI))

import torch  # noqa: E402

import comfy.cli_args  # noqa: E402

if not torch.cuda.is_available():
    comfy.cli_args.args.cpu = True


def import_pack(name: str = "delayed_negative"):
    """Import this pack the way ComfyUI imports a custom node folder: as a package named `name`."""
    import importlib.util

    pack_root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location(name, pack_root / "__init__.py",
                                                  submodule_search_locations=[str(pack_root)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
