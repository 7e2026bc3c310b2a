"""Test harness: the real ComfyUI (`comfy` package, stock nodes, server) and the generated checkpoint.

Nothing of ComfyUI is mocked. The pack is imported the way ComfyUI imports a custom node
folder, under the package name `delayed_negative`.
"""

import sys
from pathlib import Path

import pytest

PACK_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PACK_ROOT / "devtools"))
import comfy_env  # noqa: E402  (ComfyUI on sys.path, --cpu without a GPU)

CHECKPOINT = PACK_ROOT / ".models" / "checkpoints" / "delayed-negative-test-sd15.safetensors"
SD3_CHECKPOINT = CHECKPOINT.with_name("delayed-negative-test-sd3.safetensors")

comfy_env.import_pack()


def load_generated_checkpoint(path: Path):
    """(model, clip, vae) from a checkpoint `make test` generates, via the stock loader node."""
    import folder_paths
    import nodes

    if not path.is_file():
        pytest.fail(f"{path} is missing: `make test` generates it.")
    folder_paths.add_model_folder_path("checkpoints", str(path.parent))
    return nodes.CheckpointLoaderSimple().load_checkpoint(path.name)


@pytest.fixture(scope="session")
def checkpoint():
    """The generated SD1.5-architecture checkpoint."""
    return load_generated_checkpoint(CHECKPOINT)


@pytest.fixture(scope="session")
def sd3_checkpoint():
    """The generated SD3 checkpoint (MMDiT, CLIP-L, TAESD3)."""
    return load_generated_checkpoint(SD3_CHECKPOINT)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """A real ComfyUI server (main.py subprocess) with this pack and the generated checkpoint."""
    from comfy_server import ComfyServer

    if not CHECKPOINT.is_file():
        pytest.fail(f"{CHECKPOINT} is missing: `make test` generates it.")
    running = ComfyServer(tmp_path_factory.mktemp("comfyui")).start()
    yield running
    running.stop()
