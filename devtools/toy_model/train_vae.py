"""Train the toy TAESD's decoder to draw portraits back from their 8x8 patch latents.

    .venv/bin/python -m devtools.toy_model.train_vae [--steps N] [--log FILE]   (or `make train`)

The encoder is hand-built and fixed (toy_model.taesd_vae), so this can run while the UNet
trains on the same latents. Loss: L1 + MSE on pixels; AdamW; seeded; one CPU thread by default.
Writes devtools/toy_model/weights/taesd.safetensors (fp16, TAESD's own key names).
"""

import argparse
import json
import sys
import time
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[2]
from devtools.host import comfy_env  # noqa: F401  (ComfyUI on sys.path, --cpu)
import numpy as np
import safetensors.torch
import torch

from devtools.toy_model.taesd_vae import RAW_FACTOR, toy_taesd, unet_latents
from devtools.toy_model.training_data import latent_statistics, training_batch

WEIGHTS = Path(__file__).resolve().parent / "weights"
SEED = 2911


def train(steps: int, batch: int, learning_rate: float, log) -> None:
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    mean, std = latent_statistics()
    stored = json.loads((WEIGHTS / "latent_statistics.json").read_text())
    if not torch.allclose(mean, torch.tensor(stored["mean"])):
        sys.exit("latent_statistics.json disagrees with the drawing code: retrain the UNet first.")
    taesd = toy_taesd(mean, std, SEED)
    decoder = taesd.taesd_decoder
    optimiser = torch.optim.AdamW(decoder.parameters(), lr=learning_rate, weight_decay=0.0)
    started, running = time.time(), None
    for step in range(1, steps + 1):
        for group in optimiser.param_groups:
            group["lr"] = learning_rate * min(1.0, step / 20) * (1 - 0.9 * step / steps)
        images, _ = training_batch(rng, batch)
        raw = RAW_FACTOR * unet_latents(images, mean, std)
        decoded = decoder(raw)
        error = decoded - images
        loss = error.abs().mean() + error.pow(2).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(decoder.parameters(), 1.0)
        optimiser.step()
        plain = error.abs().mean().item()
        running = plain if running is None else 0.95 * running + 0.05 * plain
        if step % 10 == 0 or step == steps:
            print(f"step {step}/{steps} L1 {plain:.4f} (avg {running:.4f}) {time.time() - started:.0f}s",
                  file=log, flush=True)
    state = {k: v.detach().half().contiguous() for k, v in taesd.state_dict().items()}
    safetensors.torch.save_file(state, str(WEIGHTS / "taesd.safetensors"),
                                metadata={"steps": str(steps), "batch": str(batch), "seed": str(SEED),
                                          "l1_avg": f"{running:.4f}", "seconds": f"{time.time() - started:.0f}"})
    print(f"done: {steps} steps in {time.time() - started:.0f}s, pixel L1 {running:.4f}", file=log, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--log", type=Path, help="append progress here instead of the console")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    log = args.log.open("a") if args.log else sys.stdout
    train(args.steps, args.batch, args.learning_rate, log)


if __name__ == "__main__":
    main()
