"""Every example workflow (example_workflows/*.json) runs end to end on the real ComfyUI server.

Each is converted from the UI format to an API prompt through the server's /object_info
(tests/workflow_api.py), the standard checkpoints it names mapped to the generated test
checkpoint of their architecture (SD1.5 or SD3; an example made for the toy portraits model,
which `make setup` builds, keeps it) and
scaled down (MAX_STEPS steps, latents at most MAX_LATENT_SIZE pixels) so it runs in seconds on a CPU.
"""

import io
import json
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from PIL import Image

from devtools.host.workflow_api import (STANDARD_CHECKPOINTS, TOY_CHECKPOINT, VIRTUAL_NODES, on_generated_checkpoints, scale_down,
                          to_api_prompt)

PACK_ROOT = Path(__file__).resolve().parent.parent
TOY_EXAMPLE = PACK_ROOT / "example_workflows" / "07_toy_model_glasses_removed_attention.json"
EXAMPLES = sorted((PACK_ROOT / "example_workflows").glob("*.json"))
VIEWER, VIEWER_UI_KEY = "DelayedNegativeAttentionViewer", "delayed_negative_attention_viewer"
MAX_STEPS = 8  # 30 → 8 keeps the sweep's starts 0, 3, 6, 10, 30 apart: 0, 1, 2, 3, 8
MAX_LATENT_SIZE = 64


def example_id(path: Path) -> str:
    return path.stem


@pytest.fixture(scope="module")
def object_info(server):
    return server.get("/object_info")


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def api_prompt(path: Path, object_info: dict) -> dict:
    prompt = on_generated_checkpoints(to_api_prompt(load(path), object_info))
    return scale_down(prompt, object_info, max_steps=MAX_STEPS, max_latent_size=MAX_LATENT_SIZE)


def queue_and_wait(server, prompt: dict, timeout: float = 600.0) -> tuple[dict, dict]:
    """POST /prompt, then wait for the history entry; returns (the POST's answer, the entry)."""
    queued = server.post("/prompt", {"prompt": prompt, "client_id": str(uuid.uuid4())})
    if "prompt_id" not in queued or queued.get("node_errors"):
        return queued, {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history = server.get(f"/history/{queued['prompt_id']}")
        entry = history.get(queued["prompt_id"], {})
        if entry.get("status", {}).get("completed") is not None:
            return queued, entry
        time.sleep(0.3)
    raise TimeoutError(f"{queued['prompt_id']} did not finish in {timeout} s")


def test_there_are_the_five_examples():
    assert len(EXAMPLES) >= 5, [path.name for path in EXAMPLES]


@pytest.mark.parametrize("path", EXAMPLES, ids=example_id)
def test_example_has_a_thumbnail(path):
    thumbnail = path.with_suffix(".jpg")
    assert thumbnail.is_file(), f"{thumbnail.name} is missing: run python -m devtools.examples.example_thumbnails"
    with Image.open(thumbnail) as picture:
        assert picture.format == "JPEG" and picture.width >= 128


@pytest.mark.parametrize("path", EXAMPLES, ids=example_id)
def test_example_uses_only_node_types_the_server_has(path, object_info):
    types = {node["type"] for node in load(path)["nodes"]} - VIRTUAL_NODES
    assert not types - set(object_info), f"missing node types: {sorted(types - set(object_info))}"


@pytest.mark.parametrize("path", EXAMPLES, ids=example_id)
def test_example_names_a_checkpoint_a_user_has(path):
    names = {node["widgets_values"][0] for node in load(path)["nodes"] if node["type"] == "CheckpointLoaderSimple"}
    assert names and names <= STANDARD_CHECKPOINTS, names


def test_the_toy_example_runs_on_the_toy_model_itself(object_info):
    assert TOY_CHECKPOINT in object_info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    names = {node["inputs"]["ckpt_name"] for node in api_prompt(TOY_EXAMPLE, object_info).values()
             if "ckpt_name" in node["inputs"]}
    assert names == {TOY_CHECKPOINT}


def test_conversion_maps_widgets_by_name_and_skips_the_seed_control(object_info):
    prompt = to_api_prompt(load(PACK_ROOT / "example_workflows" / "01_paper_mustache_delayed_vs_stock.json"),
                           object_info)
    delayed = next(node["inputs"] for node in prompt.values() if node["class_type"] == "DelayedNegativeKSampler")
    assert {key: delayed[key] for key in ("seed", "steps", "sampler_name", "negative_start", "timing_unit")} == {
        "seed": 42, "steps": 30, "sampler_name": "euler", "negative_start": 5.0, "timing_unit": "step"}
    assert delayed["model"][1] == 0 and delayed["clip"][1] == 1
    small = scale_down(prompt, object_info, max_steps=10, max_latent_size=64)
    delayed = next(node["inputs"] for node in small.values() if node["class_type"] == "DelayedNegativeKSampler")
    assert (delayed["steps"], delayed["negative_start"]) == (10, 2.0)


def test_conversion_follows_reroutes_and_primitives_and_drops_muted_and_bypassed_nodes(object_info):
    workflow = load(PACK_ROOT / "example_workflows" / "01_paper_mustache_delayed_vs_stock.json")
    nodes = {node["id"]: node for node in workflow["nodes"]}
    stock, delayed, stock_save, delayed_decode = 6, 7, 9, 10
    # EmptyLatentImage → Reroute → stock KSampler's latent_image
    latent_link = next(link for link in workflow["links"] if link[3] == stock and link[5] == "LATENT")
    workflow["links"].append([90, 50, 0, stock, latent_link[4], "LATENT"])
    workflow["nodes"].append({"id": 50, "type": "Reroute", "mode": 0, "inputs": [{"name": "", "type": "*", "link": 91}],
                              "outputs": [{"name": "", "type": "LATENT", "links": [90]}]})
    workflow["links"].append([91, latent_link[1], latent_link[2], 50, 0, "LATENT"])
    next(entry for entry in nodes[stock]["inputs"] if entry["type"] == "LATENT")["link"] = 90
    # a PrimitiveNode drives the stock seed
    workflow["nodes"].append({"id": 51, "type": "PrimitiveNode", "mode": 0, "inputs": [],
                              "outputs": [{"name": "INT", "type": "INT", "links": [92]}],
                              "widgets_values": [123, "fixed"]})
    workflow["links"].append([92, 51, 0, stock, 4, "INT"])
    nodes[stock]["inputs"].append({"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": 92})
    nodes[delayed]["mode"] = 4  # bypassed: its LATENT input passes through
    nodes[stock_save]["mode"] = 2  # muted

    prompt = to_api_prompt(workflow, object_info)
    assert prompt[str(stock)]["inputs"]["latent_image"] == [str(latent_link[1]), 0]
    assert prompt[str(stock)]["inputs"]["seed"] == 123
    assert prompt[str(delayed_decode)]["inputs"]["samples"] == [str(latent_link[1]), 0]
    assert not {str(delayed), str(stock_save), "50", "51", "1"} & set(prompt)


@pytest.mark.parametrize("path", EXAMPLES, ids=example_id)
def test_example_runs_and_every_output_node_shows_images(path, server, object_info):
    prompt = api_prompt(path, object_info)
    queued, entry = queue_and_wait(server, prompt)
    assert "prompt_id" in queued and not queued.get("node_errors"), json.dumps(queued, indent=1)[:3000]
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"], indent=1)[-3000:]
    output_nodes = [node_id for node_id, node in prompt.items() if object_info[node["class_type"]]["output_node"]]
    assert output_nodes
    for node_id in output_nodes:
        images = entry["outputs"].get(node_id, {}).get("images", [])
        if prompt[node_id]["class_type"] == VIEWER:  # its widget shows the run: the images are in its payload
            images = [image for payload in entry["outputs"].get(node_id, {}).get(VIEWER_UI_KEY, [])
                      for image in payload["images"]]
        assert images, f"{prompt[node_id]['_meta']['title']} (node {node_id}) showed no image"
        assert all(fetch_image(server, image).width > 0 for image in images)


def fetch_image(server, image: dict) -> Image.Image:
    """The picture as the frontend gets it (saved or temporary), through GET /view."""
    query = urllib.parse.urlencode({key: image.get(key, "") for key in ("filename", "subfolder", "type")})
    with urllib.request.urlopen(f"{server.url}/view?{query}", timeout=30) as response:
        picture = Image.open(io.BytesIO(response.read()))
        picture.load()
    return picture
