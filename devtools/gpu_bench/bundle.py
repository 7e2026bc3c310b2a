"""What a bare CUDA machine lacks for the GPU run, in an ignored folder of the checkout (.gpu-bundle/).

Such a machine (the project's H200: Python 3.12, torch 2.11 with CUDA 13, transformers,
safetensors, einops, numpy, Pillow, scipy, psutil, tqdm, pyyaml, aiohttp, sentencepiece,
tokenizers, torchvision; no network) gets, beside the checkout:

- comfyui/: ComfyUI's Python sources from the host tree the tests use (comfyui_home: the pinned
  0.3.75), without its frontend, models, tests, API nodes or tokenizer files (about 4 MB);
- wheels/: the pure-Python packages `comfy` imports that the machine lacks (torchsde and its
  trampoline), and torchvision 0.26.0 for torch 2.11 on CPython 3.12, installed only where
  torchvision is missing (comfy/sd.py imports it at start-up);
- stand-ins/av/: ComfyUI's video types import PyAV at start-up (`nodes` imports them), and its
  wheel (35 MB, FFmpeg inside) would not fit in what a run may carry; the run decodes no video,
  so three names stand in for it, and any use says so. A real PyAV, where there is one, comes first.

    python -m devtools.gpu_bench.bundle fill [DIR]    copy, download, write the stand-in (make gpu-bundle)
    python -m devtools.gpu_bench.bundle check [DIR]   the tiny run with only the bare machine's packages
    python -m devtools.gpu_bench.bundle size [DIR]    what a run would carry: the checkout and DIR

`use(DIR)` is the machine's side (run.py --bundle): it installs the wheels into DIR/site-<python>
with pip from the folder alone, and puts ComfyUI's sources and the stand-in on the path.
"""

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BUNDLE = PACK_ROOT / ".gpu-bundle"
WHEELS = ["torchsde==0.2.6", "trampoline==0.1.2"]
TORCHVISION = "torchvision==0.26.0"  # the release built for torch 2.11, the H200's
# pip download's view of the machine: CPython 3.12 on x86-64 Linux (device README: .whl).
TARGET = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
          "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
          "--platform", "manylinux2014_x86_64"]
# ComfyUI's top folders the run never imports: the API nodes (1 MB), tests, examples, and user data.
LEFT_OUT = {"comfy_api_nodes", "tests", "tests-unit", "script_examples", "custom_nodes", "models", "input", "output",
            "user", "temp", ".git", ".github", ".ci"}
CONFIG_SUFFIXES = {".json", ".yaml"}
CONFIG_LIMIT = 64 * 1024  # model configs, not tokenizers' vocabularies
TRAVEL_LIMIT = 64 * 2 ** 20  # what one device run may carry: the working tree and the carried folders
# The bare machine's own packages, as the GPU run's brief names them (their requirements come along).
BARE_MACHINE = ["torch", "transformers", "safetensors", "einops", "numpy", "Pillow", "scipy", "psutil", "tqdm",
                "pyyaml", "aiohttp", "sentencepiece", "tokenizers"]

STAND_IN_MESSAGE = ("PyAV is not installed here: the GPU run's bundle has only a stand-in for the names ComfyUI "
                    "imports at start-up (devtools/gpu_bench/bundle.py). Install PyAV to read or write video.")
AV_STAND_IN = {
    "av/__init__.py": f'"""Stand-in for PyAV. {STAND_IN_MESSAGE}"""\n\n\ndef __getattr__(name):\n'
                      f'    raise ImportError({STAND_IN_MESSAGE!r})\n',
    "av/container.py": f'"""Stand-in for PyAV. {STAND_IN_MESSAGE}"""\n\n\nclass InputContainer:\n'
                       f'    def __init__(self, *args, **kwargs):\n        raise ImportError({STAND_IN_MESSAGE!r})\n',
    "av/subtitles/__init__.py": "",
    "av/subtitles/stream.py": f'"""Stand-in for PyAV. {STAND_IN_MESSAGE}"""\n\n\nclass SubtitleStream:\n'
                              f'    def __init__(self, *args, **kwargs):\n'
                              f'        raise ImportError({STAND_IN_MESSAGE!r})\n',
}


def copy_comfyui(host: Path, target: Path) -> int:
    """ComfyUI's Python sources and small config files from `host` into `target`; returns the bytes copied."""
    shutil.rmtree(target, ignore_errors=True)
    copied = 0
    for path in sorted(host.rglob("*")):
        relative = path.relative_to(host)
        if not path.is_file() or relative.parts[0] in LEFT_OUT or "__pycache__" in relative.parts:
            continue
        is_config = (path.suffix in CONFIG_SUFFIXES and path.stat().st_size <= CONFIG_LIMIT
                     and not any("tokenizer" in part for part in relative.parts))
        if path.suffix != ".py" and not is_config:
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / relative)
        copied += path.stat().st_size
    return copied


def download_wheels(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                    *TARGET, "-d", str(target), *WHEELS, TORCHVISION], check=True)


def write_stand_ins(target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    for name, text in AV_STAND_IN.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_text(text)


def fill(bundle: Path) -> None:
    from devtools.host.comfyui_home import comfyui_home

    host = comfyui_home()
    version = (host / "comfyui_version.py").read_text().split('"')[1]
    copied = copy_comfyui(host, bundle / "comfyui")
    print(f"ComfyUI {version} from {host}: {copied / 2 ** 20:.1f} MiB of sources into {bundle / 'comfyui'}")
    download_wheels(bundle / "wheels")
    print("wheels:", ", ".join(sorted(path.name for path in (bundle / "wheels").glob("*.whl"))))
    write_stand_ins(bundle / "stand-ins")
    print(size_line(bundle))


def tree_bytes(paths) -> int:
    return sum(path.stat().st_size for path in paths if path.is_file() and not path.is_symlink())


def travelling_bytes(bundle: Path) -> tuple[int, int]:
    """(the checkout's tracked and untracked-not-ignored files, the bundle): what a run carries."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=PACK_ROOT,
                            check=True, capture_output=True).stdout.decode().split("\0")
    checkout = tree_bytes(PACK_ROOT / name for name in listed if name)
    return checkout, tree_bytes(bundle.rglob("*"))


def size_line(bundle: Path) -> str:
    checkout, carried = travelling_bytes(bundle)
    total = checkout + carried
    return (f"a run carries {total / 2 ** 20:.1f} MiB of {TRAVEL_LIMIT / 2 ** 20:.0f} MiB: the checkout "
            f"{checkout / 2 ** 20:.1f} MiB, {bundle.name}/ {carried / 2 ** 20:.1f} MiB")


def pip_install(wheels: Path, site: Path, names: list[str]) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index",
                    "--no-deps", "--no-compile", "--find-links", str(wheels), "--target", str(site), *names],
                   check=True)


def use(bundle: Path) -> None:
    """Make the bundle's ComfyUI and packages importable in this process, installing its wheels first."""
    bundle = bundle.resolve()
    if not (bundle / "comfyui" / "comfy" / "samplers.py").is_file():
        sys.exit(f"{bundle} holds no ComfyUI: run `make gpu-bundle` on a machine with the network first.")
    site = bundle / f"site-{sys.version_info.major}{sys.version_info.minor}"
    if not site.is_dir():
        partial = site.with_name(site.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        pip_install(bundle / "wheels", partial, [requirement.split("==")[0] for requirement in WHEELS])
        if importlib.util.find_spec("torchvision") is None:
            pip_install(bundle / "wheels", partial, [TORCHVISION.split("==")[0]])
        partial.rename(site)
    sys.path.append(str(site))  # after the machine's own packages: they win where both have one
    sys.path.append(str(bundle / "stand-ins"))
    os.environ["COMFYUI_PATH"] = str(bundle / "comfyui")


def requirement_closure(names: list[str]) -> set[str]:
    """The installed distributions `names` need, their requirements followed (this environment's metadata)."""
    from packaging.requirements import Requirement

    def normal(name):
        return re.sub(r"[-_.]+", "-", name).lower()

    installed = {normal(dist.metadata["Name"]): dist for dist in importlib.metadata.distributions()}
    found, pending = set(), [normal(name) for name in names]
    while pending:
        name = pending.pop()
        if name in found or name not in installed:
            continue
        found.add(name)
        for line in installed[name].requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(normal(requirement.name))
    return {installed[name].metadata["Name"] for name in found}


def bare_site(target: Path) -> None:
    """Links to this environment's copies of the bare machine's packages (and torchvision, which the H200 has)."""
    for name in sorted(requirement_closure(BARE_MACHINE + ["torchvision"])):
        dist = importlib.metadata.distribution(name)
        for top in {Path(str(file)).parts[0] for file in dist.files or []} - {".."}:
            source = Path(dist.locate_file(top)).resolve()
            if source.exists() and not (target / top).exists():
                (target / top).symlink_to(source)


def check(bundle: Path) -> None:
    """The tiny GPU run on the CPU in a Python that sees only the bare machine's packages and the bundle."""
    with tempfile.TemporaryDirectory() as scratch:
        site = Path(scratch) / "site"
        site.mkdir()
        bare_site(site)
        code = ("import sys; sys.path.insert(1, {site!r}); from devtools.gpu_bench import run; "
                "run.main(['--bundle', {bundle!r}, '--size', 'tiny', '--device', 'cpu', '--out', {out!r}, "
                "'--budget-s', '600'])").format(site=str(site), bundle=str(bundle), out=str(Path(scratch) / "out"))
        environment = {key: value for key, value in os.environ.items() if key not in ("COMFYUI_PATH", "PYTHONPATH")}
        environment["PYTHONDONTWRITEBYTECODE"] = "1"  # no caches in the bundle: they would travel
        try:
            subprocess.run([sys.executable, "-S", "-c", code], cwd=PACK_ROOT, env=environment, check=True)
        finally:
            shutil.rmtree(bundle / f"site-{sys.version_info.major}{sys.version_info.minor}", ignore_errors=True)
    print(f"the tiny run worked with only {', '.join(BARE_MACHINE)}, torchvision and {bundle.name}/")


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("fill", "check", "size"):
        sys.exit(__doc__)
    bundle = Path(argv[1]) if len(argv) > 1 else DEFAULT_BUNDLE
    if argv[0] == "fill":
        fill(bundle)
    elif argv[0] == "check":
        check(bundle.resolve())
    else:
        print(size_line(bundle))


if __name__ == "__main__":
    main()
