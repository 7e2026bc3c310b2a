"""The GPU run: whole sampling runs of full-size SDXL, Flux dev and Wan 2.1 1.3B, built on the device.

`run` is the command (`python -m devtools.gpu_bench.run --out DIR`), `models` what it builds,
`runs` what it times, `bundle` what a bare CUDA machine without network needs beside the checkout
(`make gpu-bundle` fills `.gpu-bundle/`). docs/performance.md, "GPU run", says how to run it.
"""
