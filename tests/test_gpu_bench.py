"""The GPU run (devtools/gpu_bench/) at tiny sizes on the CPU, so that it cannot rot where no GPU is.

The full-size run needs a GPU (docs/performance.md, "GPU run"); here the same command builds the
same ComfyUI classes at the tests' widths, samples every run kind and writes its results; the
full-size configurations are built on the meta device (no memory) and must have the released
models' parameter counts.
"""

import json

import pytest
import torch

from devtools.gpu_bench import models, run

RUN_KINDS = {"stock", "delayed_negative", "recording", "nag"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The whole GPU run at tiny sizes on the CPU (every model built and sampled): (result, markdown)."""
    out = tmp_path_factory.mktemp("gpu-bench")
    result = run.main(["--size", "tiny", "--device", "cpu", "--out", str(out), "--repeats", "1", "--budget-s", "900"])
    written = json.loads((out / "gpu-bench.json").read_text())
    assert written == json.loads(json.dumps(result))
    return written, (out / "gpu-bench.md").read_text()


def test_every_model_and_run_kind_has_positive_times_and_ratios(tiny):
    result, _markdown = tiny
    assert list(result["models"]) == ["sdxl", "wan21", "flux_dev"]
    for key, model in result["models"].items():
        assert model["skipped"] == [], key
        expected = RUN_KINDS | ({"stock_cfg1"} if model["cfg"] != 1.0 else set())
        assert set(model["runs"]) == expected, key
        for name, kind in model["runs"].items():
            assert kind["error"] is None, (key, name)
            assert kind["runs"] == 1 and kind["median_s"] > 0 and kind["it_per_s"] > 0, (key, name)
            if kind["against"] is not None:
                assert kind["against"] in model["runs"] and kind["ratio"] > 0, (key, name)
        assert model["runs"]["nag"]["against"] == ("stock" if model["cfg"] == 1.0 else "stock_cfg1")
        assert model["runs"]["nag"]["ideal"] == 1.5  # negative from step 2 of 4: (2 + 2 x 2) / 4


def test_the_results_name_the_machine_and_every_model(tiny):
    result, markdown = tiny
    for field in ("date", "device", "torch", "python", "comfyui", "attention"):
        assert result[field], field
    assert result["device_type"] == "cpu"
    for model in result["models"].values():
        assert model["parameters"] > 0 and model["weight_bytes"] > 0
        assert f"## {model['name']}" in markdown
    assert markdown.count("| nag |") == 3


def test_a_spent_budget_builds_nothing_and_says_so(tmp_path):
    result = run.main(["--size", "tiny", "--device", "cpu", "--out", str(tmp_path), "--budget-s", "0"])
    assert set(result["models"]) == {spec.key for spec in models.TINY}
    for model in result["models"].values():
        assert "runs" not in model and "budget" in model["skipped"][0]
    assert "budget of 0 s was spent" in (tmp_path / "gpu-bench.md").read_text()


def test_full_size_models_have_the_released_models_parameter_counts():
    expected = {"sdxl": 2.567e9, "wan21": 1.419e9, "flux_dev": 11.901e9}
    for spec in models.FULL:
        model = models.build(spec, torch.device("meta"))  # shapes only: nothing is allocated
        assert models.parameter_count(model) == pytest.approx(expected[spec.key], rel=1e-3), spec.key
    assert [spec.unet_config["depth"] for spec in models.FULL if spec.key == "flux_dev"] == [19]
