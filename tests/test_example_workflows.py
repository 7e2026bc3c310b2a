"""Every example workflow (example_workflows/*.json) runs end to end on the real ComfyUI server, or,
when it loads models the test machines cannot have, is checked as far as the server can check it.

Each is converted from the UI format to an API prompt through the server's /object_info
(devtools/host/workflow_api.py), the standard checkpoints it names mapped to the generated test
checkpoint of their architecture (SD1.5 or SD3; an example made for the toy portraits model,
which `make setup` builds, keeps it) and
scaled down (MAX_STEPS steps, latents at most MAX_LATENT_SIZE pixels) so it runs in seconds on a CPU.
A picture an example loads (Load Image) is committed beside it and uploaded to the server's input folder
through /upload/image, as the frontend's upload button does, before anything is queued.

Validated only: an example that loads a model through another loader than a checkpoint's (Flux dev's
diffusion model, text encoders and VAE; a Lightning LoRA; Chroma, Qwen-Image and Wan 2.2, loaded the same
way) names files no generated model stands in for
(workflow_api.runs_on_generated_models). Its nodes, sockets, links and widget values are checked against
/object_info like every example's, and the server's own /prompt validation of it, as a user would queue
it, must refuse it for the model files it lacks and for nothing else.
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

from devtools.host.workflow_api import (MODEL_FILE_INPUTS, STANDARD_MODEL_FILES, TOY_CHECKPOINT, VIRTUAL_NODES,
                                       errors_besides_missing_files, files_the_server_lacks, input_images, input_specs,
                                       is_widget, model_files, on_generated_checkpoints, runs_on_generated_models,
                                       scale_down, to_api_prompt, widget_inputs, widget_names)

PACK_ROOT = Path(__file__).resolve().parent.parent
TOY_EXAMPLE = PACK_ROOT / "example_workflows" / "07_toy_model_glasses_removed_attention.json"
EXAMPLES = sorted((PACK_ROOT / "example_workflows").glob("*.json"))
RUN = [path for path in EXAMPLES if runs_on_generated_models(json.loads(path.read_text()))]
VALIDATED = [path for path in EXAMPLES if path not in RUN]  # README's example table says which
TOY_EXAMPLES = [path for path in EXAMPLES
                if {node["widgets_values"][0] for node in json.loads(path.read_text())["nodes"]
                    if node["type"] == "CheckpointLoaderSimple"} == {TOY_CHECKPOINT}]
FLUX_EXAMPLE = PACK_ROOT / "example_workflows" / "11_flux_dev_cfg1_nag_delayed_negative.json"
EXPLAIN_EXAMPLE = PACK_ROOT / "example_workflows" / "13_toy_model_explain_image.json"  # loads a committed picture
# The model families users run: an SDXL fine-tune (a checkpoint: the SD1.5 test checkpoint stands in), and
# Chroma, Qwen-Image and Wan 2.2 (diffusion model, text encoder and VAE loaded apart: validated only).
SDXL_FINE_TUNE_EXAMPLE = PACK_ROOT / "example_workflows" / "14_sdxl_finetune_long_quality_negative_delayed.json"
FAMILY_EXAMPLES_VALIDATED = [PACK_ROOT / "example_workflows" / f"{name}.json" for name in (
    "15_chroma_delayed_negative", "16_qwen_image_delayed_negative", "17_wan22_t2v_two_experts_delayed_negative")]
VIEWER, VIEWER_UI_KEY = "DelayedNegativeAttentionViewer", "delayed_negative_attention_viewer"
MAX_STEPS = 8  # 30 → 8 keeps the sweep's starts 0, 3, 6, 10, 30 apart: 0, 1, 2, 3, 8
MAX_LATENT_SIZE = 64


def example_id(path: Path) -> str:
    return path.stem


@pytest.fixture(scope="module")
def object_info(server):
    """The server's node definitions, once the pictures the examples load are in its input folder
    (uploaded as the frontend's upload button does): Load Image lists them."""
    server.upload_example_inputs([load(path) for path in EXAMPLES])
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


def test_there_are_the_examples_each_with_its_own_number():
    numbers = [path.name[:2] for path in EXAMPLES]
    assert len(EXAMPLES) >= 16 and all(number.isdigit() for number in numbers) \
        and len(set(numbers)) == len(numbers), [path.name for path in EXAMPLES]


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
def test_example_names_model_files_a_user_has(path, object_info):
    names = set(model_files(to_api_prompt(load(path), object_info)).values())
    assert names and names <= STANDARD_MODEL_FILES, names - STANDARD_MODEL_FILES


def test_there_are_examples_to_run_and_to_validate():
    assert TOY_EXAMPLE in RUN and TOY_EXAMPLE in TOY_EXAMPLES and FLUX_EXAMPLE in VALIDATED, \
        ([path.stem for path in RUN], [path.stem for path in VALIDATED])
    assert SDXL_FINE_TUNE_EXAMPLE in RUN and set(FAMILY_EXAMPLES_VALIDATED) <= set(VALIDATED), \
        ([path.stem for path in RUN], [path.stem for path in VALIDATED])


def test_an_example_runs_when_the_picture_it_loads_is_committed_and_not_when_it_is_missing(tmp_path):
    """Load Image reads the server's input folder: the tests upload an example's picture, committed beside
    it (the object_info fixture), before they queue it; a picture that is not there cannot be uploaded."""
    workflow = load(EXPLAIN_EXAMPLE)
    assert input_images(workflow) == ["toy_portrait_glasses.png"] and EXPLAIN_EXAMPLE in RUN
    assert not runs_on_generated_models(workflow, inputs=tmp_path)  # a folder without it
    next(node for node in workflow["nodes"] if node["type"] == "LoadImage")["widgets_values"][0] = "mine.png"
    assert input_images(workflow) == ["mine.png"] and not runs_on_generated_models(workflow)


def test_the_upload_button_s_saved_value_is_skipped():
    """The frontend (1.32, 1.49) adds its upload button after a picture loader's required widgets and
    saves its value, "image": Load Image Mask as [picture, channel, "image"]; it never queues it."""
    load_image_mask = {"input": {"required": {"image": [["a.png"], {"image_upload": True}],
                                              "channel": [["alpha", "red", "green", "blue"]]}}}
    assert widget_names(load_image_mask) == ["image", "channel", None]
    node = {"id": 3, "type": "LoadImageMask", "widgets_values": ["a.png", "red", "image"]}
    assert widget_inputs(node, load_image_mask) == {"image": "a.png", "channel": "red"}


def combo_choices(spec: list) -> list | None:
    options = (spec[1] if len(spec) > 1 else {}) or {}
    return spec[0] if isinstance(spec[0], list) else options.get("options") if spec[0] == "COMBO" else None


def widget_value_problem(name: str, spec: list, value) -> str | None:
    """Why the server would refuse `value` for this widget input; None if it would take it (a model
    file name is taken as it is: the test machines do not have the users' files)."""
    kind, options = spec[0], (spec[1] if len(spec) > 1 else {}) or {}
    choices = combo_choices(spec)
    if choices is not None:
        if name in MODEL_FILE_INPUTS:
            return None if isinstance(value, str) else f"{value!r} is no file name"
        return None if value in choices else f"{value!r} is not one of {choices}"
    expected = {"INT": int, "FLOAT": (int, float), "STRING": str, "BOOLEAN": bool}[kind]
    if not isinstance(value, expected) or (kind in ("INT", "FLOAT") and isinstance(value, bool)):
        return f"{value!r} is not {kind}"
    if kind in ("INT", "FLOAT") and not options.get("min", value) <= value <= options.get("max", value):
        return f"{value!r} is outside {options.get('min')}..{options.get('max')}"
    return None


def mismatches(workflow: dict, object_info: dict) -> list[str]:
    """What in a UI-format workflow does not match the server's node definitions: its input sockets
    (name and type), a required socket left unconnected, its outputs (the server's first ones), each
    link's type at both ends, and its widget values (their count, types, ranges and choices)."""
    problems, nodes = [], {node["id"]: node for node in workflow["nodes"]}
    for node in workflow["nodes"]:
        if node["type"] in VIRTUAL_NODES:
            continue
        info, where = object_info[node["type"]], f"node {node['id']} ({node['type']})"
        specs = dict(input_specs(info))
        entries = {entry["name"]: entry for entry in node.get("inputs") or []}
        for name, entry in entries.items():
            spec = specs.get(name)
            if spec is None:
                problems.append(f"{where}: no input {name!r} on this server")
            elif not is_widget(spec) and entry["type"] != spec[0]:
                problems.append(f"{where}: input {name!r} is {entry['type']}, the server's {spec[0]}")
        required = info["input"].get("required", {})
        for name, spec in required.items():
            if not is_widget(spec) and entries.get(name, {}).get("link") is None:
                problems.append(f"{where}: required input {name!r} is not connected")
        outputs = [output["type"] for output in node.get("outputs") or []]
        if outputs != list(info["output"])[:len(outputs)]:  # a newer ComfyUI may add outputs (SaveImage, 0.33)
            problems.append(f"{where}: outputs {outputs}, the server's {info['output']}")
        try:
            values = widget_inputs(node, info)
        except ValueError as error:
            problems.append(str(error))
            continue
        for name, value in values.items():
            problem = widget_value_problem(name, specs[name], value)
            if problem:
                problems.append(f"{where}.{name}: {problem}")
    for link_id, origin, origin_slot, target, target_slot, kind in workflow["links"]:
        outputs, inputs = nodes[origin].get("outputs") or [], nodes[target].get("inputs") or []
        origin_kind = object_info[nodes[origin]["type"]]["output"][origin_slot]
        target_entry = inputs[target_slot] if target_slot < len(inputs) else {}
        if not (origin_kind == kind == target_entry.get("type") and target_entry.get("link") == link_id
                and link_id in outputs[origin_slot]["links"]):
            problems.append(f"link {link_id}: {kind} from node {origin} slot {origin_slot} ({origin_kind}) to node "
                            f"{target} slot {target_slot} ({target_entry.get('type')})")
    return problems


@pytest.mark.parametrize("path", EXAMPLES, ids=example_id)
def test_example_matches_the_servers_node_definitions(path, object_info):
    assert not mismatches(load(path), object_info)


def test_the_node_definition_check_finds_what_the_server_would_refuse(object_info):
    workflow = load(FLUX_EXAMPLE)
    nodes = {node["type"]: node for node in workflow["nodes"]}
    nodes["DelayedNegativeNAG"]["widgets_values"][0] = 0.5  # nag_scale below its minimum, 1
    nodes["DelayedNegativeKSampler"]["widgets_values"][5] = "no such scheduler"
    nodes["DualCLIPLoader"]["widgets_values"][2] = 3  # type: no choice
    link = next(link for link in workflow["links"] if link[5] == "DELAYED_NEGATIVE_NAG")
    link[5] = "MODEL"
    problems = mismatches(workflow, object_info)
    assert len(problems) == 4 and all(any(word in problem for problem in problems)
                                      for word in ("nag_scale", "scheduler", "type", f"link {link[0]}")), problems


@pytest.mark.parametrize("path", TOY_EXAMPLES, ids=example_id)
def test_a_toy_example_runs_on_the_toy_model_itself(path, object_info):
    assert TOY_CHECKPOINT in object_info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    names = {node["inputs"]["ckpt_name"] for node in api_prompt(path, object_info).values()
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


@pytest.mark.parametrize("path", RUN, ids=example_id)
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


@pytest.mark.parametrize("path", VALIDATED, ids=example_id)
def test_example_that_cannot_run_here_is_refused_for_its_model_files_alone(path, server, object_info):
    prompt = to_api_prompt(load(path), object_info)  # as a user queues it: their files, full size
    lacking = files_the_server_lacks(prompt, object_info)
    if lacking != model_files(prompt):
        pytest.skip(f"this server has {set(model_files(prompt).values()) - set(lacking.values())}: queued, "
                    "the example would run at full size; run it yourself")
    answer = server.post("/prompt", {"prompt": prompt, "client_id": str(uuid.uuid4())})
    assert not errors_besides_missing_files(answer, prompt), json.dumps(answer, indent=1)[:3000]
    refused = {(node_id, error["extra_info"]["input_name"]) for node_id, entry in answer["node_errors"].items()
               for error in entry["errors"]}
    assert refused == set(lacking)  # validation reached every loader


def test_validation_of_an_example_that_cannot_run_reaches_past_its_missing_files(server, object_info):
    """Nodes downstream of the loaders the server refuses (FluxGuidance after the text encoders, the sampler
    after everything) and the NAG Settings beside them are still validated: a value out of range there is
    reported with the missing files. (The server checks no choice of a V3 node's combo, e.g. the pack's
    samplers' scheduler: mismatches() above does.)"""
    prompt = to_api_prompt(load(FLUX_EXAMPLE), object_info)
    by_type = {node["class_type"]: node for node in prompt.values()}
    by_type["DelayedNegativeNAG"]["inputs"]["nag_scale"] = 0.5  # its minimum is 1
    by_type["FluxGuidance"]["inputs"]["guidance"] = -1.0  # its minimum is 0
    by_type["DelayedNegativeKSampler"]["inputs"]["steps"] = 0  # its minimum is 1
    answer = server.post("/prompt", {"prompt": prompt, "client_id": str(uuid.uuid4())})
    problems = errors_besides_missing_files(answer, prompt)
    assert len(problems) == 3 and all(any(name in problem for problem in problems)
                                      for name in ("nag_scale", "guidance", "steps")), problems
