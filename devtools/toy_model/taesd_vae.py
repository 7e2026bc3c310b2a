"""The toy model's VAE: ComfyUI's TAESD module, with a hand-built encoder and a trained decoder.

ComfyUI's VAE class loads a checkpoint's `first_stage_model.*` tensors as a TAESD when it finds
`taesd_decoder.1.weight` (comfy/sd.py, 0.3.75 and 0.33.0), so the stock CheckpointLoaderSimple,
VAEEncode and VAEDecode run it. TAESD's width is fixed (64 channels), so it is too slow to train
from scratch on two CPU cores. Its encoder is instead set by hand to an exact, simple map:
each 8x8 patch of the image becomes four numbers, its mean red, green and blue and its mean
edge strength (|d lum/dx| + |d lum/dy|), each standardised over the portraits. The decoder
starts as the inverse (nearest upsampling of the mean colour) and is trained to draw sharp
shapes back from those numbers. Because the encoder never changes, the UNet can be trained on
its latents while the decoder trains.

Latent scale: ComfyUI multiplies a VAE latent by SD1.5's 0.18215 before the UNet sees it;
`vae_scale` is set so that what the UNet sees is the standardised value itself (unit variance,
as in Stable Diffusion), while TAESD's decoder gets half of it (inside its tanh clamp's near-
linear range).
"""

import comfy.taesd.taesd
import torch
import torch.nn.functional as F

SD15_LATENT_SCALE = 0.18215
RAW_FACTOR = 0.5  # raw TAESD latent = RAW_FACTOR * standardised value
LUMA = (0.299, 0.587, 0.114)
PATCH = 8


def patch_features(images: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W images in [0, 1] -> N x 4 x H/8 x W/8 patch means (RGB, edge strength).

    The same numbers the hand-built TAESD encoder computes, without its 64-channel convolutions
    (it is checked against the module in tests/test_toy_model.py).
    """
    luma = sum(weight * images[:, channel] for channel, weight in enumerate(LUMA))[:, None]
    # Zero padding on the right/bottom, as the encoder's 3x3 convolution with padding 1.
    padded = F.pad(luma, (0, 1, 0, 1))
    edges = (padded[..., :-1, :-1] - padded[..., :-1, 1:]).abs() + (padded[..., :-1, :-1] - padded[..., 1:, :-1]).abs()
    return F.avg_pool2d(torch.cat([images, edges], dim=1), PATCH)


def _zero_(module: torch.nn.Module) -> None:
    for parameter in module.parameters():
        torch.nn.init.zeros_(parameter)


def _identity_conv_(conv: torch.nn.Conv2d, channels: int) -> None:
    """A 3x3 convolution that passes its first `channels` channels through unchanged."""
    _zero_(conv)
    with torch.no_grad():
        for channel in range(channels):
            conv.weight[channel, channel, 1, 1] = 1.0


def _residual_blocks_(sequence, generator: torch.Generator) -> None:
    """TAESD Blocks that start as ReLU(x): the residual branch ends in a zero convolution.

    Its first two convolutions are random, so training can grow the branch from the start.
    """
    for module in sequence:
        if isinstance(module, comfy.taesd.taesd.Block):
            first, _, second, _, last = module.conv
            for conv in (first, second):
                with torch.no_grad():
                    fan_in = conv.weight[0].numel()
                    conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * (2 / fan_in) ** 0.5)
                    conv.bias.zero_()
            _zero_(last)


def build_encoder_(encoder, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Set a TAESD Encoder to `RAW_FACTOR * (patch_features(x) - mean) / std` (x in [0, 1])."""
    layers = list(encoder)
    first, last = layers[0], layers[-1]
    _zero_(encoder)
    with torch.no_grad():
        for channel in range(3):
            first.weight[channel, channel, 1, 1] = 1.0
        # Signed luminance differences to the right and below; the next ReLU keeps each sign apart.
        for colour, weight in enumerate(LUMA):
            for out, (dy, dx, sign) in enumerate(((1, 2, 1), (1, 2, -1), (2, 1, 1), (2, 1, -1)), start=3):
                first.weight[out, colour, 1, 1] += sign * weight
                first.weight[out, colour, dy, dx] -= sign * weight
        for layer in layers[1:-1]:
            if isinstance(layer, torch.nn.Conv2d):  # the stride-2 convolutions: 2x2 means
                for channel in range(7):
                    layer.weight[channel, channel, 1:, 1:] = 0.25
        scale = RAW_FACTOR / std
        for channel in range(3):
            last.weight[channel, channel, 1, 1] = scale[channel]
        last.weight[3, 3:7, 1, 1] = scale[3]
        last.bias.copy_(-mean * scale)


def build_decoder_(decoder, mean: torch.Tensor, std: torch.Tensor, seed: int) -> None:
    """Start a TAESD Decoder as nearest upsampling of the patch colour; random extra features."""
    generator = torch.Generator().manual_seed(seed)
    layers = list(decoder)
    first, last = layers[1], layers[-1]
    _zero_(decoder)
    _residual_blocks_(layers, generator)
    with torch.no_grad():
        first.weight.copy_(torch.randn(first.weight.shape, generator=generator) * 0.5)
        first.weight[:3] = 0.0
        for channel in range(3):
            first.weight[channel, channel, 1, 1] = std[channel] / RAW_FACTOR
            first.bias[channel] = mean[channel]
        for layer in layers:
            if isinstance(layer, torch.nn.Conv2d) and layer is not first and layer is not last:
                _identity_conv_(layer, 64)
        for channel in range(3):
            last.weight[channel, channel, 1, 1] = 1.0


def toy_taesd(mean: torch.Tensor, std: torch.Tensor, seed: int = 0) -> comfy.taesd.taesd.TAESD:
    """A TAESD module with the hand-built encoder, the decoder's starting point and latent scale."""
    taesd = comfy.taesd.taesd.TAESD()
    build_encoder_(taesd.taesd_encoder, mean, std)
    build_decoder_(taesd.taesd_decoder, mean, std, seed)
    with torch.no_grad():
        taesd.vae_scale.fill_(RAW_FACTOR * SD15_LATENT_SCALE)
        taesd.vae_shift.zero_()
    return taesd


def unet_latents(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """What the UNet sees for N x 3 x 64 x 64 images in [0, 1]: standardised patch features."""
    return (patch_features(images) - mean[:, None, None]) / std[:, None, None]
