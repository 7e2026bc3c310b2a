"""Mutation testing (`make mutation`): small deliberate mistakes put into a copy of the pack's
logic, each run against the fast tests (`-m fast`, as `make test-fast`); a mutant the tests do not
notice is a gap in them.

mutmut (tests/requirements-tools.txt) mutates clock/, samplers/, attention/, render/ and nodes/ of the
last commit, staged in .mutation/ as a package named `delayed_negative` (the name ComfyUI and the
tests import it under, which mutmut needs to switch its mutants on). The checkout itself is never
touched, so other work in it goes on while this runs.

    python -m devtools.mutation                          every module (long: hours on 2 cores)
    python -m devtools.mutation 'samplers.negative_window*' 'attention.recording*'
    python -m devtools.mutation --again NAMES...         go on in the same .mutation/ (no new copy)
    python -m devtools.mutation --results                the last run's survivors again
    MUTATION_STAGE=NAME (a second run beside the first), MUTATION_TESTS="tests/..." (fewer files; still -m fast),
    MUTATION_CHILDREN=N (parallel mutants, default 1)

Results: `mutmut results` / `mutmut show NAME` inside .mutation/; docs/mutation.md has the figures.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from devtools.host.comfyui_home import PACK_ROOT, comfyui_home

# MUTATION_STAGE: another folder under .mutation/, for a second run beside the first.
STAGE = PACK_ROOT / ".mutation" / os.environ.get("MUTATION_STAGE", "")
PACKAGE = "delayed_negative"
MUTATED = ["clock", "samplers", "attention", "render", "nodes"]
# The fast tier (`make test-fast`): tests/conftest.py marks each test by the fixtures it uses, so
# the checkpoint (630 MB to load per mutant), server, browser and sampled-model tests stay out.
FAST_MARKER = "fast"


def stage() -> Path:
    """The last commit's tree as .mutation/delayed_negative."""
    package = STAGE / PACKAGE
    shutil.rmtree(STAGE, ignore_errors=True)
    package.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=PACK_ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "xf", "-", "-C", str(package)], input=archive, check=True)
    config = ["[mutmut]", "source_paths ="]
    config += [f"    {PACKAGE}/{folder}" for folder in MUTATED]
    config += ["also_copy ="] + [f"    {PACKAGE}/{path}" for path in ("__init__.py", "tests", "devtools", "pytest.ini")]
    chosen = os.environ.get("MUTATION_TESTS", "").split() or ["tests"]  # MUTATION_TESTS: a narrower selection
    tests = [test for test in chosen if (package / test.partition("::")[0]).exists()]
    config += ["pytest_add_cli_args_test_selection ="] + [f"    {PACKAGE}/{test}" for test in tests]
    config += ["pytest_add_cli_args =", "    -q", "    -p", "    no:cacheprovider", "    -m", f"    {FAST_MARKER}"]
    config += ["process_isolation = forkserver", "use_git_change_detection = false", ""]
    (STAGE / "setup.cfg").write_text("\n".join(config))
    return package


def main(arguments: list[str]) -> int:
    env = dict(os.environ, COMFYUI_PATH=str(comfyui_home(fetch=False)))
    mutmut = [str(Path(sys.executable).parent / "mutmut")]
    again = arguments[:1] == ["--again"]
    if arguments[:1] != ["--results"]:
        if again:
            arguments = arguments[1:]
        else:
            stage()
        names = [f"{PACKAGE}.{name}" for name in arguments]
        subprocess.run(mutmut + ["run", "--max-children", os.environ.get("MUTATION_CHILDREN", "1"), *names],
                       cwd=STAGE, env=env, check=False)
    return subprocess.run(mutmut + ["results"], cwd=STAGE, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
