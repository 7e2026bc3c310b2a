"""`make bench`: run every benchmark of the pack on the real ComfyUI and print its figures.

Each benchmark is a module of devtools/ with `run(options) -> list[str]`, the lines to print.
The machine comes first, since the README quotes where its figures came from.

    .venv/bin/python -m devtools.bench.bench [--size 128] [--steps 20] [--repeats 7] [--only bench_...]
    BENCH_QUICK=1 ...   3 repeats, a smoke run
"""

import argparse
import importlib
import logging
import os
import platform
import time
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[2]
from devtools.host import comfy_env  # noqa: E402  (ComfyUI on sys.path, --cpu without a GPU)

BENCHMARKS = ["bench_delayed_negative", "bench_guidance_schedule", "bench_auto_start", "bench_sweep", "bench_step_clock", "bench_attention", "bench_dit",
              "bench_nag", "bench_negative_influence", "bench_blocks", "core_route_steps"]


def parse_options(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="image width and height in pixels (default 128)")
    parser.add_argument("--steps", type=int, default=20, help="sampler steps (default 20)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of each side (default 7)")
    parser.add_argument("--only", choices=BENCHMARKS, action="append",
                        help="run only this benchmark (repeatable; default: all)")
    options = parser.parse_args(argv)
    if os.environ.get("BENCH_QUICK") == "1":
        options.repeats = min(options.repeats, 3)
    return options


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_lines() -> list[str]:
    import comfy.model_management
    import torch

    return [f"machine: {cpu_model()}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), "
            f"{platform.system()} {platform.release()}",
            f"torch {torch.__version__} on {comfy.model_management.get_torch_device()}, "
            f"Python {platform.python_version()}"]


def main(argv=None) -> None:
    began = time.perf_counter()
    options = parse_options(argv)
    import comfy.utils

    comfy.utils.PROGRESS_BAR_ENABLED = False  # both the stock nodes and ours read it per run
    logging.getLogger().setLevel(logging.WARNING)  # ComfyUI logs every model load at INFO
    comfy_env.import_pack()
    for line in machine_lines():
        print(line, flush=True)
    for name in options.only or BENCHMARKS:
        print(flush=True)
        module = f"devtools.host.{name}" if name == "core_route_steps" else f"devtools.bench.{name}"
        for line in importlib.import_module(module).run(options):
            print(line, flush=True)
    print(f"\nbench took {time.perf_counter() - began:.0f} s", flush=True)


if __name__ == "__main__":
    main()
