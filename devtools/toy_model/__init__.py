"""A toy text-to-image model whose answers are known: synthetic portraits, a TAESD-shaped VAE and
a small SD1.5-architecture UNet trained here on the CPU with the generated checkpoint's frozen,
seeded CLIP-L.

It shows the delayed-negative mechanism on a model that has learnt something, and lets the
tests check an answer (are the glasses there?) because the drawing code knows every object's
mask. It is a toy: it says nothing about what Stable Diffusion 1.5 itself does.

Modules, one idea each: `portraits` draws images, masks and captions; `captions` is the prompt
vocabulary; `taesd_vae` is the hand-built encoder and trained decoder; `unet` the model config;
`train_*` the training scripts; `build` writes the checkpoint; `detect` judges generated images.
"""
