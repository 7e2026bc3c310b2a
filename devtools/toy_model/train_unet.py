"""Train the toy UNet on drawn portraits with the frozen seeded CLIP-L (CPU, one thread, seeded).

    .venv/bin/python -m devtools.toy_model.train_unet [--steps N] [--log FILE]   (or `make train`)

Epsilon prediction on SD1.5's own noise schedule (taken from ComfyUI's model_sampling, so
training and sampling agree), the caption vocabulary's text embeddings computed once, AdamW
with warm-up and linear decay, min-SNR-5 loss weights (faster convergence at few steps), and an
exponential moving average of the weights, which is what gets saved. Writes
devtools/toy_model/weights/unet.safetensors (int8, see toy_model.unet) and snapshots under
.cache/toy_model/ while it runs.
"""

import argparse
import json
import sys
import time
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[2]
from devtools.host import comfy_env  # noqa: F401  (ComfyUI on sys.path, --cpu)

# isort: split
import comfy.model_sampling
import comfy.supported_models
import numpy as np
import safetensors.torch
import torch

from devtools.toy_model import text_encoder
from devtools.toy_model.captions import all_captions
from devtools.toy_model.int8_weights import quantise
from devtools.toy_model.taesd_vae import unet_latents
from devtools.toy_model.training_data import latent_statistics, training_batch
from devtools.toy_model.unet import TOY_UNET, build_unet

BASE_CHECKPOINT = PACK_ROOT / ".models" / "checkpoints" / "delayed-negative-test-sd15.safetensors"
WEIGHTS = Path(__file__).resolve().parent / "weights"
CACHE = PACK_ROOT / ".cache" / "toy_model"
SEED = 1129


def sd15_alphas_cumprod() -> torch.Tensor:
    """ᾱ_t for t = 0..999, from the sigmas ComfyUI samples an SD1.5 model with."""
    sampling = comfy.model_sampling.ModelSamplingDiscrete(comfy.supported_models.SD15(dict(TOY_UNET)))
    return 1.0 / (1.0 + sampling.sigmas.double() ** 2)


def caption_embeddings(captions: list[str]) -> torch.Tensor:
    """The embeddings of every caption, cached by the text encoder's fingerprint."""
    fingerprint = text_encoder.fingerprint(BASE_CHECKPOINT)
    cache = CACHE / f"embeddings-{fingerprint[:16]}.pt"
    if cache.is_file():
        saved = torch.load(cache)
        if saved["captions"] == captions:
            return saved["embeddings"]
    embeddings = text_encoder.embed(text_encoder.load_clip(BASE_CHECKPOINT), captions)
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save({"captions": captions, "embeddings": embeddings}, cache)
    (WEIGHTS / "text_encoder.sha256").write_text(fingerprint + "\n")
    return embeddings


def save(ema: dict, path: Path, metadata: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    safetensors.torch.save_file(quantise(ema), str(partial), metadata={k: str(v) for k, v in metadata.items()})
    partial.rename(path)


def train(steps: int, batch: int, learning_rate: float, log) -> None:
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    captions = all_captions()
    index = {caption: i for i, caption in enumerate(captions)}
    embeddings = caption_embeddings(captions)
    mean, std = latent_statistics()
    WEIGHTS.mkdir(exist_ok=True)
    (WEIGHTS / "latent_statistics.json").write_text(json.dumps({"mean": mean.tolist(), "std": std.tolist()}) + "\n")
    alphas = sd15_alphas_cumprod().float()
    snr = alphas / (1 - alphas)
    loss_weight = torch.clamp(snr, max=5.0) / snr

    unet = build_unet(SEED)
    optimiser = torch.optim.AdamW(unet.parameters(), lr=learning_rate, weight_decay=0.01)
    ema = {k: v.detach().clone() for k, v in unet.state_dict().items()}
    warmup = max(1, steps // 20)
    started, running = time.time(), None
    for step in range(1, steps + 1):
        for group in optimiser.param_groups:
            group["lr"] = learning_rate * min(step / warmup, (steps - step + 1) / (steps - warmup + 1))
        images, batch_captions = training_batch(rng, batch)
        latents = unet_latents(images, mean, std)
        context = embeddings[[index[c] for c in batch_captions]]
        timesteps = torch.randint(0, 1000, (batch,))
        noise = torch.randn_like(latents)
        a = alphas[timesteps][:, None, None, None]
        noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
        predicted = unet(noisy, timesteps.float(), context=context)
        per_example = (predicted - noise).pow(2).mean(dim=(1, 2, 3))
        loss = (per_example * loss_weight[timesteps]).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimiser.step()
        decay = min(0.995, (1 + step) / (10 + step))
        with torch.no_grad():
            for name, value in unet.state_dict().items():
                ema[name].mul_(decay).add_(value.detach(), alpha=1 - decay)
        plain = per_example.mean().item()
        running = plain if running is None else 0.98 * running + 0.02 * plain
        if step % 25 == 0 or step == steps:
            print(f"step {step}/{steps} loss {plain:.4f} (avg {running:.4f}) "
                  f"lr {optimiser.param_groups[0]['lr']:.2e} {time.time() - started:.0f}s", file=log, flush=True)
        if step % 100 == 0 and step != steps:
            save(ema, CACHE / f"unet-step{step}.safetensors", {"step": step})
    save(ema, WEIGHTS / "unet.safetensors",
         {"steps": steps, "batch": batch, "seed": SEED, "loss_avg": f"{running:.4f}",
          "seconds": f"{time.time() - started:.0f}"})
    print(f"done: {steps} steps in {time.time() - started:.0f}s, loss {running:.4f}", file=log, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--log", type=Path, help="append progress here instead of the console")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1 leaves the machine to others)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not BASE_CHECKPOINT.is_file():
        sys.exit(f"{BASE_CHECKPOINT} is missing: run `make setup` first (it generates the frozen text encoder).")
    log = args.log.open("a") if args.log else sys.stdout
    train(args.steps, args.batch, args.learning_rate, log)


if __name__ == "__main__":
    main()
