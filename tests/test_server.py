"""The pack on a real ComfyUI server: registered nodes, a full workflow, and bad input."""

import pytest
from PIL import Image

CHECKPOINT_NAME = "delayed-negative-test-sd15.safetensors"
OUR_NODES = {
    "DelayedNegativeKSampler": "KSampler (Delayed Negative)",
    "DelayedNegativeKSamplerAdvanced": "KSampler Advanced (Delayed Negative)",
    "DelayedNegativeGuider": "Delayed Negative Guider",
}


def text_to_image(sampler_inputs: dict, sampler_class="DelayedNegativeKSampler") -> dict:
    """CheckpointLoaderSimple → CLIPTextEncode ×2 → EmptyLatentImage → our sampler → VAEDecode → SaveImage."""
    inputs = {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
              "seed": 7, "steps": 4, "cfg": 6.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
              "negative_start": 2, "negative_end": -1, "timing_unit": "step", "before_negative": "empty prompt",
              "clip": ["1", 1], **sampler_inputs}
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT_NAME}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "portrait photo of a man"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "mustache"}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {"class_type": sampler_class, "inputs": inputs},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "delayed"}},
    }


def pack_node_ids() -> list[str]:
    """Every node id the pack's extension lists."""
    import asyncio

    from delayed_negative.nodes import comfy_entrypoint

    extension = asyncio.run(comfy_entrypoint())
    return [node.define_schema().node_id for node in asyncio.run(extension.get_node_list())]


def test_nodes_are_registered_with_tooltips_on_every_input(server):
    info = server.get("/object_info")
    ids = pack_node_ids()
    assert set(OUR_NODES) | {"DelayedNegativeTextEncode", "DelayedNegativeAutoStart"} <= set(ids)
    for node_id in ids:
        assert node_id in info, f"{node_id} missing; server log:\n{server.log()[-3000:]}"
        node = info[node_id]
        assert node["display_name"] == OUR_NODES.get(node_id, node["display_name"])
        assert node["category"].startswith("sampling/delayed negative")
        for section in ("required", "optional"):
            for name, spec in node["input"].get(section, {}).items():
                options = spec[1] if len(spec) > 1 else {}
                assert options.get("tooltip"), f"{node_id}.{name} has no tooltip"
    failed = [line for line in server.log().splitlines() if "IMPORT FAILED" in line and "delayed-negative" in line]
    assert not failed


def test_a_workflow_with_the_delayed_negative_ksampler_saves_an_image(server):
    entry = server.run(text_to_image({}))
    assert entry["status"]["status_str"] == "success", entry["status"]
    files = server.output_files(entry)
    assert len(files) == 1 and files[0].is_file()
    assert Image.open(files[0]).size == (64, 64)


@pytest.mark.parametrize("bad, words", [
    ({"cfg": 1.0}, ["cfg", "above 1"]),
    ({"clip": None}, ["connect", "clip"]),
    ({"timing_unit": "sigma", "negative_start": 1000.0}, ["sigma", "outside", "schedule"]),
    ({"negative_start": 2.5}, ["whole number", "fraction of steps"]),
])
def test_bad_input_gets_a_clear_message_and_the_server_keeps_running(server, bad, words):
    inputs = {key: value for key, value in bad.items() if value is not None}
    prompt = text_to_image(inputs)
    if bad.get("clip", "absent") is None:
        del prompt["5"]["inputs"]["clip"]
    entry = server.run(prompt)
    assert entry["status"]["status_str"] == "error"
    message = next(m[1]["exception_message"] for m in entry["status"]["messages"] if m[0] == "execution_error")
    for word in words:
        assert word in message, message
    assert server.alive()
    again = server.run(text_to_image({"seed": 8}))
    assert again["status"]["status_str"] == "success"


def test_attention_map_workflow_returns_grid_chart_overlay_and_mask(server):
    prompt = text_to_image({"model": ["10", 0], "negative_start": 2})
    prompt.update({
        "10": {"class_type": "DelayedNegativeRecordAttentionMaps",
               "inputs": {"model": ["1", 0], "clip": ["1", 1], "positive_prompt": "portrait photo of a man",
                          "negative_prompt": "mustache", "positive_words": "man", "negative_words": "mustache",
                          "layers": "all"}},
        "11": {"class_type": "DelayedNegativeCollectAttentionMaps", "inputs": {"recording": ["10", 1],
                                                                              "samples": ["5", 0]}},
        "12": {"class_type": "DelayedNegativeAttentionGrid",
               "inputs": {"attention_maps": ["11", 0], "words": "", "steps": "all", "batch_index": 0,
                          "colormap": "viridis", "normalization": "per word over steps", "cell_size": 48}},
        "13": {"class_type": "DelayedNegativeAttentionChart",
               "inputs": {"attention_maps": ["11", 0], "words": "", "batch_index": 0, "mark_step": -1}},
        "14": {"class_type": "DelayedNegativeAttentionOverlay",
               "inputs": {"attention_maps": ["11", 0], "image": ["6", 0], "words": "man", "first_step": 0,
                          "last_step": -1, "colormap": "magma", "opacity": 0.6}},
        "15": {"class_type": "DelayedNegativeAttentionMask",
               "inputs": {"attention_maps": ["11", 0], "word": "mustache", "batch_index": 0, "first_step": 2,
                          "last_step": -1, "width": 0, "height": 0, "threshold": 0.5}},
        "16": {"class_type": "MaskToImage", "inputs": {"mask": ["15", 0]}},
    })
    for node, source in (("20", "12"), ("21", "13"), ("22", "14"), ("23", "16")):
        prompt[node] = {"class_type": "SaveImage", "inputs": {"images": [source, 0], "filename_prefix": f"att{node}"}}
    entry = server.run(prompt)
    assert entry["status"]["status_str"] == "success", entry["status"]
    saved = {node: server.output_files({"outputs": {node: entry["outputs"][node]}})
             for node in ("20", "21", "22", "23")}
    assert all(len(files) == 1 and files[0].is_file() for files in saved.values())
    assert Image.open(saved["21"][0]).size == (768, 432)
    assert Image.open(saved["23"][0]).size == (64, 64)
    # Changing only a view's setting re-renders without sampling again.
    prompt["13"]["inputs"]["mark_step"] = 3
    again = server.run(prompt)
    assert again["status"]["status_str"] == "success"
    cached = {m[1]["nodes"] and tuple(m[1]["nodes"]) for m in again["status"]["messages"] if m[0] == "execution_cached"}
    assert any("5" in nodes for nodes in cached if nodes), again["status"]["messages"]


def run_listening(server, prompt: dict) -> tuple[dict, list[tuple[str, str]]]:
    """Run a prompt while listening on the websocket as the frontend does; returns its history entry
    and the progress texts shown under nodes, as (node id, text)."""
    import asyncio
    import struct
    import uuid

    import aiohttp

    text_event = 3  # protocol.BinaryEventTypes.TEXT in 0.3.75 and 0.33

    async def listen():
        client_id, texts = str(uuid.uuid4()), []
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(f"{server.url.replace('http', 'ws')}/ws?clientId={client_id}") as socket:
            async with session.post(f"{server.url}/prompt", json={"prompt": prompt, "client_id": client_id}) as answer:
                prompt_id = (await answer.json())["prompt_id"]
            async for message in socket:
                if message.type == aiohttp.WSMsgType.BINARY and struct.unpack(">I", message.data[:4])[0] == text_event:
                    length = struct.unpack(">I", message.data[4:8])[0]
                    texts.append((message.data[8:8 + length].decode(), message.data[8 + length:].decode()))
                elif message.type == aiohttp.WSMsgType.TEXT:
                    event = message.json()
                    if event["type"] == "executing" and event["data"].get("node") is None \
                            and event["data"].get("prompt_id") == prompt_id:
                        return prompt_id, texts

    prompt_id, texts = asyncio.run(asyncio.wait_for(listen(), 300))
    return server.get(f"/history/{prompt_id}")[prompt_id], texts


def test_a_sampler_whose_steps_cannot_be_learned_is_announced_under_the_node(server):
    entry, texts = run_listening(server, text_to_image({"sampler_name": "dpm_adaptive", "seed": 9}))
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert any(node == "5" and "dpm_adaptive" in text and "by sigma" in text for node, text in texts), texts
    assert "dpm_adaptive' does not report its steps" in server.log()


def test_a_sampler_whose_steps_are_learned_says_nothing(server):
    entry, texts = run_listening(server, text_to_image({"sampler_name": "heun", "seed": 9}))
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert texts == []
