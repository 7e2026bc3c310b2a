"""The attention output and its log-sum-exp from one kernel (attention/kernel_lse.py), against
ComfyUI's own PyTorch attention on the running host: the output bit for bit, the LSE against a
float64 log-sum-exp of the scores; every call form ComfyUI's DiTs use (heads first or not, the
output heads first or not, masks of 2, 3 and 4 dimensions, additive and boolean)."""

import comfy.ldm.modules.attention as comfy_attention
import pytest
import torch

from delayed_negative.attention.kernel_lse import KernelLSE

OWN = getattr(comfy_attention.attention_pytorch, "__wrapped__", comfy_attention.attention_pytorch)
HEADS, DIM, QUERIES, KEYS = 3, 16, 20, 27


def tensors(dtype, heads_first, seed=0):
    generator = torch.Generator().manual_seed(seed)
    shape = lambda tokens: (2, HEADS, tokens, DIM) if heads_first else (2, tokens, HEADS * DIM)  # noqa: E731
    return [torch.randn(shape(tokens), generator=generator).to(dtype) for tokens in (QUERIES, KEYS, KEYS)]


def masks(dtype):
    additive = torch.zeros(2, QUERIES, KEYS)
    additive[:, :, :4] = -torch.inf  # text padding, as Qwen-Image's mask leaves out
    keep = additive == 0
    return {"no mask": None, "2-D additive": additive[0].to(dtype), "3-D additive": additive.to(dtype),
            "4-D additive": additive[:, None].to(dtype), "boolean": keep[:, None]}


def float64_lse(q, k, mask):
    scores = (q.double() @ k.double().transpose(-1, -2)) * DIM ** -0.5
    if mask is not None:
        mask = mask if mask.ndim == 4 else mask.unsqueeze(0) if mask.ndim == 2 else mask.unsqueeze(1)
        while mask.ndim < 4:
            mask = mask.unsqueeze(0)
        scores = scores.masked_fill(~mask, -torch.inf) if mask.dtype == torch.bool else scores + mask.double()
    return torch.logsumexp(scores, dim=-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("mask_name", list(masks(torch.float32)))
@pytest.mark.parametrize("heads_first", [False, True])
@pytest.mark.parametrize("heads_first_output", [False, True])
def test_output_bit_identical_and_lse_exact(dtype, mask_name, heads_first, heads_first_output):
    q, k, v = tensors(dtype, heads_first)
    mask = masks(dtype)[mask_name]
    args = (q, k, v, HEADS)
    kwargs = {"mask": mask, "skip_reshape": heads_first, "skip_output_reshape": heads_first_output}
    out, lse = KernelLSE().attention(OWN, args, kwargs)
    assert torch.equal(out, OWN(*args, **kwargs))
    assert lse is not None, "ComfyUI's PyTorch attention on the CPU has a kernel that gives the LSE"
    to_heads = (lambda t: t) if heads_first else (lambda t: t.view(2, -1, HEADS, DIM).transpose(1, 2))  # noqa: E731
    expected = float64_lse(to_heads(q), to_heads(k), mask)
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    assert torch.allclose(lse.double(), expected, atol=tolerance, rtol=0)


def test_another_attention_function_falls_back_to_it_and_says_so(caplog):
    q, k, v = tensors(torch.float32, False)
    calls = []

    def other(*args, **kwargs):
        calls.append(1)
        return OWN(*args, **kwargs) * 2

    kernel = KernelLSE()
    with caplog.at_level("INFO", logger="delayed_negative"):
        out, lse = kernel.attention(other, (q, k, v, HEADS), {})
        kernel.attention(other, (q, k, v, HEADS), {})
    assert lse is None and calls == [1, 1] and torch.equal(out, OWN(q, k, v, HEADS) * 2)
    assert sum("second attention pass" in record.getMessage() for record in caplog.records) == 1


@pytest.fixture(scope="module")
def tiny():
    """The small UNets and every small DiT family recorded in a process of its own where ComfyUI uses its PyTorch attention
    (tests/kernel_share_run.py): one result per family."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent / "kernel_share_run.py"
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines[0] == {"attention": "attention_pytorch"}
    return lines[1:]


def test_recorded_models_take_the_share_from_the_kernel_with_the_image_unchanged(tiny):
    from devtools.models.tiny_dit_models import FAMILIES

    assert [result["family"] for result in tiny] == ["sd15", "sdxl", *FAMILIES]
    for result in tiny:
        assert result["kernel"], f"{result['family']}: the recorder did not use the kernel's log-sum-exp"
        assert result["latent_bit_identical"], result
        assert result["same_nan"] and result["max_difference"] < 1e-6 * max(result["largest_share"], 1e-3), result
