"""The pack is ready for the Comfy Registry."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.specifiers import SpecifierSet
from PIL import Image

import comfyui_version
from devtools.host.comfyui_home import COMFYUI_VERSION

PACK_ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((PACK_ROOT / "pyproject.toml").read_text())
CURRENT_RELEASE = re.search(r"CURRENT_TARBALL \?= .*comfyui-([\d.]+)\.tar\.gz",
                            (PACK_ROOT / "Makefile").read_text()).group(1)


def test_comfy_cli_validates_the_pack():
    comfy = Path(sys.executable).parent / "comfy"
    result = subprocess.run([str(comfy), "--skip-prompt", "--no-enable-telemetry", "node", "validate"],
                            cwd=PACK_ROOT, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr  # comfy-cli prints its verdict on stderr
    assert result.returncode == 0 and "validation checks passed" in output, output


def test_registry_metadata_follows_the_registry_specification():
    # docs.comfy.org/registry/specifications: `comfy node validate` checks security, not these.
    project, comfy = PYPROJECT["project"], PYPROJECT["tool"]["comfy"]
    name = project["name"]
    assert len(name) < 100 and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*([-_.][A-Za-z0-9]+)*", name)
    assert "comfyui" not in name.lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert (PACK_ROOT / project["license"]["file"]).is_file()
    assert project["urls"]["Repository"].startswith("https://")
    assert comfy["PublisherId"] and comfy["DisplayName"]
    # From the pinned release on, with no ceiling: users run releases after the newest host the suite
    # has (CURRENT_RELEASE), whose changes test_upstream_changes.py simulates; a ceiling would make the
    # Registry hide the pack from them.
    assert comfy["requires-comfyui"] == f">={COMFYUI_VERSION}"
    assert CURRENT_RELEASE in SpecifierSet(comfy["requires-comfyui"])
    icon = PACK_ROOT / "docs" / Path(comfy["Icon"]).name
    with Image.open(icon) as picture:
        assert picture.size[0] == picture.size[1] >= 128


def test_the_running_comfyui_is_in_the_stated_range():
    running = comfyui_version.__version__
    assert running in SpecifierSet(PYPROJECT["tool"]["comfy"]["requires-comfyui"]), running


def test_requirements_install_nothing_at_import_time():
    for path in PACK_ROOT.glob("**/*.py"):
        parts = path.relative_to(PACK_ROOT).parts
        if any(part.startswith(".") for part in parts) or parts[0] in ("tests", "devtools"):
            continue  # generated folders (.venv*, .comfyui, .hosts) and the developer's own tools
        text = path.read_text()
        for forbidden in ("pip install", "subprocess", "eval(", "exec(", "sys.path"):
            assert forbidden not in text, f"{path.relative_to(PACK_ROOT)} contains {forbidden!r}"
