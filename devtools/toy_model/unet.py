"""The toy UNet: SD1.5's architecture cut to one level, built from ComfyUI's own classes.

ComfyUI's checkpoint loader recognises SD1.5 by the UNet's shapes (supported_models.SD15 pins
the 768-wide context, 320 base channels and convolutional transformer projections); depth is
free. This one keeps a single resolution level (the 8x8 latent of a 64x64 image needs no
downsampling): an input ResBlock with a cross-attention transformer, a middle ResBlock, and two
output ResBlocks, the second with a transformer. 18 M parameters; the text reaches the image
through two cross-attention layers, which is where the attention recorder looks.

Stored quantised (toy_model.int8_weights), which keeps the committed file under 20 MB.
"""

import comfy.ops
import torch
from comfy.ldm.modules.diffusionmodules import openaimodel

TOY_UNET = {
    "image_size": 8, "in_channels": 4, "out_channels": 4, "model_channels": 320, "num_res_blocks": [1],
    "channel_mult": [1], "transformer_depth": [1], "transformer_depth_output": [0, 1],
    "transformer_depth_middle": -1, "context_dim": 768, "num_heads": 8, "num_head_channels": -1,
    "use_linear_in_transformer": False, "adm_in_channels": None, "use_spatial_transformer": True,
    "legacy": False, "use_temporal_attention": False,
}


def build_unet(seed: int) -> openaimodel.UNetModel:
    """A trainable UNet with the usual diffusion initialisation, seeded.

    ComfyUI's ops leave weights uninitialised, so every tensor is set here: matrices ~
    N(0, 1/fan_in), biases 0, norms 1, and zero on the last layer of every residual branch and
    on the output convolution (each block starts as the identity, which trains fastest).
    """
    unet = openaimodel.UNetModel(**TOY_UNET, operations=comfy.ops.disable_weight_init, device="cpu",
                                 dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in unet.state_dict(keep_vars=True).items():
            if tensor.ndim >= 2:
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=generator) / fan_in ** 0.5)
            elif name.endswith("bias"):
                tensor.zero_()
            else:
                tensor.fill_(1.0)
        zero_last = [unet.out[-1]]
        for module in unet.modules():
            if isinstance(module, openaimodel.ResBlock):
                zero_last.append(module.out_layers[-1])
            elif module.__class__.__name__ == "SpatialTransformer":
                zero_last.append(module.proj_out)
        for module in zero_last:
            for parameter in module.parameters():
                parameter.zero_()
    return unet
