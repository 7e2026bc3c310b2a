"""The project's own tooling: set-up, generated models, benchmarks, example builders, the toy
model. Not part of the node pack (ComfyUI never imports it); run its scripts from the checkout's
root as modules, e.g. `python -m devtools.bench.bench` (see devtools/README.md)."""
