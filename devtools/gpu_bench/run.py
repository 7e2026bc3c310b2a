"""The GPU run: whole sampling runs of full-size models, stock against the pack, in one command.

    python3 -m devtools.gpu_bench.run --bundle .gpu-bundle --out DIR      (a bare CUDA machine)
    .venv/bin/python -m devtools.gpu_bench.run --size tiny --device cpu --out DIR   (seconds, the tests)

Builds SDXL, Wan 2.1 1.3B and Flux dev on the device (models.py), times the stock KSampler, the
delayed negative, attention recording and NAG on each (runs.py), and writes gpu-bench.json and
gpu-bench.md to DIR after each model, so a run cut short still leaves what it measured. The time
is guarded: each model gets an even share of what is left of --budget-s, and a run that would
pass its share is skipped and named in the results. `--bundle` first puts the checkout's
.gpu-bundle/ (ComfyUI's sources, small wheels: bundle.py) on the path, for a machine without them.
"""

import argparse
import datetime
import json
import logging
import platform
import sys
import time
from pathlib import Path

DEFAULT_BUDGET_S = {"full": 420.0, "tiny": 120.0}
DEFAULT_REPEATS = {"full": 3, "tiny": 1}
RESULT_NAME = "gpu-bench"


def parse_options(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu-bench.json and gpu-bench.md")
    parser.add_argument("--size", choices=("full", "tiny"), default="full",
                        help="full-size models (a GPU) or the same classes at the tests' widths (seconds on a CPU)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda for full, cpu for tiny)")
    parser.add_argument("--only", action="append", help="a model's key (sdxl, wan21, flux_dev); repeatable")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs of each kind (default 3; tiny 1)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="seconds for the whole command, imports included (default 420; tiny 120)")
    parser.add_argument("--bundle", type=Path, default=None, help="a folder `make gpu-bundle` filled (.gpu-bundle)")
    options = parser.parse_args(argv)
    options.device = options.device or ("cuda" if options.size == "full" else "cpu")
    options.repeats = options.repeats if options.repeats is not None else DEFAULT_REPEATS[options.size]
    options.budget_s = options.budget_s if options.budget_s is not None else DEFAULT_BUDGET_S[options.size]
    return options


def environment(device) -> dict:
    import comfy.ldm.modules.attention
    import torch

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        from devtools.bench.bench import cpu_model

        name = cpu_model()
    try:
        from comfyui_version import __version__ as comfyui
    except ImportError:
        comfyui = None
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "device": name, "device_type": device.type, "torch": torch.__version__, "cuda": torch.version.cuda,
            "python": platform.python_version(), "comfyui": comfyui,
            "attention": comfy.ldm.modules.attention.optimized_attention.__name__}


def bench_model(spec, device, deadline: float, repeats: int) -> dict:
    from devtools.gpu_bench import models, runs

    began = time.perf_counter()
    model = models.build(spec, device)
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)
    build_s = time.perf_counter() - began
    found = runs.kinds(spec, model)
    skipped = runs.run_kinds(found, spec.steps, repeats, deadline, device)
    result = {"name": spec.name, "class": spec.config_class.__name__, "parameters": models.parameter_count(model),
              "weight_bytes": models.weight_bytes(model), "dtype": str(model.model.get_dtype()).replace("torch.", ""),
              "build_s": build_s, "picture": spec.picture, "latent": list(spec.latent_shape),
              "text": [spec.text_tokens, spec.text_width], "pooled": spec.pooled_width, "steps": spec.steps,
              "cfg": spec.cfg, "sampler": runs.SAMPLER, "scheduler": spec.scheduler,
              "negative_start": runs.negative_start(spec.steps), "runs": runs.summary(found, spec.steps),
              "skipped": skipped}
    del found, model
    runs.release_memory()
    return result


def gib(count) -> str:
    return "" if count is None else f"{count / 2 ** 30:.2f}"


def parameters(count: int) -> str:
    return f"{count / 1e9:.3f} B" if count >= 1e8 else f"{count / 1e6:.2f} M"


def number(value, digits=3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def header(result: dict, finished: bool = True) -> list[str]:
    took = f", took {result['elapsed_s']:.0f} s" if finished else ""
    return [f"# GPU run, {result['size']} size", "",
            (f"{result['date']}: {result['device']}, torch {result['torch']} (CUDA {result['cuda']}), Python "
            f"{result['python']}, ComfyUI {result['comfyui']}, attention `{result['attention']}`; medians of up to "
            f"{result['repeats']} runs of each kind, taken in turn, after a warm-up run of each; budget "
            f"{result['budget_s']:.0f} s{took}.")]


def model_section(key: str, model: dict) -> list[str]:
    lines = ["", f"## {model.get('name', key)}", ""]
    if "runs" not in model:
        return lines + model["skipped"][:1]
    lines += [(f"{parameters(model['parameters'])} parameters in {model['dtype']} ({gib(model['weight_bytes'])} "
              f"GiB), built in {model['build_s']:.1f} s; {model['picture']} (latent {model['latent']}), text "
              f"{model['text'][0]} x {model['text'][1]}; {model['sampler']}, {model['scheduler']}, "
              f"{model['steps']} steps, cfg {model['cfg']:g}, negative from step {model['negative_start']}."), "",
              "| run | median s | it/s | against | ratio | ideal | goal | peak GiB | runs |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, kind in model["runs"].items():
        lines.append(f"| {name} | {number(kind['median_s'])} | {number(kind['it_per_s'], 2)} | "
                     f"{kind['against'] or ''} | {number(kind['ratio'])} | {number(kind['ideal'])} | "
                     f"{'<= ' + number(kind['goal'], 2) if kind['goal'] else ''} | "
                     f"{gib(kind['peak_memory_bytes'])} | {kind['runs']} |")
    return lines + [f"- {note}" for note in model["skipped"]]


def markdown(result: dict) -> str:
    lines = header(result)
    for key, model in result["models"].items():
        lines += model_section(key, model)
    return "\n".join(lines) + "\n"


def write(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{RESULT_NAME}.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / f"{RESULT_NAME}.md").write_text(markdown(result))


def import_comfyui(options):
    """ComfyUI and the pack, importable and quiet; the models of the run, as --size and --only choose."""
    if options.bundle is not None:
        from devtools.gpu_bench import bundle

        bundle.use(options.bundle)
    # First: it puts ComfyUI on sys.path (from COMFYUI_PATH when a bundle set it).
    from devtools.host import comfy_env  # noqa: I001

    import comfy.utils

    comfy.utils.PROGRESS_BAR_ENABLED = False
    logging.getLogger().setLevel(logging.WARNING)
    if "delayed_negative" not in sys.modules:  # the tests have imported it already
        comfy_env.import_pack()
    from devtools.gpu_bench import models

    unknown = set(options.only or ()) - {spec.key for spec in models.specs(options.size)}
    if unknown:
        sys.exit(f"--only {', '.join(sorted(unknown))}: no such model; the models are "
                 f"{', '.join(spec.key for spec in models.specs(options.size))}.")
    return [spec for spec in models.specs(options.size) if not options.only or spec.key in options.only]


def main(argv=None, began: float | None = None) -> dict:
    began = time.perf_counter() if began is None else began
    options = parse_options(argv)
    chosen = import_comfyui(options)
    import torch

    from devtools.gpu_bench import runs

    device = torch.device(options.device)
    deadline = began + options.budget_s
    result = {"size": options.size, **environment(device), "repeats": options.repeats,
              "budget_s": options.budget_s, "elapsed_s": 0.0, "models": {}}
    print("\n".join(header(result, finished=False)), flush=True)
    for index, spec in enumerate(chosen):
        now = time.perf_counter()
        share_deadline = now + (deadline - now) / (len(chosen) - index)
        if share_deadline <= now:
            result["models"][spec.key] = {"name": spec.name, "skipped": [
                f"not built: the budget of {options.budget_s:.0f} s was spent before this model's turn"]}
        else:
            try:
                result["models"][spec.key] = bench_model(spec, device, share_deadline, options.repeats)
            except Exception as error:  # noqa: BLE001  (out of memory, say: the other models still run)
                result["models"][spec.key] = {"name": spec.name, "skipped": [
                    f"failed: {type(error).__name__}: {error}"]}
                runs.release_memory()
        result["elapsed_s"] = time.perf_counter() - began
        write(result, options.out)
        print("\n".join(model_section(spec.key, result["models"][spec.key])), flush=True)
    print(f"\ntook {result['elapsed_s']:.0f} s; results in {options.out}/{RESULT_NAME}.json and .md", flush=True)
    return result


if __name__ == "__main__":
    main()
