"""The real-width blocks bench (devtools/bench/bench_blocks.py) at the tests' sizes, so that it cannot rot.

Its figures need the real widths (docs/performance.md, "Real widths"); here every family's block is
built from the same ComfyUI classes at tiny widths and called plain and recorded on every path once:
the recorded output must be the plain one bit for bit, the maps filled, the kernel path taken.
"""

from types import SimpleNamespace

import pytest
import torch

from devtools.bench import bench_blocks
from devtools.bench.real_blocks import all_blocks

UNETS = {"SD1.5", "SDXL"}


@pytest.fixture(scope="module")
def tiny():
    """Every block at tiny sizes, one round, and the Wan recording's memory at a tiny latent."""
    return bench_blocks.measure(tiny=True, rounds=1)


def test_every_block_runs_plain_and_recorded_with_the_plain_output(tiny):
    assert [block["key"] for block in tiny["blocks"]] == [key for keys, _build in all_blocks(True, 1) for key in keys]
    for block in tiny["blocks"]:
        assert block["plain_s"] > 0, block["key"]
        assert set(block["paths"]) == {"kernel LSE", "second pass"}, block["key"]
        for name, path in block["paths"].items():
            assert path["identical"] and path["maps_filled"], (block["key"], name)
            assert path["recorded_calls"] == 1 and path["ratio"] > 0 and path["work_ratio"] > 0, (block["key"], name)
            if name == "kernel LSE":  # ComfyUI's PyTorch attention: the share from the kernel's LSE
                assert path["kernel_checked"] and path["lse_calls"] == 1, block["key"]
            else:
                assert path["lse_calls"] == 0, (block["key"], name)


def test_every_model_gets_a_ratio_on_each_path(tiny):
    assert set(tiny["models"]) == UNETS | {"SD3.5 Medium", "Flux.1", "Qwen-Image", "Wan 2.1 1.3B"}
    assert all(set(paths) == {"kernel LSE", "second pass"} for paths in tiny["models"].values())
    assert all(ratio > 0 and work > 0 for paths in tiny["models"].values() for ratio, work in paths.values())


def test_the_wan_recording_holds_one_map_per_step_word_branch_and_frame(tiny):
    memory = tiny["memory"]
    assert memory["collected"] == memory["product"]  # float32 steps x words x branches x frames x H x W
    assert memory["product"] <= memory["held"] <= 1.05 * memory["product"]  # plus the counts and the cfg


def test_the_report_names_every_block_the_goals_and_the_load(tiny):
    text = "\n".join(bench_blocks.report(tiny))
    assert "load average" in text and "goal <= 1.05" in text and "goal <= 2.0" in text
    assert all(block["title"] in text for block in tiny["blocks"])
    assert "bit-identical: NO" not in text


def test_video_blocks_scale_self_attention_by_the_square_of_the_frames():
    """Wan on 3 of 21 frames: plain 10 s of which 4 s self-attention, recorded 1 s more."""
    recording = SimpleNamespace(counts=torch.ones(1))
    found = [bench_blocks.Variant("plain", {}, times={"wall": [10.0], "work": [2.0], "recorder": [0.0],
                                                      "image attention": [4.0]}),
             bench_blocks.Variant("second pass", {}, recording, times={"wall": [11.0], "work": [2.5], "recorder": [0.4],
                                                                       "image attention": [4.0]})]
    block = SimpleNamespace(key="wan", model="Wan", title="Wan", per_model=30, frames=(3, 21))
    result = bench_blocks.summary(block, found, {"second pass": True}, {})
    plain = 4 * 7 ** 2 + 6 * 7
    assert result["plain_scaled_s"] == pytest.approx(plain)
    assert result["paths"]["second pass"]["ratio"] == pytest.approx((plain + 7) / plain)
    assert result["paths"]["second pass"]["work_ratio"] == pytest.approx((plain + 0.5 * 7) / plain)
    assert result["paths"]["second pass"]["measured_ratio"] == pytest.approx(1.1)
