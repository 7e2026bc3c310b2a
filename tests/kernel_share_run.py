"""Run as a script: record the small SD1.5 and SDXL UNets and every DiT family with ComfyUI's PyTorch attention, the backend ComfyUI
picks on NVIDIA GPUs (--use-pytorch-cross-attention; on a CPU it picks sub-quadratic attention,
which gives no log-sum-exp, so this needs a process of its own). For each family, print one JSON
line: whether the recorder said it used the kernel's log-sum-exp, the largest difference between
its maps and the maps of the exact second pass (forced by another node's pass-through override on a
DiT, by another pack's pass-through attn2 patch on a UNet),
and whether the latent is bit-identical to the run without the recorder."""

import json
import logging
import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from devtools.host import comfy_env  # noqa: E402

comfy_env.comfy.cli_args.args.use_pytorch_cross_attention = True
comfy_env.import_pack()

import torch  # noqa: E402

torch.set_num_threads(1)
import comfy.ldm.modules.attention as attention  # noqa: E402
from delayed_negative.attention.record_model import record_attention  # noqa: E402
from delayed_negative.attention.unet_hooks import cross_attention_blocks  # noqa: E402
from delayed_negative.attention.recording import AttentionRecording  # noqa: E402
from delayed_negative.nodes.delayed_negative import DelayedNegativeKSampler  # noqa: E402
from devtools.models.tiny_dit_models import FAMILIES, Family  # noqa: E402
from devtools.models.tiny_models import tiny_sd15, tiny_sdxl  # noqa: E402

UNETS = {"sd15": Family("SD1.5", tiny_sd15, (1, 4, 8, 8), 768),
         "sdxl": Family("SDXL", tiny_sdxl, (1, 4, 8, 8), 2048, 1280)}

COLUMNS = {"positive": [("a", [1]), ("b", [2, 3])], "negative": [("c", [1])], "empty": [("<end>", [0])]}


class Said(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def sample(model, conds, latent):
    return DelayedNegativeKSampler.execute(model, 3, 3, 4.0, "euler", "simple", conds["positive"], conds["negative"],
                                           latent, 1.0, 1, -1.0, "step", "early conditioning", None,
                                           conds["empty"])[0]["samples"]


def pass_through(q, k, v, extra_options):
    """Another pack's attn2 patch that attends as the layer would (the recorder then takes the second pass)."""
    return attention.optimized_attention(q, k, v, extra_options["n_heads"])


def main():
    said = Said()
    logging.getLogger("delayed_negative").addHandler(said)
    logging.getLogger("delayed_negative").setLevel(logging.INFO)
    print(json.dumps({"attention": attention.optimized_attention.__name__}), flush=True)
    for name, spec in (UNETS | FAMILIES).items():
        model = spec.build()
        generator = torch.Generator().manual_seed(3)
        conds = {prompt: spec.conditioning(generator) for prompt in ("positive", "negative", "empty")}
        latent = {"samples": torch.zeros(spec.latent_shape)}
        said.messages.clear()
        from_kernel = AttentionRecording(COLUMNS, conds["empty"][0][0])
        recorded = sample(record_attention(model, from_kernel), conds, latent)
        kernel_said = any("log-sum-exp" in message for message in said.messages)
        other = model.clone()
        if name in UNETS:
            for block in cross_attention_blocks(model.get_model_object("diffusion_model")):
                other.set_model_attn2_replace(pass_through, *block)
        else:
            other.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = \
                lambda func, *args, **kwargs: func(*args, **kwargs)
        second_pass = AttentionRecording(COLUMNS, conds["empty"][0][0])
        sample(record_attention(other, second_pass), conds, latent)
        a, b = from_kernel.snapshot().maps, second_pass.snapshot().maps
        both = ~(a.isnan() | b.isnan())
        print(json.dumps({"family": name, "kernel": kernel_said, "same_nan": bool(torch.equal(a.isnan(), b.isnan())),
                          "max_difference": float((a[both] - b[both]).abs().max()),
                          "largest_share": float(b[both].abs().max()),
                          "latent_bit_identical": bool(torch.equal(recorded, sample(model, conds, latent)))}),
              flush=True)


if __name__ == "__main__":
    main()
