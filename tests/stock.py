"""Shorthands for running ComfyUI's own stock nodes: the references the pack is proven against."""

import nodes


def encode(clip, text):
    return nodes.CLIPTextEncode().encode(clip, text)[0]


def empty_latent(width=64, height=64, batch_size=1):
    return nodes.EmptyLatentImage().generate(width, height, batch_size)[0]


def ksampler(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent, denoise=1.0):
    return nodes.KSampler().sample(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                                   denoise=denoise)[0]


def ksampler_advanced(model, add_noise, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                      start_at_step, end_at_step, return_with_leftover_noise):
    return nodes.KSamplerAdvanced().sample(model, add_noise, seed, steps, cfg, sampler_name, scheduler, positive,
                                           negative, latent, start_at_step, end_at_step,
                                           return_with_leftover_noise)[0]
