"""Reliability under load on the real server (127.0.0.1 only, bounded in count and time).

40 prompts are queued at once: the stock KSampler, the three delayed-negative nodes and an
attention recording, each with its own seed; every tenth prompt has a bad input, and one long
prompt is interrupted while it samples. Every good prompt must complete with the same latent as
when it runs alone, every bad one must get its message, the server must stay up, and its resident
memory after the run must stay within 5% of what it was after the first ten prompts.
"""

import time

import psutil
from safetensors.torch import load_file

CHECKPOINT_NAME = "delayed-negative-test-sd15.safetensors"
PROMPTS = 40
KINDS = ("stock", "ksampler", "advanced", "guider", "attention")
INTERRUPTED = 22  # a long prompt, interrupted while it samples
STEPS, LONG_STEPS = 4, 400
TIMEOUT = 600.0


def base(seed: int) -> dict:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT_NAME}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "portrait photo of a man"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "mustache"}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}},
    }


def sampler_inputs(seed: int, steps: int, model=("1", 0)) -> dict:
    return {"model": list(model), "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0], "seed": seed,
            "steps": steps, "cfg": 6.0, "sampler_name": "dpmpp_2m", "scheduler": "karras", "denoise": 1.0}


def timing(start=2) -> dict:
    return {"negative_start": start, "negative_end": -1, "timing_unit": "step", "before_negative": "empty prompt",
            "clip": ["1", 1]}


def prompt(index: int, phase: str) -> dict:
    """The index-th prompt of the burst; its latent is saved under a name of the phase."""
    seed, steps = 1000 + index, LONG_STEPS if index == INTERRUPTED else STEPS
    graph = base(seed)
    kind = "bad" if index % 10 == 9 else KINDS[index % len(KINDS)]
    if kind == "stock":
        graph["5"] = {"class_type": "KSampler", "inputs": sampler_inputs(seed, steps)}
    elif kind in ("ksampler", "bad"):
        graph["5"] = {"class_type": "DelayedNegativeKSampler",
                      "inputs": {**sampler_inputs(seed, steps), **timing(), "cfg": 1.0 if kind == "bad" else 6.0}}
    elif kind == "advanced":
        inputs = sampler_inputs(seed, steps)
        inputs["noise_seed"] = inputs.pop("seed")
        del inputs["denoise"]
        graph["5"] = {"class_type": "DelayedNegativeKSamplerAdvanced",
                      "inputs": {**inputs, **timing(), "add_noise": "enable", "start_at_step": 0,
                                 "end_at_step": 10000, "return_with_leftover_noise": "disable"}}
    elif kind == "guider":
        graph.update({
            "6": {"class_type": "DelayedNegativeGuider",
                  "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "cfg": 6.0, **timing()}},
            "7": {"class_type": "RandomNoise", "inputs": {"noise_seed": seed}},
            "8": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "heun"}},
            "9": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "normal", "steps": steps,
                                                             "denoise": 1.0}},
            "5": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["7", 0], "guider": ["6", 0],
                                                                    "sampler": ["8", 0], "sigmas": ["9", 0],
                                                                    "latent_image": ["4", 0]}},
        })
    else:
        graph.update({
            "10": {"class_type": "DelayedNegativeRecordAttentionMaps",
                   "inputs": {"model": ["1", 0], "clip": ["1", 1], "positive_prompt": "portrait photo of a man",
                              "negative_prompt": "mustache", "positive_words": "man", "negative_words": "mustache",
                              "layers": "all"}},
            "5": {"class_type": "DelayedNegativeKSampler", "inputs": {**sampler_inputs(seed, steps, ("10", 0)),
                                                                      **timing()}},
            "11": {"class_type": "DelayedNegativeCollectAttentionMaps",
                   "inputs": {"recording": ["10", 1], "samples": ["5", 0]}},
            "12": {"class_type": "DelayedNegativeAttentionChart",
                   "inputs": {"attention_maps": ["11", 0], "words": "", "batch_index": 0, "mark_step": -1}},
            "13": {"class_type": "PreviewImage", "inputs": {"images": ["12", 0]}},
        })
    graph["20"] = {"class_type": "SaveLatent", "inputs": {"samples": ["5", 0],
                                                          "filename_prefix": f"load/{phase}_{index:02d}"}}
    return graph


def wait_for(server, prompt_ids, until=None):
    """Poll the history until every prompt has finished; `until` runs on each round."""
    deadline, done = time.monotonic() + TIMEOUT, {}
    while len(done) < len(prompt_ids):
        assert time.monotonic() < deadline, f"{len(prompt_ids) - len(done)} prompts did not finish in {TIMEOUT} s"
        assert server.alive(), server.log()[-3000:]
        for prompt_id in prompt_ids:
            if prompt_id not in done:
                entry = server.get(f"/history/{prompt_id}").get(prompt_id)
                if entry and entry.get("status", {}).get("completed") is not None:
                    done[prompt_id] = entry
        if until:
            until(done)
        time.sleep(0.2)
    return [done[prompt_id] for prompt_id in prompt_ids]


def queue(server, graph) -> str:
    queued = server.post("/prompt", {"prompt": graph, "client_id": "load-test"})
    assert "prompt_id" in queued, queued
    return queued["prompt_id"]


def saved_latent(server, entry):
    (latent,) = entry["outputs"]["20"]["latents"]
    return load_file(server.workdir / "output" / latent["subfolder"] / latent["filename"])["latent_tensor"]


def messages(entry, kind):
    return [message for name, message in entry["status"]["messages"] if name == kind]


def test_forty_mixed_prompts_at_once(server):
    process = psutil.Process(server.process.pid)
    server.run(prompt(0, "warm-up"))  # the checkpoint loaded once, as a user's first run does
    ids = [queue(server, prompt(index, "burst")) for index in range(PROMPTS)]
    memory, interrupted = {}, []

    def watch(done):
        if len(done) >= 10 and "after 10" not in memory:
            memory["after 10"] = process.memory_info().rss
        running = server.get("/queue")["queue_running"]
        if not interrupted and any(item[1] == ids[INTERRUPTED] for item in running):
            time.sleep(1.0)  # well inside its 400 steps
            server.post("/interrupt", {})
            interrupted.append(ids[INTERRUPTED])

    entries = wait_for(server, ids, watch)
    memory["after 40"] = process.memory_info().rss
    print(f"server resident memory: after 10 prompts {memory['after 10'] / 2**20:.1f} MiB, "
          f"after 40 {memory['after 40'] / 2**20:.1f} MiB ({memory['after 40'] / memory['after 10']:.3f}x)")

    assert server.alive()
    assert interrupted, "the long prompt never ran"
    for index, entry in enumerate(entries):
        status = entry["status"]["status_str"]
        if index % 10 == 9:
            assert status == "error", (index, entry["status"])
            (error,) = messages(entry, "execution_error")
            assert "cfg" in error["exception_message"] and "above 1" in error["exception_message"]
        elif index == INTERRUPTED:
            assert status == "error" and messages(entry, "execution_interrupted"), entry["status"]
        else:
            assert status == "success", (index, entry["status"])
    assert memory["after 40"] <= 1.05 * memory["after 10"]

    # Alone: the cache is emptied first (it applies after the next prompt, which must share no
    # sampler with the prompts rerun below: the 41st seed), then one prompt at a time.
    server.post("/free", {"unload_models": True, "free_memory": True})
    server.run(prompt(PROMPTS, "flush"))
    for index, entry in enumerate(entries):
        if index % 10 == 9 or index == INTERRUPTED:
            continue
        alone = server.run(prompt(index, "alone"))
        assert alone["status"]["status_str"] == "success", alone["status"]
        assert not any("5" in cached["nodes"] for cached in messages(alone, "execution_cached")), "not run alone"
        assert saved_latent(server, alone).equal(saved_latent(server, entry)), f"prompt {index} differs when alone"
