"""The NAG bench (devtools/bench/bench_nag.py) at the tests' sizes, so that it cannot rot.

Its figures need the bench's sizes (docs/performance.md, "NAG at cfg 1"); here every model it
measures, the tiny SD1.5 UNet and each DiT family at the tests' own scale, samples every side once
on a 4x4 latent for 2 steps, and each line must carry its ratios and goals.
"""

import re
from types import SimpleNamespace

import pytest

from devtools.bench import bench_nag
from devtools.models.tiny_dit_models import FAMILIES

MODEL = re.compile(r"^  (.+) \((\d+\.\d{2}) M parameters\)")
RATIO = re.compile(r"(\d+\.\d{3}) \((\d+\.\d{3}) s / (\d+\.\d{3}) s; CPU time (\d+\.\d{3})\)")


@pytest.fixture(scope="module")
def tiny():
    """The bench's lines: every model at the tests' sizes, one timed run of each side."""
    return bench_nag.run(SimpleNamespace(size=32, steps=2, repeats=1), scale=1)


def model_lines(lines: list[str]) -> dict[str, str]:
    """{model name: its line}, for the lines that name a model and its size."""
    return {found.group(1): line for line in lines if (found := MODEL.match(line)) and float(found.group(2)) > 0}


def test_every_model_has_a_line_with_its_parameters(tiny):
    assert list(model_lines(tiny)) == ["SD1.5 (tiny UNet)", *(spec.name for spec in FAMILIES.values())]
    assert "medians of 1 interleaved runs" in tiny[0] and "models x 1" in tiny[0]


def test_each_measured_model_has_positive_ratios_against_its_goals(tiny):
    measured = [line for line in model_lines(tiny).values() if "not measured" not in line]
    assert measured
    for line in measured:
        assert "NAG from step 1 / from step 0" in line and "goal 0.750 +- 2 %" in line, line
        ratios = RATIO.findall(line)
        assert len(ratios) == (1 if bench_nag.NAGuidance is None else 2), line
        assert all(float(figure) > 0 for ratio in ratios for figure in ratio), line


def test_the_comparison_with_core_nag_where_the_host_has_it(tiny):
    if bench_nag.NAGuidance is None:
        assert any("this ComfyUI has no NAGuidance" in line for line in tiny)
        return
    lines = model_lines(tiny)
    for line in lines.values():
        if "not measured" not in line:
            assert "NAG from step 0 / NAGuidance" in line and "goal <= 1.01" in line, line
    # NAGuidance patches the attention output the UNet's self-attention and Flux's blocks report
    for name in ("SD1.5 (tiny UNet)", "Flux architecture with CFG"):
        assert "NAGuidance guides here" in lines[name], lines[name]
