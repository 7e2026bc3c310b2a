"""Mutation testing (`make mutation`): small deliberate mistakes put into a copy of the pack's
logic, each run against the fast tests; a mutant the tests do not notice is a gap in them.

mutmut (tests/requirements-tools.txt) mutates samplers/, attention/, render/ and nodes/ of the
last commit, staged in .mutation/ as a package named `delayed_negative` (the name ComfyUI and the
tests import it under, which mutmut needs to switch its mutants on). The checkout itself is never
touched, so other work in it goes on while this runs.

    python devtools/mutation.py                          every module (long: hours on 2 cores)
    python devtools/mutation.py 'samplers.negative_window*' 'attention.recording*'
    python devtools/mutation.py --again NAMES...         go on in the same .mutation/ (no new copy)
    python devtools/mutation.py --results                the last run's survivors again
    MUTATION_STAGE=NAME (a second run beside the first), MUTATION_TESTS="tests/..." (fewer tests),
    MUTATION_CHILDREN=N (parallel mutants, default 1)

Results: `mutmut results` / `mutmut show NAME` inside .mutation/; docs/mutation.md has the figures.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfyui_home import PACK_ROOT, comfyui_home

# MUTATION_STAGE: another folder under .mutation/, for a second run beside the first.
STAGE = PACK_ROOT / ".mutation" / os.environ.get("MUTATION_STAGE", "")
PACKAGE = "delayed_negative"
MUTATED = ["samplers", "attention", "render", "nodes"]
# The fast tests: pure functions, in-memory models, and a few samplers of the step attribution.
# The checkpoint tests (loading 630 MB per mutant) and the server and browser tests stay out.
FAST_TESTS = [
    "tests/test_timing_units.py",
    "tests/test_render.py",
    "tests/test_attention_views.py",
    "tests/test_prompt_words.py",
    "tests/test_attention_recording.py::test_recorded_maps_equal_a_brute_force_softmax_reference",
    "tests/test_attention_recording.py::test_recording_leaves_the_latent_bit_identical",
    "tests/test_attention_recording.py::test_each_step_averages_exactly_its_own_evaluations",
    "tests/test_attention_recording.py::test_unconditional_branch_shows_the_empty_prompt_before_the_switch_and_the_negative_after",
    "tests/test_attention_recording.py::test_batch_items_are_kept_apart",
    "tests/test_attention_recording.py::test_layer_choice_restricts_the_blocks",
    "tests/test_attention_reference.py::test_sdxl_maps_equal_a_per_head_softmax_from_hooks",
    *[f"tests/test_step_attribution.py::test_every_sampler_switches_exactly_at_the_start_step[{case}]"
      for case in ("karras-euler", "karras-heun", "karras-dpmpp_2m_sde", "karras-uni_pc", "karras-dpm_fast")],
    "tests/test_step_attribution.py::test_steps_count_the_whole_schedule_when_starting_later[heun]",
    "tests/test_step_attribution.py::test_an_unknown_second_order_sampler_switches_exactly",
    "tests/test_step_attribution.py::test_a_sampler_that_never_reports_its_steps_is_announced_and_goes_by_sigma",
    "tests/test_step_attribution.py::test_a_sampler_that_adapts_to_the_model_is_announced_when_it_leaves_its_dry_run",
    "tests/test_step_attribution.py::test_by_sigma_an_evaluation_belongs_to_the_step_whose_interval_holds_it",
    "tests/test_step_attribution.py::test_a_sampler_whose_steps_begin_inside_their_intervals_switches_exactly",
    "tests/test_step_attribution.py::test_a_step_that_repeats_the_previous_sigma_is_still_its_own_step",
    "tests/test_step_attribution.py::test_a_sampler_whose_steps_begin_off_the_schedule_is_announced_and_goes_by_sigma",
    "tests/test_step_attribution.py::test_an_evaluation_the_dry_run_never_made_is_announced_and_goes_by_sigma",
    "tests/test_step_attribution.py::test_a_sampler_that_is_no_ksampler_is_named_by_its_class",
    "tests/test_guidance_plan.py",
]
# The checkpoint tests of the fast files are left out by name.
DESELECT = ["not through_the_nodes"]


def stage() -> Path:
    """The last commit's tree as .mutation/delayed_negative, with the generated checkpoint linked in."""
    package = STAGE / PACKAGE
    shutil.rmtree(STAGE, ignore_errors=True)
    package.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=PACK_ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "xf", "-", "-C", str(package)], input=archive, check=True)
    config = ["[mutmut]", "source_paths ="]
    config += [f"    {PACKAGE}/{folder}" for folder in MUTATED]
    config += ["also_copy ="] + [f"    {PACKAGE}/{path}" for path in ("__init__.py", "tests", "devtools", "pytest.ini")]
    chosen = os.environ.get("MUTATION_TESTS", "").split() or FAST_TESTS  # MUTATION_TESTS: a narrower selection
    tests = [test for test in chosen if (package / test.partition("::")[0]).is_file()]
    config += ["pytest_add_cli_args_test_selection ="] + [f"    {PACKAGE}/{test}" for test in tests]
    config += ["pytest_add_cli_args =", "    -q", "    -p", "    no:cacheprovider", "    -k"]
    config += [f"    {' and '.join(DESELECT)}"]
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
            # mutmut copies the sources into mutants/; the checkpoint is linked, not copied.
            (STAGE / "mutants" / PACKAGE).mkdir(parents=True)
            (STAGE / "mutants" / PACKAGE / ".models").symlink_to(PACK_ROOT / ".models")
        names = [f"{PACKAGE}.{name}" for name in arguments]
        subprocess.run(mutmut + ["run", "--max-children", os.environ.get("MUTATION_CHILDREN", "1"), *names],
                       cwd=STAGE, env=env, check=False)
    return subprocess.run(mutmut + ["results"], cwd=STAGE, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
