"""Start a real ComfyUI server with this pack: for `make run` and for the tests.

The pack and our checkpoints are added through an extra-model-paths file, so a ComfyUI that is
not ours (COMFYUI_PATH) is never written to. `make run` lists the toy portraits model (a trained
model: the one example 07 names, and the first choice of a fresh Load Checkpoint when the
ComfyUI has no checkpoint of its own); the tests see every generated checkpoint, the
random-weights test checkpoint included. The pictures the examples load (Load Image: example 13's
portrait, committed in example_workflows/) `make run` copies into the input folder of a ComfyUI inside
this checkout; a ComfyUI of the user's is not written to, and `make run` says which pictures to copy
there. The tests upload them instead, as the frontend does (tests/comfy_server.py).
`COMFYUI_FRONTEND_ROOT` serves another frontend build (a comfyui-frontend-package's `static/` folder)
through ComfyUI's own `--front-end-root`: `make test-frontend-next` tests the newest frontend on the
current host that way.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from devtools.host.comfyui_home import PACK_ROOT, comfyui_home
from devtools.host.workflow_api import EXAMPLE_INPUTS, input_images

PACK_NAME = "comfyui-delayed-negative"
CHECKPOINTS = PACK_ROOT / ".models" / "checkpoints"
TOY_CHECKPOINT = CHECKPOINTS / "delayed-negative-toy-portraits.safetensors"


def pack_is_installed_in(comfyui: Path) -> bool:
    return (comfyui / "custom_nodes" / PACK_ROOT.name).resolve() == PACK_ROOT


def has_checkpoints(comfyui: Path) -> bool:
    folder = comfyui / "models" / "checkpoints"
    return folder.is_dir() and any(p.suffix in (".safetensors", ".ckpt") for p in folder.iterdir())


def write_paths_config(comfyui: Path, workdir: Path, for_tests: bool) -> Path:
    """A ComfyUI extra-model-paths file that adds the pack and our checkpoints, inside `workdir`."""
    entries = {}
    if not pack_is_installed_in(comfyui):
        custom_nodes = workdir / "custom_nodes"
        custom_nodes.mkdir(parents=True, exist_ok=True)
        link = custom_nodes / PACK_NAME
        if not link.is_symlink():
            link.symlink_to(PACK_ROOT, target_is_directory=True)
        entries["custom_nodes"] = custom_nodes
    if for_tests:
        entries["checkpoints"] = CHECKPOINTS
    elif TOY_CHECKPOINT.is_file():
        entries["checkpoints"] = toy_checkpoint_folder(workdir)
    elif not has_checkpoints(comfyui):
        print(f"{TOY_CHECKPOINT.name} is missing (`make setup` builds it): "
              "no checkpoint to list.", file=sys.stderr)
    config = workdir / "extra_model_paths.yaml"
    lines = ["delayed_negative_pack:"] + [f"    {name}: {path}" for name, path in entries.items()]
    config.write_text("\n".join(lines) + "\n")
    return config


def toy_checkpoint_folder(workdir: Path) -> Path:
    """A folder with only a link to the toy model. ComfyUI sorts the checkpoints it lists by name,
    and the random-weights test checkpoint beside the toy in .models/ would sort first and be the
    choice a new Load Checkpoint node starts with."""
    folder = workdir / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / TOY_CHECKPOINT.name
    if link.is_symlink() and link.resolve() != TOY_CHECKPOINT.resolve():
        link.unlink()
    if not link.is_symlink():
        link.symlink_to(TOY_CHECKPOINT)
    return folder


def example_input_names() -> list[str]:
    """The pictures the example workflows load, each committed in EXAMPLE_INPUTS."""
    return sorted({name for path in EXAMPLE_INPUTS.glob("*.json") for name in input_images(json.loads(path.read_text()))
                   if (EXAMPLE_INPUTS / name).is_file()})


def put_example_inputs(comfyui: Path) -> None:
    """Copy the examples' pictures into the input folder of a ComfyUI inside this checkout (kept
    equal to the committed ones); for any other ComfyUI, say which to copy where."""
    folder = comfyui / "input"
    if not comfyui.resolve().is_relative_to(PACK_ROOT):
        missing = [name for name in example_input_names() if not (folder / name).is_file()]
        if missing:
            print(f"{folder} lacks the pictures examples load ({', '.join(missing)}): copy them there from "
                  f"{EXAMPLE_INPUTS}, or upload them with Load Image's upload button (this ComfyUI is not "
                  "this checkout's: nothing is written to it).", file=sys.stderr)
        return
    folder.mkdir(exist_ok=True)
    for name in example_input_names():
        source, target = EXAMPLE_INPUTS / name, folder / name
        if not target.is_file() or target.read_bytes() != source.read_bytes():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)


def server_command(workdir: Path, port: int, listen: str = "127.0.0.1", for_tests: bool = False) -> list[str]:
    """The main.py command line. Tests keep their outputs and settings inside `workdir`."""
    comfyui = comfyui_home()
    workdir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(comfyui / "main.py"), "--listen", listen, "--port", str(port),
               "--disable-auto-launch",
               "--extra-model-paths-config", str(write_paths_config(comfyui, workdir, for_tests))]
    if for_tests:
        for flag, name in (("--output-directory", "output"), ("--temp-directory", "temp"),
                           ("--input-directory", "input"), ("--user-directory", "user")):
            (workdir / name).mkdir(exist_ok=True)
            command += [flag, str(workdir / name)]
        command += ["--database-url", "sqlite:///:memory:"]
    else:
        put_example_inputs(comfyui)
    frontend = os.environ.get("COMFYUI_FRONTEND_ROOT")
    if frontend:
        command += ["--front-end-root", str(Path(frontend).resolve())]
    if not has_cuda():
        command.append("--cpu")
    return command


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8188"))
    command = server_command(PACK_ROOT / ".run", port, host)
    print("Starting ComfyUI:", " ".join(command), flush=True)
    sys.exit(subprocess.call(command, cwd=str(comfyui_home())))
