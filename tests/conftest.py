"""Test harness: the real ComfyUI (`comfy` package, stock nodes, server) and the generated checkpoint.

Nothing of ComfyUI is mocked. The pack is imported the way ComfyUI imports a custom node
folder, under the package name `delayed_negative`.

Each test is marked by what it uses (`pytest_collection_modifyitems` below, markers in pytest.ini),
so `make test-fast` (`-m fast`) and `make mutation` pick the quick tests without a list of names.
"""

import sys
from pathlib import Path

import pytest

PACK_ROOT = Path(__file__).resolve().parent.parent
if str(PACK_ROOT) not in sys.path:  # the checkout's devtools/ package; after ComfyUI's own modules
    sys.path.append(str(PACK_ROOT))
from devtools.host import comfy_env  # noqa: E402  (ComfyUI on sys.path, --cpu without a GPU)

CHECKPOINT = PACK_ROOT / ".models" / "checkpoints" / "delayed-negative-test-sd15.safetensors"
SD3_CHECKPOINT = CHECKPOINT.with_name("delayed-negative-test-sd3.safetensors")

comfy_env.import_pack()


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One CPU thread for torch in the test process. The tests' models are small, and on a 2-core
    machine two OpenMP threads spin against each other and against the test's own ComfyUI server
    and browser: the every-sampler test of test_step_attribution.py (karras) took 496 s with two
    threads and 33 s with one on this project's build machine under load. Every comparison is
    between runs of the same process, so the setting changes nothing a test checks."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
def toy_checkpoint_file():
    """The toy portraits checkpoint `make setup` builds (devtools/toy_model/)."""
    from devtools.toy_model.experiments import TOY_CHECKPOINT

    if not TOY_CHECKPOINT.is_file():
        pytest.fail(f"{TOY_CHECKPOINT} is missing: `make setup` builds it.")
    return TOY_CHECKPOINT


@pytest.fixture(scope="session")
def toy(toy_checkpoint_file):
    """(model, clip, vae) of the toy portraits checkpoint, loaded once for the session (torch runs
    on one thread for the whole session: one_torch_thread)."""
    from devtools.toy_model.experiments import load_toy_checkpoint

    return load_toy_checkpoint(toy_checkpoint_file)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """A real ComfyUI server (main.py subprocess) with this pack and the generated checkpoint."""
    from comfy_server import ComfyServer

    if not CHECKPOINT.is_file():
        pytest.fail(f"{CHECKPOINT} is missing: `make test` generates it.")
    running = ComfyServer(tmp_path_factory.mktemp("comfyui")).start()
    yield running
    running.stop()


# What a test uses, by fixture name (asked for directly or through another fixture): the marker
# it gets. A new test file is classified by the fixtures it asks for; nothing names tests.
FIXTURE_MARKERS = {
    # A file `make setup` generates: hundreds of MB to load, and absent before the first `make test`.
    "checkpoint": "checkpoint",
    "sd3_checkpoint": "checkpoint",
    "toy_checkpoint_file": "checkpoint",
    "server": "server",
    "chromium": "browser",
    # The modules' own fixtures holding a model to sample (tiny_models / tiny_dit_models built in
    # memory): each run is seconds, and the every-sampler tests run hundreds. These names mean a
    # model in every module: a fixture holding something else (a tokenizer) is named otherwise.
    "model": "model",
    "sd15": "model",
    "sdxl": "model",
    "family": "model",
    "tiny": "model",
}
SLOW_MARKERS = {"checkpoint", "server", "browser", "model"}
# A fast test slower than this is named at the end of the run: it builds a model itself (give it
# a model fixture) or does heavy work the markers cannot see.
FAST_LIMIT_S = 5.0


def pytest_collection_modifyitems(items):
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker in sorted({FIXTURE_MARKERS[name] for name in used & FIXTURE_MARKERS.keys()}):
            item.add_marker(marker)
        if not {mark.name for mark in item.iter_markers()} & SLOW_MARKERS:  # a module's pytestmark counts too
            item.add_marker("fast")


_slow_fast_tests = []


def pytest_runtest_logreport(report):
    if report.when == "call" and "fast" in report.keywords and report.duration > FAST_LIMIT_S:
        _slow_fast_tests.append((report.duration, report.nodeid))


def pytest_terminal_summary(terminalreporter):
    if _slow_fast_tests:
        terminalreporter.section("fast tests over the fast tier's limit")
        for duration, nodeid in sorted(_slow_fast_tests, reverse=True):
            terminalreporter.write_line(f"{duration:5.1f}s {nodeid}: give it a model fixture or a marker "
                                        "(tests/conftest.py FIXTURE_MARKERS)")
