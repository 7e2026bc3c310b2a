"""What `make run` lists in Load Checkpoint: the toy portraits model, first when the ComfyUI has no
checkpoint of its own, beside the user's own otherwise, and nothing written into that ComfyUI.

The extra-model-paths file devtools/host/comfyui_server.py writes is read by ComfyUI's own loader
(utils/extra_config.py) into its own folder_paths, on a stand-in ComfyUI folder.
"""

import contextlib
import importlib.util

import folder_paths
import pytest
from devtools.host.comfyui_home import comfyui_home
from devtools.host.comfyui_server import TOY_CHECKPOINT, write_paths_config

TEST_CHECKPOINT = "delayed-negative-test-sd15.safetensors"


@contextlib.contextmanager
def only_the_configured_checkpoints(comfyui):
    """folder_paths' checkpoint folders as a fresh ComfyUI in `comfyui` has them; restored after."""
    saved = folder_paths.folder_names_and_paths["checkpoints"]
    folder_paths.folder_names_and_paths["checkpoints"] = ([str(comfyui / "models" / "checkpoints")], saved[1])
    folder_paths.filename_list_cache.pop("checkpoints", None)
    try:
        yield
    finally:
        folder_paths.folder_names_and_paths["checkpoints"] = saved
        folder_paths.filename_list_cache.pop("checkpoints", None)


def load_extra_path_config(path: str) -> None:
    """ComfyUI's own reader of --extra-model-paths-config (by file: another `utils` may be imported)."""
    spec = importlib.util.spec_from_file_location("extra_config", comfyui_home() / "utils" / "extra_config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.load_extra_path_config(path)


def listed_checkpoints(comfyui, workdir, for_tests=False) -> list[str]:
    with only_the_configured_checkpoints(comfyui):
        load_extra_path_config(str(write_paths_config(comfyui, workdir, for_tests)))
        return folder_paths.get_filename_list("checkpoints")


def files_in(folder) -> dict:
    return {str(path.relative_to(folder)): path.stat().st_mtime_ns for path in folder.rglob("*")}


@pytest.fixture
def comfyui(tmp_path, toy_checkpoint_file):
    """A stand-in for a ComfyUI that is not ours: its folders, no checkpoint."""
    root = tmp_path / "ComfyUI"
    (root / "models" / "checkpoints").mkdir(parents=True)
    (root / "custom_nodes").mkdir()
    return root


def test_make_run_lists_only_the_toy_model_when_comfyui_has_no_checkpoint(comfyui, tmp_path):
    before = files_in(comfyui)
    assert listed_checkpoints(comfyui, tmp_path / "run") == [TOY_CHECKPOINT.name]
    assert files_in(comfyui) == before


def test_make_run_lists_the_toy_model_beside_the_users_own(comfyui, tmp_path):
    (comfyui / "models" / "checkpoints" / "a-user-model.safetensors").write_bytes(b"")
    before = files_in(comfyui)
    assert listed_checkpoints(comfyui, tmp_path / "run") == ["a-user-model.safetensors", TOY_CHECKPOINT.name]
    assert listed_checkpoints(comfyui, tmp_path / "run") == ["a-user-model.safetensors", TOY_CHECKPOINT.name]
    assert files_in(comfyui) == before


def test_the_tests_see_the_test_checkpoint_too(comfyui, tmp_path):
    assert {TEST_CHECKPOINT, TOY_CHECKPOINT.name} <= set(listed_checkpoints(comfyui, tmp_path / "run", True))
