"""Turn a UI-format (litegraph) workflow, as saved by the ComfyUI frontend, into an API-format prompt.

The frontend's own "Save (API)" does this in the browser; the tests need it without one.

Widgets. A UI node keeps its widget values as a bare list, `widgets_values`, in the order the
frontend created the widgets; only /object_info says which input each value belongs to. The
frontend (1.32) creates them like this, and `widget_names` repeats it:
  - inputs in `input_order`: required first, then optional (hidden inputs never);
  - an input is a widget if its type is INT, FLOAT, STRING, BOOLEAN or a COMBO (a list of options,
    or "COMBO"), unless it says `forceInput`; every other type (MODEL, LATENT, ...) is a socket and
    has no value in the list;
  - an INT (or COMBO) with `control_after_generate` (or, without that option, an INT named seed or
    noise_seed) is followed by the "control after generate" widget ("fixed", "randomize", ...):
    its value sits in the list right after the seed and is skipped here;
  - a COMBO with `image_upload` (Load Image's image) gets the frontend's "choose file to upload"
    button as one more required input, after the other required widgets (Load Image Mask: image,
    channel, then the button); its value, "image", is saved in the list (1.32 and 1.49) but never
    queued: skipped here too;
  - a widget input that is connected keeps its value in the list: the link wins.
Dict-shaped `widgets_values` (some packs save {name: value}) are read by name.

Links. Each input that has a link becomes [origin node id as a string, origin output slot].
Frontend-only nodes are dropped: Note, MarkdownNote, Reroute (links are followed through
chains of them) and PrimitiveNode (its value is copied into the widget it feeds). Muted nodes
(mode 2) are dropped with everything they feed; bypassed nodes (mode 4) are dropped and, as
the frontend does, a link from one is passed through to its input of the same type.
Subgraphs are not supported.

Checkpoints. `checkpoint="x.safetensors"` replaces every `ckpt_name`, so an example that names
"v1-5-pruned-emaonly.safetensors" runs on the generated test checkpoint.

Model files without a stand-in. The generated models are checkpoints, so only `ckpt_name` can be
mapped. A workflow that loads a model through another loader (a diffusion model alone, its text
encoders, a VAE, a LoRA: Flux dev, a Lightning LoRA, Chroma, Qwen-Image, Wan 2.2) names files the
test machines do not have, at sizes they cannot generate (T5-XXL, Qwen2.5-VL 7B, UMT5-XXL):
`runs_on_generated_models` says so, and the tests validate such a workflow instead of running it
(`errors_besides_missing_files`: the server's /prompt validation may find nothing wrong but the
model files it lacks).

Pictures a workflow loads. Load Image reads its file from the server's input folder, which a user
fills by uploading (the node's upload button: POST /upload/image). An example that loads a picture
commits it beside itself in example_workflows/ (EXAMPLE_INPUTS); `input_images` names the pictures a
workflow loads, and `runs_on_generated_models` counts a workflow as runnable only when each of them is
committed there, for the tests and the thumbnail script to upload before they queue it.

Scaling down for CPU tests (`scale_down`): `max_steps` caps the sampling steps and
`max_latent_size` the longer side of empty latents, so an example runs in seconds.
All step counts in a prompt are scaled by ONE ratio, max_steps / (largest "steps" in the prompt),
so a workflow's step arithmetic keeps its proportions: with max_steps=10, 30 steps become 10,
negative_start 5 becomes 2 (a delayed negative stays delayed: at least 1), a two-pass split at
end_at_step/start_at_step 12 becomes 4 in both passes, end_at_step 10000 stays past the end,
negative_start 30 (never) stays at the end. Scaled: INT `steps`, `start_at_step`, `end_at_step`,
`negative_start`/`negative_end` when `timing_unit` is "step" (fractions and sigmas need no
change), the attention views' `first_step`, `last_step`, `mark_step` (-1 stays -1; capped at the
last recorded step) and the grid's `steps` list ("0, 5, 10-14"). Latent width and height keep
their aspect, in multiples of 8.
"""

import copy
import re
from pathlib import Path

VIRTUAL_NODES = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}

# The checkpoints `make setup` generates, and the standard files an example may name that they stand for.
TEST_CHECKPOINT = "delayed-negative-test-sd15.safetensors"
TEST_SD3_CHECKPOINT = "delayed-negative-test-sd3.safetensors"
TOY_CHECKPOINT = "delayed-negative-toy-portraits.safetensors"  # an example made for it keeps it
SD3_FILES = {"sd3.5_medium_incl_clips_t5xxlfp8scaled.safetensors", "sd3.5_large_fp8_scaled.safetensors"}
# An SDXL fine-tune as its makers publish it (SG161222/RealVisXL_V5.0 on Hugging Face): a checkpoint,
# so the SD1.5 test checkpoint stands in for it like for sd_xl_base_1.0.
SDXL_FINE_TUNES = {"RealVisXL_V5.0_fp16.safetensors"}
STANDARD_CHECKPOINTS = {"v1-5-pruned-emaonly.safetensors", "sd_xl_base_1.0.safetensors",
                        "sd_xl_refiner_1.0.safetensors", TOY_CHECKPOINT} | SD3_FILES | SDXL_FINE_TUNES
# The Flux dev files of ComfyUI's own Flux example, and ByteDance's SDXL Lightning files.
FLUX_DEV_FILES = {"flux1-dev.safetensors", "clip_l.safetensors", "t5xxl_fp16.safetensors", "ae.safetensors"}
SDXL_LIGHTNING_FILES = {"sdxl_lightning_4step_lora.safetensors", "sdxl_lightning_8step_lora.safetensors"}
# The files of ComfyUI's own templates for Chroma (image_chroma_text_to_image), Qwen-Image (image_qwen_image)
# and Wan 2.2 14B text to video (video_wan2_2_14B_t2v); Chroma's VAE is Flux's ae.safetensors.
CHROMA_FILES = {"Chroma1-HD.safetensors", "t5xxl_fp8_e4m3fn_scaled.safetensors", "ae.safetensors"}
QWEN_IMAGE_FILES = {"qwen_image_fp8_e4m3fn.safetensors", "qwen_2.5_vl_7b_fp8_scaled.safetensors",
                    "qwen_image_vae.safetensors"}
WAN22_T2V_FILES = {"wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors",
                   "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors", "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
                   "wan_2.1_vae.safetensors"}
STANDARD_MODEL_FILES = (STANDARD_CHECKPOINTS | FLUX_DEV_FILES | SDXL_LIGHTNING_FILES | CHROMA_FILES
                        | QWEN_IMAGE_FILES | WAN22_T2V_FILES)
# The inputs that name a model file, and the loaders whose files no generated model stands in for.
MODEL_FILE_INPUTS = {"ckpt_name", "unet_name", "clip_name", "clip_name1", "clip_name2", "clip_name3", "clip_name4",
                     "vae_name", "lora_name"}
# The pictures the examples load (Load Image), committed beside them; the loaders that read the input
# folder, their picture the first widget.
EXAMPLE_INPUTS = Path(__file__).resolve().parents[2] / "example_workflows"
IMAGE_LOADERS = {"LoadImage", "LoadImageMask"}
LOADERS_WITHOUT_STAND_IN = {"UNETLoader", "CLIPLoader", "DualCLIPLoader", "TripleCLIPLoader",
                            "QuadrupleCLIPLoader", "VAELoader", "LoraLoader", "LoraLoaderModelOnly"}


def on_generated_checkpoints(prompt: dict) -> dict:
    """The API prompt with each standard checkpoint replaced by the generated one of its architecture."""
    for node in prompt.values():
        name = node["inputs"].get("ckpt_name")
        if name not in (None, TOY_CHECKPOINT):
            node["inputs"]["ckpt_name"] = TEST_SD3_CHECKPOINT if name in SD3_FILES else TEST_CHECKPOINT
    return prompt


WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SEED_NAMES = {"seed", "noise_seed"}
MUTED, BYPASSED = 2, 4
STEP_POSITIONS = {"start_at_step", "end_at_step"}
RECORDED_STEP_POSITIONS = {"first_step", "last_step", "mark_step"}
NEGATIVE_TIMING = {"negative_start", "negative_end"}


def runs_on_generated_models(workflow: dict, inputs: Path = EXAMPLE_INPUTS) -> bool:
    """Whether every model a UI-format workflow loads comes through a checkpoint loader (which
    on_generated_checkpoints maps), and every picture it loads is in `inputs` (the pictures committed
    beside the examples, which can be uploaded to the server); False if it loads a model through
    LOADERS_WITHOUT_STAND_IN or a picture that is not there."""
    if any(node["type"] in LOADERS_WITHOUT_STAND_IN for node in workflow["nodes"]
           if node.get("mode") not in (MUTED, BYPASSED)):
        return False
    return all((inputs / name).is_file() for name in input_images(workflow))


def input_images(workflow: dict) -> list[str]:
    """The file names a UI-format workflow's Load Image nodes read from the server's input folder."""
    names = []
    for node in workflow["nodes"]:
        if node["type"] in IMAGE_LOADERS and node.get("mode") not in (MUTED, BYPASSED):
            values = node.get("widgets_values") or [None]
            name = values.get("image") if isinstance(values, dict) else values[0]
            if isinstance(name, str) and name not in names:
                names.append(name)
    return names


def model_files(prompt: dict) -> dict[tuple[str, str], str]:
    """{(node id, input name): file} of every model file an API prompt names."""
    return {(node_id, name): value for node_id, node in prompt.items() for name, value in node["inputs"].items()
            if name in MODEL_FILE_INPUTS and isinstance(value, str)}


def errors_besides_missing_files(answer: dict, prompt: dict) -> list[str]:
    """What the server's answer to POST /prompt of `prompt` reports other than model files it does not
    have ("value_not_in_list" on an input of MODEL_FILE_INPUTS, with the prompt's own value); [] when
    the prompt was refused for those files alone. A prompt the server accepted is reported too: it was
    queued, so the check did not stop at validation."""
    if "prompt_id" in answer:
        return [f"the server accepted the prompt (queued as {answer['prompt_id']}): it has every model file"]
    problems = []
    if answer.get("error", {}).get("type") != "prompt_outputs_failed_validation":
        problems.append(f"not refused in validation: {answer.get('error')}")
    named = model_files(prompt)
    for node_id, entry in answer.get("node_errors", {}).items():
        for error in entry["errors"]:
            extra = error.get("extra_info", {})
            key = (node_id, extra.get("input_name"))
            if not (error["type"] == "value_not_in_list" and key in named
                    and extra.get("received_value") == named[key]):
                problems.append(f"node {node_id} ({entry.get('class_type')}): {error['message']}: {error['details']}")
    return problems


def files_the_server_lacks(prompt: dict, object_info: dict) -> dict[tuple[str, str], str]:
    """The part of model_files(prompt) that is not among the server's choices for its input."""
    lacking = {}
    for (node_id, name), file in model_files(prompt).items():
        spec = dict(input_specs(object_info[prompt[node_id]["class_type"]]))[name]
        options = (spec[1] if len(spec) > 1 else {}) or {}
        choices = spec[0] if isinstance(spec[0], list) else options.get("options", [])
        if file not in choices:
            lacking[(node_id, name)] = file
    return lacking


class WorkflowError(ValueError):
    """The workflow cannot be converted; the message says which node and what to change."""


def input_specs(node_info: dict) -> list[tuple[str, list]]:
    """(name, spec) of a node type's inputs in the frontend's order: input_order, required then optional."""
    inputs = node_info.get("input", {})
    order = node_info.get("input_order") or {section: list(inputs.get(section, {})) for section in inputs}
    return [(name, inputs[section][name]) for section in ("required", "optional")
            for name in order.get(section, []) if name in inputs.get(section, {})]


def is_widget(spec: list) -> bool:
    kind, options = spec[0], (spec[1] if len(spec) > 1 else {}) or {}
    return (isinstance(kind, list) or kind in WIDGET_TYPES) and not options.get("forceInput")


def has_control_widget(name: str, spec: list) -> bool:
    """Whether the frontend adds a "control after generate" widget after this one."""
    options = (spec[1] if len(spec) > 1 else {}) or {}
    control = options.get("control_after_generate")
    if control is None:
        return spec[0] == "INT" and name in SEED_NAMES
    return bool(control)


def has_upload_widget(node_info: dict) -> bool:
    """Whether the frontend adds its upload button to this node (Load Image): a required combo with
    `image_upload`."""
    return any(((spec[1] if len(spec) > 1 else {}) or {}).get("image_upload")
               for spec in node_info.get("input", {}).get("required", {}).values())


def widget_names(node_info: dict) -> list[str | None]:
    """The name behind each entry of widgets_values; None for a control-after-generate value and
    for the upload button's."""
    names, required = [], node_info.get("input", {}).get("required", {})
    upload_button = has_upload_widget(node_info)  # one more required input, after the others
    for name, spec in input_specs(node_info):
        if upload_button and name not in required:
            names.append(None)
            upload_button = False
        if is_widget(spec):
            names.append(name)
            if has_control_widget(name, spec):
                names.append(None)
    if upload_button:
        names.append(None)
    return names


def widget_inputs(node: dict, node_info: dict) -> dict:
    """{input name: value} from a UI node's widgets_values.

    A workflow saved before a node gained an optional widget at the end (a pack's new setting, such
    as Record Attention Maps' negative_influence) lacks its value: the frontend keeps the widget's
    default, and so does this (the input is left out, and the node takes its default)."""
    values = node.get("widgets_values") or []
    names = widget_names(node_info)
    if isinstance(values, dict):
        return {name: values[name] for name in names if name is not None and name in values}
    optional = node_info.get("input", {}).get("optional", {})
    if len(values) < len(names) and all(name in optional for name in names[len(values):]):
        names = names[:len(values)]
    if len(values) != len(names):
        expected = ", ".join(name or "(control after generate)" for name in names)
        raise WorkflowError(f"Node {node['id']} ({node['type']}) has {len(values)} widget values, but this "
                            f"ComfyUI's {node['type']} has {len(names)} widgets: {expected}. Open and re-save "
                            "the workflow in this ComfyUI, or update the node pack it was made with.")
    return {name: value for name, value in zip(names, values) if name is not None}


class _Graph:
    def __init__(self, workflow: dict):
        if workflow.get("definitions", {}).get("subgraphs"):
            raise WorkflowError("This workflow has subgraphs, which this converter does not expand.")
        self.nodes = {node["id"]: node for node in workflow["nodes"]}
        self.links = {}
        for link in workflow.get("links", []):
            if isinstance(link, dict):  # the frontend's newer serialisation
                link = [link["id"], link["origin_id"], link["origin_slot"], link["target_id"],
                        link["target_slot"], link["type"]]
            self.links[link[0]] = link

    def origin(self, link_id):
        """The real (node, slot) a link comes from, through Reroutes and bypassed nodes; None if none."""
        seen = set()
        while link_id is not None and link_id in self.links and link_id not in seen:
            seen.add(link_id)
            _, from_id, from_slot, _, _, link_type = self.links[link_id]
            node = self.nodes.get(from_id)
            if node is None or node.get("mode") == MUTED:
                return None
            if node["type"] == "Reroute":
                link_id = (node.get("inputs") or [{}])[0].get("link")
            elif node.get("mode") == BYPASSED:
                link_id = self._passed_through(node, from_slot, link_type)
            else:
                return node, from_slot
        return None

    @staticmethod
    def _passed_through(node: dict, slot: int, link_type: str):
        inputs = node.get("inputs") or []
        if slot < len(inputs) and inputs[slot].get("type") == link_type and inputs[slot].get("link") is not None:
            return inputs[slot]["link"]
        return next((entry["link"] for entry in inputs
                     if entry.get("type") == link_type and entry.get("link") is not None), None)


def to_api_prompt(workflow: dict, object_info: dict, checkpoint: str | None = None) -> dict:
    """The API-format prompt {node id: {"class_type", "inputs", "_meta"}} for a UI-format workflow."""
    graph = _Graph(workflow)
    missing = sorted({node["type"] for node in graph.nodes.values()
                      if node["type"] not in VIRTUAL_NODES and node["type"] not in object_info})
    if missing:
        raise WorkflowError(f"Node types missing on this server: {', '.join(missing)}. "
                            "Install the node packs that provide them.")
    prompt = {}
    for node_id, node in graph.nodes.items():
        if node["type"] in VIRTUAL_NODES or node.get("mode") in (MUTED, BYPASSED):
            continue
        node_info = object_info[node["type"]]
        inputs = widget_inputs(node, node_info)
        for entry in node.get("inputs") or []:
            origin = graph.origin(entry.get("link"))
            if origin is None:
                continue
            source, slot = origin
            if source["type"] == "PrimitiveNode":
                inputs[entry["name"]] = (source.get("widgets_values") or [None])[0]
            else:
                inputs[entry["name"]] = [str(source["id"]), slot]
        if checkpoint is not None and "ckpt_name" in inputs:
            inputs["ckpt_name"] = checkpoint
        prompt[str(node_id)] = {"class_type": node["type"], "inputs": inputs,
                                "_meta": {"title": node.get("title") or node_info.get("display_name")
                                          or node["type"]}}
    return prompt


def scale_down(prompt: dict, object_info: dict, max_steps: int | None = None,
               max_latent_size: int | None = None) -> dict:
    """A copy of an API prompt with fewer steps and smaller latents; see the module docstring."""
    prompt = copy.deepcopy(prompt)
    if max_steps is not None:
        _scale_steps(prompt, object_info, max_steps)
    if max_latent_size is not None:
        for node in prompt.values():
            _scale_latent(node, max_latent_size)
    return prompt


def _is_int_input(object_info: dict, class_type: str, name: str) -> bool:
    specs = dict(input_specs(object_info.get(class_type, {})))
    return name in specs and specs[name][0] == "INT"


def _scale_steps(prompt: dict, object_info: dict, max_steps: int) -> None:
    counts = [node["inputs"]["steps"] for node in prompt.values()
              if isinstance(node["inputs"].get("steps"), int)
              and _is_int_input(object_info, node["class_type"], "steps")]
    if not counts or max(counts) <= max_steps:
        return
    ratio = max_steps / max(counts)
    last_recorded = max(1, round(max(counts) * ratio)) - 1

    def position(value):
        return round(value * ratio)

    for node in prompt.values():
        inputs = node["inputs"]
        for name, value in list(inputs.items()):
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                continue  # a link
            if name == "steps" and isinstance(value, int) and _is_int_input(object_info, node["class_type"], name):
                inputs[name] = max(1, position(value))
            elif name == "steps" and isinstance(value, str):
                inputs[name] = _scale_step_list(value, position, last_recorded)
            elif name in STEP_POSITIONS and isinstance(value, int):
                inputs[name] = position(value)
            elif name == "starts" and isinstance(value, str) and inputs.get("timing_unit", "step") == "step":
                inputs[name] = _scale_starts(value, position)
            elif name in NEGATIVE_TIMING and inputs.get("timing_unit", "step") == "step" and value > 0:
                inputs[name] = float(max(1, position(value)))
            elif name in RECORDED_STEP_POSITIONS and isinstance(value, int) and value >= 0:
                inputs[name] = min(position(value), last_recorded)


def _scale_starts(text: str, position) -> str:
    """A sweep's '0, 3, 6, 10, never' with each step scaled (a start after 0 stays after 0)."""
    parts = [part.strip() for part in text.split(",")]
    return ", ".join(str(max(1, position(float(part)))) if part.replace(".", "", 1).isdigit() and float(part) > 0
                     else part for part in parts)


def _scale_step_list(text: str, position, last_recorded: int) -> str:
    """'0, 5, 10-14' with every step scaled and capped, duplicates removed; 'all' unchanged."""
    if not re.fullmatch(r"\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*", text):
        return text
    parts = []
    for part in text.split(","):
        ends = [min(position(int(end)), last_recorded) for end in part.split("-")]
        scaled = "-".join(str(end) for end in dict.fromkeys(ends))
        if scaled not in parts:
            parts.append(scaled)
    return ", ".join(parts)


def _scale_latent(node: dict, max_latent_size: int) -> None:
    inputs = node["inputs"]
    width, height = inputs.get("width"), inputs.get("height")
    if not (node["class_type"].startswith("Empty") and "Latent" in node["class_type"]
            and isinstance(width, int) and isinstance(height, int)):
        return
    scale = max_latent_size / max(width, height)
    if scale < 1:
        inputs["width"] = max(8, round(width * scale / 8) * 8)
        inputs["height"] = max(8, round(height * scale / 8) * 8)
