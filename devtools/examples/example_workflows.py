"""Write the example workflows (`example_workflows/*.json`, the UI format a user drags into ComfyUI).

Each example is described below in a few lines of Python: nodes by type, widget values by input
name, links by input name (`sampler = graph.add("KSampler", model=checkpoint["MODEL"], seed=42)`).
The node definitions from /object_info turn that into what the frontend saves: widget values in
the frontend's order (see devtools/host/workflow_api.py, which reads them back), sockets, links, and a
tidy left-to-right layout.

Usage:
    python -m devtools.examples.example_workflows                 # node definitions from the saved copy
    python -m devtools.examples.example_workflows --server http://127.0.0.1:8188 --save-object-info
        # read them from a running ComfyUI with this pack (`make run`) and refresh the saved copy

Then `python -m devtools.examples.example_thumbnails` renders each example's .jpg thumbnail.
"""

import argparse
import json
import sys
import urllib.request
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[2]
from devtools.host.workflow_api import (  # noqa: E402
    EXAMPLE_INPUTS,
    MODEL_FILE_INPUTS,
    has_control_widget,
    has_upload_widget,
    input_specs,
    is_widget,
    widget_names,
)

OUTPUT_FOLDER = PACK_ROOT / "example_workflows"
SAVED_OBJECT_INFO = Path(__file__).resolve().parent / "example_workflows_object_info.json"

SD15 = "v1-5-pruned-emaonly.safetensors"
PROMPT = "portrait photo of a man"
NEGATIVE = "mustache"
SEED = 42
STEPS = 30
CRITICAL_STEP = 5  # the paper's example: the negative "mustache" from step 5 of 30
CFG = 7.5

NOTE_COLOUR = {"color": "#432", "bgcolor": "#653"}
COLUMN_GAP, ROW_GAP, MARGIN = 60, 40, 40
SLOT_HEIGHT, WIDGET_HEIGHT, MULTILINE_HEIGHT = 20, 24, 110
VIEWER = "DelayedNegativeAttentionViewer"
FILE_INPUTS = MODEL_FILE_INPUTS  # combos whose options are the server's files, not fixed choices
UPLOAD_BUTTON_VALUE = "image"  # what the frontend saves for Load Image's upload button


class Output:
    """One output socket of a node, to pass as a link: `node["MODEL"]` or `node[0]`."""

    def __init__(self, node: "Node", slot: int):
        self.node, self.slot = node, slot


class Node:
    def __init__(self, graph: "Graph", node_id: int, node_type: str, values: dict, title: str | None):
        self.graph, self.id, self.type, self.title = graph, node_id, node_type, title
        self.links = {name: value for name, value in values.items() if isinstance(value, Output)}
        self.widgets = {name: value for name, value in values.items() if not isinstance(value, Output)}

    def __getitem__(self, output) -> Output:
        if isinstance(output, int):
            return Output(self, output)
        names = self.graph.output_names(self.type)
        if output not in names:
            raise KeyError(f"{self.type} has no output {output!r}; it has {names}.")
        return Output(self, names.index(output))


class Graph:
    """A workflow under construction: `add` nodes, then `to_json`."""

    def __init__(self, object_info: dict, note: str):
        self.object_info = object_info
        self.note = note
        self.nodes: list[Node] = []

    def add(self, node_type: str, title: str | None = None, **values) -> Node:
        if node_type not in self.object_info:
            raise KeyError(f"{node_type} is not in /object_info: is the pack providing it installed?")
        node = Node(self, len(self.nodes) + 2, node_type, values, title)  # id 1 is the note
        self.nodes.append(node)
        return node

    def output_names(self, node_type: str) -> list[str]:
        info = self.object_info[node_type]
        return list(info.get("output_name") or info["output"])

    def sockets(self, node: Node) -> list[tuple[str, str]]:
        return [(name, spec[0]) for name, spec in input_specs(self.object_info[node.type]) if not is_widget(spec)]

    def widgets_values(self, node: Node) -> list:
        """In the order workflow_api.widget_names reads them back: a control after generate widget's
        value after its seed, the upload button's after a picture loader's widgets."""
        info = self.object_info[node.type]
        specs, by_name = dict(input_specs(info)), {}
        for name, spec in specs.items():
            if not is_widget(spec):
                continue
            options = (spec[1] if len(spec) > 1 else {}) or {}
            if name in node.widgets:
                value = node.widgets[name]
            elif "default" in options:
                value = options["default"]
            elif isinstance(spec[0], list) or spec[0] == "COMBO":
                value = (spec[0] if isinstance(spec[0], list) else options["options"])[0]
            else:
                raise ValueError(f"{node.type}.{name} has no default: give it a value.")
            choices = spec[0] if isinstance(spec[0], list) else options.get("options")
            if options.get("image_upload"):  # the server lists its input folder: the picture must be committed
                if not (EXAMPLE_INPUTS / value).is_file():
                    raise ValueError(f"{node.type}.{name} = {value!r} is not in {EXAMPLE_INPUTS}: commit it there.")
            elif choices is not None and name not in FILE_INPUTS and value not in choices:
                raise ValueError(f"{node.type}.{name} = {value!r} is not one of {choices}.")
            by_name[name] = value
        unknown = set(node.widgets) - set(by_name)
        if unknown:
            raise ValueError(f"{node.type} has no widget {sorted(unknown)}.")
        values, names = [], widget_names(info)
        for index, name in enumerate(names):
            before = names[index - 1] if index else None
            if name is not None:
                values.append(by_name[name])
            elif before is not None and has_control_widget(before, specs[before]):
                values.append("fixed")  # examples must reproduce: never "randomize"
            else:
                values.append(UPLOAD_BUTTON_VALUE)
        return values

    def to_json(self) -> dict:
        links, inputs, outputs = [], {}, {}
        for node in self.nodes:
            outputs[node.id] = [{"name": name, "type": kind, "links": [], "slot_index": slot}
                                for slot, (name, kind) in enumerate(zip(self.output_names(node.type),
                                                                        self.object_info[node.type]["output"]))]
        for node in self.nodes:
            sockets = self.sockets(node)
            unknown = set(node.links) - {name for name, _ in sockets}
            if unknown:
                raise ValueError(f"{node.type} has no input socket {sorted(unknown)}.")
            inputs[node.id] = []
            for slot, (name, kind) in enumerate(sockets):
                link_id = None
                if name in node.links:
                    source = node.links[name]
                    link_id = len(links) + 1
                    links.append([link_id, source.node.id, source.slot, node.id, slot, kind])
                    outputs[source.node.id][source.slot]["links"].append(link_id)
                inputs[node.id].append({"name": name, "type": kind, "link": link_id})

        columns = self.columns()
        order = {node.id: index + 1 for index, node in enumerate(sorted(self.nodes, key=lambda n: columns[n.id]))}
        sizes = {node.id: self.size(node) for node in self.nodes}
        note_size = [640, 40 + 20 * sum(1 + len(line) // 80 for line in self.note.split("\n"))]
        positions = self.layout(columns, sizes, top=MARGIN + note_size[1] + ROW_GAP)
        nodes = [{"id": 1, "type": "Note", "pos": [MARGIN, MARGIN], "size": note_size, "flags": {}, "order": 0,
                  "mode": 0, "inputs": [], "outputs": [], "title": "About this workflow", "properties": {},
                  "widgets_values": [self.note], **NOTE_COLOUR}]
        for node in self.nodes:
            entry = {"id": node.id, "type": node.type, "pos": positions[node.id], "size": sizes[node.id],
                     "flags": {}, "order": order[node.id], "mode": 0, "inputs": inputs[node.id],
                     "outputs": outputs[node.id], "properties": {"Node name for S&R": node.type},
                     "widgets_values": self.widgets_values(node)}
            if node.title:
                entry["title"] = node.title
            nodes.append(entry)
        return {"last_node_id": max(node["id"] for node in nodes), "last_link_id": len(links), "nodes": nodes,
                "links": links, "groups": [], "config": {}, "extra": {}, "version": 0.4}

    def columns(self) -> dict[int, int]:
        """Left-to-right columns: a node sits right of everything it reads; sources sit just left of
        their first reader, so a latent or a noise source is drawn next to its sampler."""
        column = {}

        def depth(node: Node) -> int:
            if node.id not in column:
                column[node.id] = 1 + max((depth(link.node) for link in node.links.values()), default=-1)
            return column[node.id]

        for node in self.nodes:
            depth(node)
        for node in self.nodes:
            readers = [column[other.id] for other in self.nodes
                       if any(link.node is node for link in other.links.values())]
            if not node.links and readers:
                column[node.id] = min(readers) - 1
        return column

    def size(self, node: Node) -> list[int]:
        info = self.object_info[node.type]
        specs = [spec for _, spec in input_specs(info)]
        widgets = sum(1 + has_control_widget(name, spec) for name, spec in input_specs(info) if is_widget(spec))
        widgets += has_upload_widget(info)
        multiline = sum(1 for spec in specs if is_widget(spec) and (spec[1] if len(spec) > 1 else {}).get("multiline"))
        sockets = max(len(self.sockets(node)), len(info["output"]))
        if info.get("output_node") and "images" in info["input"].get("required", {}):
            return [380, 420]  # room for the picture it shows
        if node.type == VIEWER:
            return [460, 820]  # room for its widget (web/attention_viewer.js)
        if has_upload_widget(info):
            return [320, 360]  # room for the picture Load Image shows
        # The frontend widens a node to fit its title (about 8 px a character at its default font).
        width = max(400 if multiline else 320, 8 * len(node.title or "") + 20)
        height = 14 + sockets * SLOT_HEIGHT + (widgets - multiline) * WIDGET_HEIGHT + multiline * MULTILINE_HEIGHT
        return [width, height]

    def layout(self, columns: dict[int, int], sizes: dict[int, list[int]], top: int) -> dict[int, list[int]]:
        positions, x = {}, MARGIN
        for column in range(min(columns.values()), max(columns.values()) + 1):
            members = [node for node in self.nodes if columns[node.id] == column]
            y = top
            for node in members:
                # Level with what feeds its first input, so a chain (sampler → decode → save) reads as a row.
                fed_from = next(iter(node.links.values()), None)
                y = max(y, positions[fed_from.node.id][1]) if fed_from else y
                positions[node.id] = [x, y]
                y += sizes[node.id][1] + ROW_GAP + 30  # 30: the title bar, drawn above `pos`
            x += max((sizes[node.id][0] for node in members), default=0) + COLUMN_GAP
        return positions


# --- the examples ----------------------------------------------------------------------------


# Examples that record attention encode their prompts with CLIP Text Encode (Attention Words), which
# gives the stock conditioning and lets Record Attention Maps read the words from it: typed once.
WORDS_ENCODER = "DelayedNegativeTextEncode"


def text_to_image_inputs(graph: Graph, width=512, height=512, encoder="CLIPTextEncode"):
    """Checkpoint, prompt, negative and an empty latent: what every example starts from."""
    checkpoint = graph.add("CheckpointLoaderSimple", ckpt_name=SD15)
    positive = graph.add(encoder, title="Positive prompt", text=PROMPT, clip=checkpoint["CLIP"])
    negative = graph.add(encoder, title="Negative prompt", text=NEGATIVE, clip=checkpoint["CLIP"])
    latent = graph.add("EmptyLatentImage", width=width, height=height, batch_size=1)
    return checkpoint, positive, negative, latent


def delayed_ksampler(graph, checkpoint, positive, negative, latent, negative_start, title=None, model=None):
    return graph.add("DelayedNegativeKSampler", title=title, model=model or checkpoint["MODEL"], seed=SEED,
                     steps=STEPS, cfg=CFG, sampler_name="euler", scheduler="normal", positive=positive[0],
                     negative=negative[0], latent_image=latent[0], denoise=1.0, negative_start=negative_start,
                     negative_end=-1.0, timing_unit="step", before_negative="empty prompt",
                     clip=checkpoint["CLIP"])


def save(graph, images: Output, prefix: str, title=None):
    return graph.add("SaveImage", title=title, images=images, filename_prefix=prefix)


def decode(graph, checkpoint, samples: Output):
    return graph.add("VAEDecode", samples=samples, vae=checkpoint["VAE"])


def record_maps(graph, checkpoint, positive_words: str, negative_words: str) -> Node:
    """Record Attention Maps on the checkpoint's model, the prompts read from the conditioning."""
    return graph.add("DelayedNegativeRecordAttentionMaps", model=checkpoint["MODEL"], clip=checkpoint["CLIP"],
                     positive_prompt="", negative_prompt="", positive_words=positive_words,
                     negative_words=negative_words, layers="all")


def collect_maps(graph, recorder: Node, sampler: Node) -> Node:
    return graph.add("DelayedNegativeCollectAttentionMaps", recording=recorder[1], samples=sampler[0])


def save_chart(graph, maps: Node, prefix: str):
    """The strength chart of every recorded word, the negative's start marked where it appears."""
    chart = graph.add("DelayedNegativeAttentionChart", attention_maps=maps[0], words="", batch_index=0,
                      mark_step=-1)
    return save(graph, chart[0], prefix)


def paper_example(object_info) -> Graph:
    graph = Graph(object_info, (
        "The paper's example (arXiv 2406.02965): \"portrait photo of a man\" with the negative \"mustache\". "
        "Same seed, sampler and cfg in both samplers; compare the two saved images.\n\n"
        "KSampler (stock): the negative acts from step 0, while the layout is still forming, and can change the "
        "whole portrait.\n\n"
        f"KSampler (Delayed Negative): the empty prompt guides steps 0-{CRITICAL_STEP - 1}, so the portrait forms "
        f"as it would without a negative; from step {CRITICAL_STEP} of {STEPS} (the critical step) \"mustache\" "
        "removes the mustache and little else."))
    checkpoint, positive, negative, latent = text_to_image_inputs(graph)
    stock = graph.add("KSampler", title="KSampler (stock): negative from step 0", model=checkpoint["MODEL"],
                      seed=SEED, steps=STEPS, cfg=CFG, sampler_name="euler", scheduler="normal",
                      positive=positive[0], negative=negative[0], latent_image=latent[0], denoise=1.0)
    delayed = delayed_ksampler(graph, checkpoint, positive, negative, latent, float(CRITICAL_STEP),
                               title=f"KSampler (Delayed Negative): negative from step {CRITICAL_STEP}")
    save(graph, decode(graph, checkpoint, stock[0])[0], "stock_negative_from_step_0",
         title="Stock: negative from step 0")
    save(graph, decode(graph, checkpoint, delayed[0])[0], f"delayed_negative_from_step_{CRITICAL_STEP}",
         title=f"Delayed: negative from step {CRITICAL_STEP}")
    return graph


def attention_maps(object_info) -> Graph:
    graph = Graph(object_info, (
        "Where and when each word acts. Record Attention Maps patches the model, the sampler runs as usual, and "
        "Collect Attention Maps takes the maps of that run. The prompts are typed once: CLIP Text Encode "
        "(Attention Words) encodes them like CLIP Text Encode, and Record reads their words from the conditioning "
        "(its own prompt boxes stay empty).\n\n"
        "Chart: each word's attention per step (solid: positive branch, dashed: unconditional). \"mustache\" "
        f"appears at step {CRITICAL_STEP}, where the delayed negative starts. Grid: the maps per word and step. "
        "Overlay: where each word acts on the image. Mask: where \"mustache\" acts, as a MASK.\n\n"
        "Changing a view's settings re-renders without sampling again."))
    checkpoint, positive, negative, latent = text_to_image_inputs(graph, encoder=WORDS_ENCODER)
    recorder = record_maps(graph, checkpoint, "man", "mustache")
    sampler = delayed_ksampler(graph, checkpoint, positive, negative, latent, float(CRITICAL_STEP),
                               model=recorder["MODEL"])
    image = decode(graph, checkpoint, sampler[0])
    save(graph, image[0], "attention_image")
    maps = collect_maps(graph, recorder, sampler)
    save_chart(graph, maps, "attention_chart")
    grid = graph.add("DelayedNegativeAttentionGrid", attention_maps=maps[0], words="",
                     steps="0, 2, 4, 5, 6, 8, 12, 16, 20, 25, 29", batch_index=0, colormap="viridis",
                     normalization="per word over steps", cell_size=96)
    save(graph, grid[0], "attention_grid")
    overlay = graph.add("DelayedNegativeAttentionOverlay", attention_maps=maps[0], image=image[0],
                        words="man, mustache", first_step=0, last_step=-1, colormap="magma", opacity=0.6)
    save(graph, overlay[0], "attention_overlay")
    mask = graph.add("DelayedNegativeAttentionMask", attention_maps=maps[0], word="mustache", batch_index=0,
                     first_step=CRITICAL_STEP, last_step=-1, width=0, height=0, threshold=0.5)
    graph.add("PreviewImage", title="Mask of \"mustache\"", images=graph.add("MaskToImage", mask=mask[0])[0])
    return graph


SWEEP = [0, 3, 6, 10, STEPS]


def critical_step_sweep(object_info) -> Graph:
    starts = ", ".join(["0", *map(str, SWEEP[1:-1]), "auto", "never"])
    graph = Graph(object_info, (
        f"Choosing the critical step: one KSampler Sweep (Delayed Negative) samples the same seed with the negative "
        f"starting at steps {starts} of {STEPS}, and returns the pictures as a batch and as one labelled grid. "
        "Start 0 is the stock KSampler; 'never' is the empty prompt throughout; 'auto' is the automatic start, "
        "which picks the step while sampling (its caption says which).\n\n"
        "Each picture equals a separate KSampler (Delayed Negative) run with that start; the steps the runs have "
        "in common are computed once.\n\n"
        "Too early and the negative reshapes the whole picture; too late and the mustache stays. Pick by eye, or "
        "read where \"mustache\" starts to act in the attention chart example. To try other steps, edit 'starts'."))
    checkpoint, positive, negative, latent = text_to_image_inputs(graph)
    swept = graph.add("DelayedNegativeSweep", model=checkpoint["MODEL"], seed=SEED, steps=STEPS, cfg=CFG,
                      sampler_name="euler", scheduler="normal", positive=positive[0], negative=negative[0],
                      latent_image=latent[0], denoise=1.0, starts=starts, timing_unit="step",
                      before_negative="empty prompt", vae=checkpoint["VAE"], columns=0, clip=checkpoint["CLIP"])
    save(graph, swept[2], "critical_step_sweep")  # outputs: latents, images, grid
    return graph


def custom_sampler(object_info) -> Graph:
    graph = Graph(object_info, (
        "SamplerCustomAdvanced with the Delayed Negative Guider, which works with any SAMPLER and SIGMAS: here "
        f"dpmpp_2m_sde with the Karras schedule. The negative starts at step {CRITICAL_STEP} of the {STEPS} steps "
        "the SIGMAS define.\n\n"
        "The switch is exact for every sampler, including the extra model calls of second-order and SDE "
        "samplers."))
    checkpoint, positive, negative, latent = text_to_image_inputs(graph)
    noise = graph.add("RandomNoise", noise_seed=SEED)
    guider = graph.add("DelayedNegativeGuider", model=checkpoint["MODEL"], positive=positive[0],
                       negative=negative[0], cfg=CFG, negative_start=float(CRITICAL_STEP), negative_end=-1.0,
                       timing_unit="step", before_negative="empty prompt", clip=checkpoint["CLIP"])
    sampler = graph.add("KSamplerSelect", sampler_name="dpmpp_2m_sde")
    sigmas = graph.add("BasicScheduler", model=checkpoint["MODEL"], scheduler="karras", steps=STEPS, denoise=1.0)
    sampled = graph.add("SamplerCustomAdvanced", noise=noise[0], guider=guider[0], sampler=sampler[0],
                        sigmas=sigmas[0], latent_image=latent[0])
    save(graph, decode(graph, checkpoint, sampled["output"])[0], "delayed_negative_guider_dpmpp_2m_sde_karras")
    return graph


SPLIT_STEP = 12


def two_pass(object_info) -> Graph:
    graph = Graph(object_info, (
        f"Two passes with KSampler Advanced (Delayed Negative): steps 0-{SPLIT_STEP}, then {SPLIT_STEP}-{STEPS} "
        f"of one {STEPS}-step schedule.\n\n"
        f"negative_start counts steps of the whole schedule, so both passes say {CRITICAL_STEP}: the first pass "
        f"switches at step {CRITICAL_STEP}, the second (from step {SPLIT_STEP}) uses the negative throughout. "
        f"With euler the result equals one {STEPS}-step pass.\n\n"
        "A refiner works the same way: give the second pass its own model and prompts "
        "(e.g. sd_xl_refiner_1.0.safetensors after sd_xl_base_1.0.safetensors)."))
    checkpoint, positive, negative, latent = text_to_image_inputs(graph)
    shared = dict(model=checkpoint["MODEL"], noise_seed=SEED, steps=STEPS, cfg=CFG, sampler_name="euler",
                  scheduler="normal", positive=positive[0], negative=negative[0],
                  negative_start=float(CRITICAL_STEP), negative_end=-1.0, timing_unit="step",
                  before_negative="empty prompt", clip=checkpoint["CLIP"])
    first = graph.add("DelayedNegativeKSamplerAdvanced", title=f"Pass 1: steps 0-{SPLIT_STEP}", add_noise="enable",
                      latent_image=latent[0], start_at_step=0, end_at_step=SPLIT_STEP,
                      return_with_leftover_noise="enable", **shared)
    second = graph.add("DelayedNegativeKSamplerAdvanced", title=f"Pass 2: steps {SPLIT_STEP}-{STEPS}",
                       add_noise="disable", latent_image=first[0], start_at_step=SPLIT_STEP, end_at_step=10000,
                       return_with_leftover_noise="disable", **shared)
    save(graph, decode(graph, checkpoint, second[0])[0], "two_pass_delayed_negative")
    return graph


def guidance_schedule(object_info) -> Graph:
    graph = Graph(object_info, (
        "Guidance over time, on the same step clock as the delayed negative. Guidance Schedule (Delayed Negative) "
        "feeds the sampler's guidance_schedule input:\n\n"
        "- cfg follows a cosine curve from 9 at the first step to 5 at the last;\n"
        f"- the negative ramps in over 3 steps from step {CRITICAL_STEP} (weights 1/4, 2/4, 3/4 of the negative "
        "against the empty prompt, then the negative itself), instead of switching at once;\n"
        "- guidance acts only on the steps after the first tenth (a guidance interval): the first steps run "
        "without guidance, which skips their unconditional evaluation.\n\n"
        "The attention chart draws each step's cfg as a thin grey line and shades the steps without guidance."))
    checkpoint, positive, negative, latent = text_to_image_inputs(graph, encoder=WORDS_ENCODER)
    plan = graph.add("DelayedNegativeGuidanceSchedule", cfg_curve="cosine", cfg_list="9, 8, 7, 6", cfg_first=9.0,
                     cfg_last=5.0, curve_first_step=0, curve_last_step=-1, ramp_steps=3, guidance_start=0.1,
                     guidance_end=-1.0, guidance_unit="fraction of steps")
    recorder = record_maps(graph, checkpoint, "man", "mustache")
    sampler = graph.add("DelayedNegativeKSampler", model=recorder["MODEL"], seed=SEED, steps=STEPS, cfg=CFG,
                        sampler_name="euler", scheduler="normal", positive=positive[0], negative=negative[0],
                        latent_image=latent[0], denoise=1.0, negative_start=float(CRITICAL_STEP), negative_end=-1.0,
                        timing_unit="step", before_negative="empty prompt", clip=checkpoint["CLIP"],
                        guidance_schedule=plan[0])
    save(graph, decode(graph, checkpoint, sampler[0])[0], "guidance_schedule")
    maps = collect_maps(graph, recorder, sampler)
    save_chart(graph, maps, "attention_chart")
    return graph


TOY_CHECKPOINT = "delayed-negative-toy-portraits.safetensors"  # built by `make setup`, listed by `make run`
TOY_PROMPT, TOY_NEGATIVE = "portrait photo of a man with glasses", "glasses"
TOY_SEED, TOY_BATCH, TOY_STEPS, TOY_CFG, TOY_CRITICAL_STEP = 0, 8, 12, 5.0, 3


def toy_glasses(object_info) -> Graph:
    graph = Graph(object_info, (
        "Runs as it is after `make run`: the toy portraits model this pack builds (64x64 portraits, trained here "
        "on drawn faces with optional glasses and hats; a toy, not Stable Diffusion).\n\n"
        f"\"{TOY_PROMPT}\", the same {TOY_BATCH} seeds three times, {TOY_STEPS} euler steps, cfg {TOY_CFG:g}. "
        "Rows of the comparison: no negative (the glasses it draws); the negative \"glasses\" from step 0 "
        f"(stock KSampler); from step {TOY_CRITICAL_STEP} (KSampler (Delayed Negative), the empty prompt before). "
        "Both negatives take the glasses off; the delayed one changes the rest of each face less.\n\n"
        "Chart and grid: the recorded attention of the delayed run. Solid lines: the positive branch; dashed: "
        f"the unconditional one, where \"glasses\" enters at step {TOY_CRITICAL_STEP}. On your own checkpoint, "
        "use 512x512 (or 1024 for SDXL), a batch of 1 to 4 and about 30 steps."))
    checkpoint = graph.add("CheckpointLoaderSimple", ckpt_name=TOY_CHECKPOINT)
    positive = graph.add(WORDS_ENCODER, title="Positive prompt", text=TOY_PROMPT, clip=checkpoint["CLIP"])
    negative = graph.add(WORDS_ENCODER, title="Negative prompt", text=TOY_NEGATIVE, clip=checkpoint["CLIP"])
    no_negative = graph.add("CLIPTextEncode", title="No negative (empty prompt)", text="", clip=checkpoint["CLIP"])
    latent = graph.add("EmptyLatentImage", width=64, height=64, batch_size=TOY_BATCH)
    shared = dict(seed=TOY_SEED, steps=TOY_STEPS, cfg=TOY_CFG, sampler_name="euler", scheduler="normal",
                  positive=positive[0], latent_image=latent[0], denoise=1.0)
    plain = graph.add("KSampler", title="KSampler: no negative", model=checkpoint["MODEL"],
                      negative=no_negative[0], **shared)
    stock = graph.add("KSampler", title="KSampler (stock): negative from step 0", model=checkpoint["MODEL"],
                      negative=negative[0], **shared)
    recorder = record_maps(graph, checkpoint, "man, glasses", "glasses")
    delayed = graph.add("DelayedNegativeKSampler",
                        title=f"KSampler (Delayed Negative): negative from step {TOY_CRITICAL_STEP}",
                        model=recorder["MODEL"], negative=negative[0], negative_start=float(TOY_CRITICAL_STEP),
                        negative_end=-1.0, timing_unit="step", before_negative="empty prompt",
                        clip=checkpoint["CLIP"], **shared)
    rows = [decode(graph, checkpoint, sampler[0]) for sampler in (plain, stock, delayed)]
    labels = ["none", "step 0", f"step {TOY_CRITICAL_STEP}"]
    comparison = graph.add("DelayedNegativeLabeledImageGrid", title="Rows: no negative, from step 0, from step "
                           f"{TOY_CRITICAL_STEP}", labels=", ".join(label + "," * (TOY_BATCH - 1) for label in labels),
                           columns=TOY_BATCH, image_1=rows[0][0], image_2=rows[1][0], image_3=rows[2][0])
    save(graph, comparison[0], "toy_glasses_none_stock_delayed")
    maps = collect_maps(graph, recorder, delayed)
    save_chart(graph, maps, "toy_attention_chart")
    grid = graph.add("DelayedNegativeAttentionGrid", attention_maps=maps[0], words="", steps="all", batch_index=0,
                     colormap="viridis", normalization="per word over steps", cell_size=64)
    save(graph, grid[0], "toy_attention_grid")
    return graph


def toy_viewer(object_info) -> Graph:
    graph = Graph(object_info, (
        "Runs as it is after `make run`, on the toy portraits model (64x64; a toy, not Stable Diffusion). "
        f"\"{TOY_PROMPT}\", the negative \"{TOY_NEGATIVE}\" from step {TOY_CRITICAL_STEP} of {TOY_STEPS}, "
        "four images.\n\n"
        "Run once, then explore in the Attention Viewer: the step slider (or play), the branch (+ positive, "
        "- unconditional, where the negative's words appear from its start), the word, the image; hover the "
        "picture for each word's share of the attention there. Exploring queues nothing."))
    checkpoint = graph.add("CheckpointLoaderSimple", ckpt_name=TOY_CHECKPOINT)
    positive = graph.add(WORDS_ENCODER, title="Positive prompt", text=TOY_PROMPT, clip=checkpoint["CLIP"])
    negative = graph.add(WORDS_ENCODER, title="Negative prompt", text=TOY_NEGATIVE, clip=checkpoint["CLIP"])
    latent = graph.add("EmptyLatentImage", width=64, height=64, batch_size=4)
    recorder = record_maps(graph, checkpoint, "", "")
    sampler = graph.add("DelayedNegativeKSampler", model=recorder["MODEL"], seed=TOY_SEED, steps=TOY_STEPS,
                        cfg=TOY_CFG, sampler_name="euler", scheduler="normal", positive=positive[0],
                        negative=negative[0], latent_image=latent[0], denoise=1.0,
                        negative_start=float(TOY_CRITICAL_STEP), negative_end=-1.0, timing_unit="step",
                        before_negative="empty prompt", clip=checkpoint["CLIP"])
    image = decode(graph, checkpoint, sampler[0])
    save(graph, image[0], "toy_attention_viewer")
    maps = collect_maps(graph, recorder, sampler)
    graph.add(VIEWER, attention_maps=maps[0], image=image[0])
    return graph


SD35 = "sd3.5_medium_incl_clips_t5xxlfp8scaled.safetensors"
SD35_STEPS, SD35_CFG, SD35_START = 28, 4.5, 8


def sd35_attention(object_info) -> Graph:
    graph = Graph(object_info, (
        f"SD3.5 (a DiT: MMDiT, joint attention over text and image tokens), with {SD35}, the Comfy-Org file "
        "that holds the model, its CLIP-L, CLIP-G and T5-XXL text encoders and its VAE.\n\n"
        f"KSampler (Delayed Negative): the empty prompt guides steps 0-{SD35_START - 1}, \"{NEGATIVE}\" from step "
        f"{SD35_START} of {SD35_STEPS} (dpmpp_2m, sgm_uniform, cfg {SD35_CFG:g}: SD3.5's own settings).\n\n"
        "Record Attention Maps reads each word's share of the joint attention: the image tokens' attention to "
        "the word's tokens in both CLIP and T5 parts of the prompt, over the whole joint softmax. Chart: solid "
        "lines the positive branch, dashed the unconditional one (the empty prompt's <end>, then the negative). "
        "Grid: where each word acts, per step."))
    checkpoint = graph.add("CheckpointLoaderSimple", ckpt_name=SD35)
    positive = graph.add(WORDS_ENCODER, title="Positive prompt", text=PROMPT, clip=checkpoint["CLIP"])
    negative = graph.add(WORDS_ENCODER, title="Negative prompt", text=NEGATIVE, clip=checkpoint["CLIP"])
    latent = graph.add("EmptySD3LatentImage", width=1024, height=1024, batch_size=1)
    recorder = record_maps(graph, checkpoint, "man", "mustache")
    sampler = graph.add("DelayedNegativeKSampler", model=recorder["MODEL"], seed=SEED, steps=SD35_STEPS,
                        cfg=SD35_CFG, sampler_name="dpmpp_2m", scheduler="sgm_uniform", positive=positive[0],
                        negative=negative[0], latent_image=latent[0], denoise=1.0,
                        negative_start=float(SD35_START), negative_end=-1.0, timing_unit="step",
                        before_negative="empty prompt", clip=checkpoint["CLIP"])
    save(graph, decode(graph, checkpoint, sampler[0])[0], "sd35_delayed_negative")
    maps = collect_maps(graph, recorder, sampler)
    save_chart(graph, maps, "attention_chart")
    grid = graph.add("DelayedNegativeAttentionGrid", attention_maps=maps[0], words="",
                     steps=f"0, 4, {SD35_START}, 12, 16, 20, {SD35_STEPS - 1}", batch_index=0, colormap="viridis",
                     normalization="per word over steps", cell_size=96)
    save(graph, grid[0], "attention_grid")
    return graph


def nag_settings(graph: Graph, scale=5.0, tau=1.5, alpha=0.5) -> Node:
    """NAG Settings, by default at ComfyUI's NAGuidance defaults."""
    return graph.add("DelayedNegativeNAG", nag_scale=scale, nag_tau=tau, nag_alpha=alpha)


def nag_ksampler(graph, model: Output, positive: Output, negative: Output, latent: Output, nag: Node, seed: int,
                 steps: int, scheduler: str, negative_start: int, title=None) -> Node:
    """KSampler (Delayed Negative) at cfg 1 with `nag` connected: the positive alone before
    negative_start, the negative through NAG from it on (no empty prompt, so no clip)."""
    return graph.add("DelayedNegativeKSampler", title=title, model=model, seed=seed, steps=steps, cfg=1.0,
                     sampler_name="euler", scheduler=scheduler, positive=positive, negative=negative,
                     latent_image=latent, denoise=1.0, negative_start=float(negative_start), negative_end=-1.0,
                     timing_unit="step", before_negative="empty prompt", nag=nag[0])


TOY_NAG_SCALE, TOY_NAG_TAU = 7.0, 5.0


def toy_nag(object_info) -> Graph:
    graph = Graph(object_info, (
        "Runs as it is after `make run`, on the toy portraits model (64x64; a toy, not Stable Diffusion). At cfg 1 "
        "(Flux dev, Lightning and other distilled models run there) classifier-free guidance has no negative "
        "branch, so a negative prompt does nothing; NAG Settings makes it act inside the model's attention.\n\n"
        f"\"{TOY_PROMPT}\", the same {TOY_BATCH} seeds three times, {TOY_STEPS} euler steps, cfg 1. Rows: the "
        "stock KSampler with the negative \"glasses\" (ignored at cfg 1: the positive alone); KSampler (Delayed "
        f"Negative) with NAG from step 0; with NAG from step {TOY_CRITICAL_STEP} (the positive alone before it). "
        "Both take the glasses off; the delayed one changes the rest of each face less.\n\n"
        f"nag_scale {TOY_NAG_SCALE:g} and nag_tau {TOY_NAG_TAU:g}: at the usual tau (1.5-2.5) the toy model's glasses "
        "only fade. On your model keep cfg at 1, start from the defaults (5, 1.5, 0.5) and raise nag_scale, then "
        "nag_tau, until the negative acts."))
    checkpoint = graph.add("CheckpointLoaderSimple", ckpt_name=TOY_CHECKPOINT)
    positive = graph.add("CLIPTextEncode", title="Positive prompt", text=TOY_PROMPT, clip=checkpoint["CLIP"])
    negative = graph.add("CLIPTextEncode", title="Negative prompt", text=TOY_NEGATIVE, clip=checkpoint["CLIP"])
    latent = graph.add("EmptyLatentImage", width=64, height=64, batch_size=TOY_BATCH)
    stock = graph.add("KSampler", title="KSampler (stock) at cfg 1: the negative does nothing",
                      model=checkpoint["MODEL"], seed=TOY_SEED, steps=TOY_STEPS, cfg=1.0, sampler_name="euler",
                      scheduler="normal", positive=positive[0], negative=negative[0], latent_image=latent[0],
                      denoise=1.0)
    nag = nag_settings(graph, scale=TOY_NAG_SCALE, tau=TOY_NAG_TAU)
    samplers = [stock] + [
        nag_ksampler(graph, checkpoint["MODEL"], positive[0], negative[0], latent[0], nag, TOY_SEED, TOY_STEPS,
                     "normal", start, title=f"KSampler (Delayed Negative) at cfg 1: NAG from step {start}")
        for start in (0, TOY_CRITICAL_STEP)]
    rows = [decode(graph, checkpoint, sampler[0]) for sampler in samplers]
    labels = ["stock", "NAG 0", f"NAG {TOY_CRITICAL_STEP}"]
    comparison = graph.add("DelayedNegativeLabeledImageGrid", title="Rows: stock, NAG from step 0, from step "
                           f"{TOY_CRITICAL_STEP}", labels=", ".join(label + "," * (TOY_BATCH - 1) for label in labels),
                           columns=TOY_BATCH, image_1=rows[0][0], image_2=rows[1][0], image_3=rows[2][0])
    save(graph, comparison[0], "toy_nag_cfg1_stock_nag")
    return graph


TOY_PICTURE = "toy_portrait_glasses.png"  # committed in example_workflows/; `make run` puts it in input/
EXPLAIN_STEPS, EXPLAIN_GLASSES_STEPS = 10, (4, 6)  # where the toy sees the drawn glasses (tests/test_explain_image.py)


def toy_explain_image(object_info) -> Graph:
    first, last = EXPLAIN_GLASSES_STEPS
    graph = Graph(object_info, (
        "Runs as it is after `make run`, on the toy portraits model (64x64; a toy, not Stable Diffusion): which "
        f"words the model sees where in a picture no sampler here made. Load Image reads {TOY_PICTURE} (a drawn "
        "portrait with glasses, in example_workflows/; `make run` puts it in ComfyUI's input folder).\n\n"
        "Explain Image (Attention Maps) encodes it, noises it to the start of each step of a "
        f"{EXPLAIN_STEPS}-step schedule (the seed's noise, the same at every step) and evaluates the model once "
        f"there with \"{TOY_PROMPT}\" and the negative \"{TOY_NEGATIVE}\": step 0 the noisiest, step "
        f"{EXPLAIN_STEPS - 1} the picture almost as it is. Record Attention Maps chooses the words; no sampler.\n\n"
        "Grid: the positive prompt's words, a map per step. Under the most noise \"glasses\" is spread over the "
        f"picture; from about step {first} it sits on the drawn glasses. Overlay: \"glasses\" over the picture, "
        f"steps {first}-{last}. Viewer: explore the steps (with their sigmas), the words and both branches (- "
        "the unconditional one: the negative's \"glasses\").\n\n"
        "Your own picture: upload it in Load Image, type what it shows, and use your checkpoint (its VAE too). "
        "The step where a word settles on its object is a candidate critical step for a delayed negative "
        "naming it."))
    checkpoint = graph.add("CheckpointLoaderSimple", ckpt_name=TOY_CHECKPOINT)
    picture = graph.add("LoadImage", image=TOY_PICTURE)
    positive = graph.add(WORDS_ENCODER, title="Positive prompt", text=TOY_PROMPT, clip=checkpoint["CLIP"])
    negative = graph.add(WORDS_ENCODER, title="Negative prompt", text=TOY_NEGATIVE, clip=checkpoint["CLIP"])
    recorder = record_maps(graph, checkpoint, "man, glasses", TOY_NEGATIVE)
    maps = graph.add("DelayedNegativeExplainImage", model=recorder["MODEL"], recording=recorder[1],
                     vae=checkpoint["VAE"], image=picture[0], positive=positive[0], negative=negative[0],
                     steps=EXPLAIN_STEPS, scheduler="normal", explain_steps="all", seed=TOY_SEED, cfg=TOY_CFG)
    # The positive words (a word names its first track); empty would add the empty prompt's <end>, an empty
    # row here: the negative is in the unconditional branch at every explained step.
    grid = graph.add("DelayedNegativeAttentionGrid", attention_maps=maps[0], words="man, glasses", steps="all",
                     batch_index=0, colormap="viridis", normalization="per word over steps", cell_size=64)
    save(graph, grid[0], "explain_image_grid")
    overlay = graph.add("DelayedNegativeAttentionOverlay", attention_maps=maps[0], image=picture[0],
                        words="glasses", first_step=first, last_step=last, colormap="magma", opacity=0.6)
    save(graph, overlay[0], "explain_image_overlay")
    graph.add(VIEWER, attention_maps=maps[0], image=picture[0])
    return graph


FLUX_UNET, FLUX_CLIP_L, FLUX_T5, FLUX_VAE = ("flux1-dev.safetensors", "clip_l.safetensors", "t5xxl_fp16.safetensors",
                                             "ae.safetensors")
FLUX_STEPS, FLUX_GUIDANCE, FLUX_START = 20, 3.5, 5


def flux_dev_nag(object_info) -> Graph:
    graph = Graph(object_info, (
        "Flux dev at cfg 1 with a delayed negative through NAG. Files as in ComfyUI's Flux dev example: "
        f"models/diffusion_models/{FLUX_UNET} (weight_dtype fp8_e4m3fn halves its memory), models/text_encoders/"
        f"{FLUX_CLIP_L} and {FLUX_T5} (or t5xxl_fp8_e4m3fn.safetensors), models/vae/{FLUX_VAE}.\n\n"
        f"Flux dev is guidance-distilled: FluxGuidance {FLUX_GUIDANCE:g} on the positive does the guiding, the "
        "sampler runs at cfg 1 and a negative prompt would do nothing. With NAG Settings connected, KSampler "
        f"(Delayed Negative) samples the positive alone for steps 0-{FLUX_START - 1} and from step {FLUX_START} of "
        f"{FLUX_STEPS} guides the image tokens of the joint attention away from \"{NEGATIVE}\" (those steps cost "
        "twice as much). Raise nag_scale for a stronger negative."))
    model = graph.add("UNETLoader", unet_name=FLUX_UNET, weight_dtype="default")
    clip = graph.add("DualCLIPLoader", clip_name1=FLUX_CLIP_L, clip_name2=FLUX_T5, type="flux")
    vae = graph.add("VAELoader", vae_name=FLUX_VAE)
    positive = graph.add("CLIPTextEncode", title="Positive prompt", text=PROMPT, clip=clip[0])
    negative = graph.add("CLIPTextEncode", title="Negative prompt", text=NEGATIVE, clip=clip[0])
    guided = graph.add("FluxGuidance", conditioning=positive[0], guidance=FLUX_GUIDANCE)
    latent = graph.add("EmptySD3LatentImage", width=1024, height=1024, batch_size=1)
    sampler = nag_ksampler(graph, model[0], guided[0], negative[0], latent[0], nag_settings(graph), SEED,
                           FLUX_STEPS, "simple", FLUX_START)
    save(graph, graph.add("VAEDecode", samples=sampler[0], vae=vae[0])[0], "flux_dev_nag")
    return graph


SDXL = "sd_xl_base_1.0.safetensors"
LIGHTNING_LORA, LIGHTNING_STEPS, LIGHTNING_START = "sdxl_lightning_4step_lora.safetensors", 4, 1


def sdxl_lightning_nag(object_info) -> Graph:
    graph = Graph(object_info, (
        f"SDXL Lightning at cfg 1 with a delayed negative through NAG: {SDXL} (models/checkpoints) with ByteDance's "
        f"{LIGHTNING_LORA} (models/loras), {LIGHTNING_STEPS} steps, euler and sgm_uniform as Lightning wants.\n\n"
        "Lightning samples at cfg 1, where a negative prompt does nothing (and cfg above 1 burns the image). With "
        f"NAG Settings connected, KSampler (Delayed Negative) samples the positive alone for step 0 and from step "
        f"{LIGHTNING_START} of {LIGHTNING_STEPS} guides every cross-attention away from \"{NEGATIVE}\". For the "
        "8-step LoRA set steps 8 and negative_start 2."))
    checkpoint = graph.add("CheckpointLoaderSimple", ckpt_name=SDXL)
    lightning = graph.add("LoraLoaderModelOnly", model=checkpoint["MODEL"], lora_name=LIGHTNING_LORA,
                          strength_model=1.0)
    positive = graph.add("CLIPTextEncode", title="Positive prompt", text=PROMPT, clip=checkpoint["CLIP"])
    negative = graph.add("CLIPTextEncode", title="Negative prompt", text=NEGATIVE, clip=checkpoint["CLIP"])
    latent = graph.add("EmptyLatentImage", width=1024, height=1024, batch_size=1)
    sampler = nag_ksampler(graph, lightning[0], positive[0], negative[0], latent[0], nag_settings(graph), SEED,
                           LIGHTNING_STEPS, "sgm_uniform", LIGHTNING_START)
    save(graph, decode(graph, checkpoint, sampler[0])[0], "sdxl_lightning_nag")
    return graph


SDXL_FINE_TUNE = "RealVisXL_V5.0_fp16.safetensors"
SDXL_PROMPT = "portrait photo of a man in a wool coat, natural window light, 85mm"
QUALITY_NEGATIVE = ("lowres, bad anatomy, bad hands, text, error, missing fingers, extra digit, fewer digits, cropped, "
                    "worst quality, low quality, jpeg artifacts, signature, watermark, blurry, deformed")
SDXL_STEPS, SDXL_CFG, SDXL_START = 30, 6.0, 8


def sdxl_quality_negative(object_info) -> Graph:
    graph = Graph(object_info, (
        f"An SDXL fine-tune with the long quality negative many users keep in every workflow: {SDXL_FINE_TUNE} "
        "(SG161222/RealVisXL_V5.0, models/checkpoints; any SDXL checkpoint works), 1024x1024, "
        f"{SDXL_STEPS} steps of dpmpp_2m with karras sigmas, cfg {SDXL_CFG:g}.\n\n"
        f"KSampler (Delayed Negative): the empty prompt guides steps 0-{SDXL_START - 1}, while the composition "
        f"forms; from step {SDXL_START} of {SDXL_STEPS} the quality negative cleans up the details. From step 0 "
        "the same list also pushes the layout, the pose and the light away from whatever its words resemble. "
        "Compare with negative_start 0 (the stock KSampler) on the same seed."))
    checkpoint = graph.add("CheckpointLoaderSimple", ckpt_name=SDXL_FINE_TUNE)
    positive = graph.add("CLIPTextEncode", title="Positive prompt", text=SDXL_PROMPT, clip=checkpoint["CLIP"])
    negative = graph.add("CLIPTextEncode", title="Negative prompt (quality)", text=QUALITY_NEGATIVE,
                         clip=checkpoint["CLIP"])
    latent = graph.add("EmptyLatentImage", width=1024, height=1024, batch_size=1)
    sampler = graph.add("DelayedNegativeKSampler", model=checkpoint["MODEL"], seed=SEED, steps=SDXL_STEPS,
                        cfg=SDXL_CFG, sampler_name="dpmpp_2m", scheduler="karras", positive=positive[0],
                        negative=negative[0], latent_image=latent[0], denoise=1.0,
                        negative_start=float(SDXL_START), negative_end=-1.0, timing_unit="step",
                        before_negative="empty prompt", clip=checkpoint["CLIP"])
    save(graph, decode(graph, checkpoint, sampler[0])[0], "sdxl_quality_negative_delayed")
    return graph


CHROMA_UNET, CHROMA_T5 = "Chroma1-HD.safetensors", "t5xxl_fp8_e4m3fn_scaled.safetensors"
CHROMA_STEPS, CHROMA_CFG, CHROMA_START = 26, 4.0, 6


def chroma_delayed_negative(object_info) -> Graph:
    graph = Graph(object_info, (
        "Chroma (Flux's architecture without its guidance distillation, so it samples with real cfg and a negative "
        "prompt acts), with the files of ComfyUI's own Chroma template: models/diffusion_models/"
        f"{CHROMA_UNET} (lodestones/Chroma1-HD; an fp8 copy such as Chroma1-HD-fp8mixed.safetensors works the "
        f"same), models/text_encoders/{CHROMA_T5} (T5-XXL alone, type chroma), models/vae/{FLUX_VAE}. T5 Tokenizer "
        "Options and Flow Shift 1 as in that template.\n\n"
        f"KSampler (Delayed Negative): the empty prompt guides steps 0-{CHROMA_START - 1}, \"{NEGATIVE}\" from "
        f"step {CHROMA_START} of {CHROMA_STEPS} (euler, beta, cfg {CHROMA_CFG:g}).\n\n"
        "Record Attention Maps reads each word's share of the joint attention (image tokens against the T5 "
        "tokens), the words read from the conditioning. Chart: solid lines the positive branch, dashed the "
        f"unconditional one, where \"{NEGATIVE}\" enters at step {CHROMA_START}."))
    model = graph.add("UNETLoader", unet_name=CHROMA_UNET, weight_dtype="default")
    shifted = graph.add("ModelSamplingAuraFlow", title="Flow Shift", model=model[0], shift=1.0)
    t5 = graph.add("CLIPLoader", clip_name=CHROMA_T5, type="chroma", device="default")
    clip = graph.add("T5TokenizerOptions", clip=t5[0], min_padding=1, min_length=0)
    vae = graph.add("VAELoader", vae_name=FLUX_VAE)
    positive = graph.add(WORDS_ENCODER, title="Positive prompt", text=PROMPT, clip=clip[0])
    negative = graph.add(WORDS_ENCODER, title="Negative prompt", text=NEGATIVE, clip=clip[0])
    latent = graph.add("EmptySD3LatentImage", width=1024, height=1024, batch_size=1)
    recorder = graph.add("DelayedNegativeRecordAttentionMaps", model=shifted[0], clip=clip[0], positive_prompt="",
                         negative_prompt="", positive_words="man", negative_words=NEGATIVE, layers="all")
    sampler = graph.add("DelayedNegativeKSampler", model=recorder["MODEL"], seed=SEED, steps=CHROMA_STEPS,
                        cfg=CHROMA_CFG, sampler_name="euler", scheduler="beta", positive=positive[0],
                        negative=negative[0], latent_image=latent[0], denoise=1.0,
                        negative_start=float(CHROMA_START), negative_end=-1.0, timing_unit="step",
                        before_negative="empty prompt", clip=clip[0])
    save(graph, graph.add("VAEDecode", samples=sampler[0], vae=vae[0])[0], "chroma_delayed_negative")
    save_chart(graph, collect_maps(graph, recorder, sampler), "attention_chart")
    return graph


QWEN_UNET, QWEN_TEXT_ENCODER, QWEN_VAE = ("qwen_image_fp8_e4m3fn.safetensors", "qwen_2.5_vl_7b_fp8_scaled.safetensors",
                                          "qwen_image_vae.safetensors")
QWEN_PROMPT = "portrait photo of a man holding a cardboard sign that says \"DELAYED NEGATIVE\" in black marker"
QWEN_NEGATIVE = "low quality, bad anatomy, extra digits, missing digits, extra limbs, missing limbs, blurry text"
QWEN_STEPS, QWEN_CFG, QWEN_SHIFT, QWEN_START = 20, 4.0, 3.1, 5


def qwen_image_delayed_negative(object_info) -> Graph:
    graph = Graph(object_info, (
        "Qwen-Image with the files of ComfyUI's own Qwen-Image template (Comfy-Org/Qwen-Image_ComfyUI): "
        f"models/diffusion_models/{QWEN_UNET}, models/text_encoders/{QWEN_TEXT_ENCODER} (Qwen2.5-VL 7B, type "
        f"qwen_image), models/vae/{QWEN_VAE}; ModelSamplingAuraFlow shift {QWEN_SHIFT:g}, 1328x1328 (its native "
        f"size), {QWEN_STEPS} euler steps, simple schedule, cfg {QWEN_CFG:g}.\n\n"
        f"KSampler (Delayed Negative): the empty prompt guides steps 0-{QWEN_START - 1}, while the layout and the "
        f"sign's lettering form; the quality negative from step {QWEN_START} of {QWEN_STEPS}."))
    model = graph.add("UNETLoader", unet_name=QWEN_UNET, weight_dtype="default")
    shifted = graph.add("ModelSamplingAuraFlow", model=model[0], shift=QWEN_SHIFT)
    clip = graph.add("CLIPLoader", clip_name=QWEN_TEXT_ENCODER, type="qwen_image", device="default")
    vae = graph.add("VAELoader", vae_name=QWEN_VAE)
    positive = graph.add("CLIPTextEncode", title="Positive prompt", text=QWEN_PROMPT, clip=clip[0])
    negative = graph.add("CLIPTextEncode", title="Negative prompt", text=QWEN_NEGATIVE, clip=clip[0])
    latent = graph.add("EmptySD3LatentImage", width=1328, height=1328, batch_size=1)
    sampler = graph.add("DelayedNegativeKSampler", model=shifted[0], seed=SEED, steps=QWEN_STEPS, cfg=QWEN_CFG,
                        sampler_name="euler", scheduler="simple", positive=positive[0], negative=negative[0],
                        latent_image=latent[0], denoise=1.0, negative_start=float(QWEN_START), negative_end=-1.0,
                        timing_unit="step", before_negative="empty prompt", clip=clip[0])
    save(graph, graph.add("VAEDecode", samples=sampler[0], vae=vae[0])[0], "qwen_image_delayed_negative")
    return graph


WAN_HIGH_NOISE, WAN_LOW_NOISE = ("wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors",
                                 "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors")
WAN_TEXT_ENCODER, WAN_VAE = "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "wan_2.1_vae.safetensors"
WAN_PROMPT = ("a man in a wool coat walks towards the camera along a rainy street at night, neon signs reflected "
              "on the wet pavement, handheld camera")
# Wan's own default negative (its repository's and ComfyUI's template's), in Chinese as Wan was trained.
WAN_NEGATIVE = ("色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，"
                "残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，"
                "三条腿，背景人很多，倒着走")
WAN_STEPS, WAN_SPLIT, WAN_CFG, WAN_SHIFT, WAN_START, WAN_FPS = 20, 10, 3.5, 8.0, 4, 16


def wan22_two_experts(object_info) -> Graph:
    graph = Graph(object_info, (
        "Wan 2.2 14B text to video with its two experts, as in ComfyUI's own template: models/diffusion_models/"
        f"{WAN_HIGH_NOISE} for steps 0-{WAN_SPLIT} (returned with leftover noise), {WAN_LOW_NOISE} for steps "
        f"{WAN_SPLIT}-{WAN_STEPS}; each through ModelSamplingSD3 shift {WAN_SHIFT:g}; models/text_encoders/"
        f"{WAN_TEXT_ENCODER} (type wan), models/vae/{WAN_VAE}. 640x640, 81 frames (5 s at {WAN_FPS} fps), euler, "
        f"simple, cfg {WAN_CFG:g}. The negative is Wan's own default one, in Chinese (over-saturated, "
        "overexposed, static, blurry details, subtitles, worst quality, extra fingers, deformed, still picture, "
        "cluttered background, walking backwards, ...).\n\n"
        "Two passes of KSampler Advanced (Delayed Negative), one per expert: negative_start counts steps of the "
        f"whole {WAN_STEPS}-step schedule, so both say {WAN_START}. The high-noise pass guides steps "
        f"0-{WAN_START - 1} with the empty prompt, while the scene and its motion form, and uses the negative from "
        f"step {WAN_START}; the low-noise pass (from step {WAN_SPLIT}) uses it throughout.\n\n"
        "Save Animated WEBP keeps the frames; for an mp4, use Create Video and Save Video instead."))
    high = graph.add("UNETLoader", title="High-noise expert", unet_name=WAN_HIGH_NOISE, weight_dtype="default")
    low = graph.add("UNETLoader", title="Low-noise expert", unet_name=WAN_LOW_NOISE, weight_dtype="default")
    high_shifted = graph.add("ModelSamplingSD3", model=high[0], shift=WAN_SHIFT)
    low_shifted = graph.add("ModelSamplingSD3", model=low[0], shift=WAN_SHIFT)
    clip = graph.add("CLIPLoader", clip_name=WAN_TEXT_ENCODER, type="wan", device="default")
    vae = graph.add("VAELoader", vae_name=WAN_VAE)
    positive = graph.add("CLIPTextEncode", title="Positive prompt", text=WAN_PROMPT, clip=clip[0])
    negative = graph.add("CLIPTextEncode", title="Negative prompt (Wan's default)", text=WAN_NEGATIVE, clip=clip[0])
    latent = graph.add("EmptyHunyuanLatentVideo", width=640, height=640, length=81, batch_size=1)
    shared = dict(noise_seed=SEED, steps=WAN_STEPS, cfg=WAN_CFG, sampler_name="euler", scheduler="simple",
                  positive=positive[0], negative=negative[0], negative_start=float(WAN_START), negative_end=-1.0,
                  timing_unit="step", before_negative="empty prompt", clip=clip[0])
    first = graph.add("DelayedNegativeKSamplerAdvanced", title=f"High-noise expert: steps 0-{WAN_SPLIT}",
                      model=high_shifted[0], add_noise="enable", latent_image=latent[0], start_at_step=0,
                      end_at_step=WAN_SPLIT, return_with_leftover_noise="enable", **shared)
    second = graph.add("DelayedNegativeKSamplerAdvanced", title=f"Low-noise expert: steps {WAN_SPLIT}-{WAN_STEPS}",
                       model=low_shifted[0], add_noise="disable", latent_image=first[0], start_at_step=WAN_SPLIT,
                       end_at_step=10000, return_with_leftover_noise="disable", **shared)
    frames = graph.add("VAEDecode", samples=second[0], vae=vae[0])
    graph.add("SaveAnimatedWEBP", images=frames[0], filename_prefix="wan22_t2v_delayed_negative", fps=float(WAN_FPS),
              lossless=False, quality=90, method="default")
    return graph


EXAMPLES = {
    "01_paper_mustache_delayed_vs_stock": paper_example,
    "02_attention_maps_chart_grid_overlay_mask": attention_maps,
    "03_critical_step_sweep_grid": critical_step_sweep,
    "04_custom_sampler_guider_dpmpp_2m_sde_karras": custom_sampler,
    "05_two_pass_ksampler_advanced": two_pass,
    "06_guidance_schedule_cosine_cfg_ramp_interval": guidance_schedule,
    "07_toy_model_glasses_removed_attention": toy_glasses,
    "08_toy_model_attention_viewer": toy_viewer,
    "09_sd35_delayed_negative_attention_maps": sd35_attention,
    "10_toy_model_nag_cfg1_glasses_removed": toy_nag,
    "11_flux_dev_cfg1_nag_delayed_negative": flux_dev_nag,
    "12_sdxl_lightning_cfg1_nag_delayed_negative": sdxl_lightning_nag,
    "13_toy_model_explain_image": toy_explain_image,
    "14_sdxl_finetune_long_quality_negative_delayed": sdxl_quality_negative,
    "15_chroma_delayed_negative": chroma_delayed_negative,
    "16_qwen_image_delayed_negative": qwen_image_delayed_negative,
    "17_wan22_t2v_two_experts_delayed_negative": wan22_two_experts,
}


def load_object_info(server: str | None) -> dict:
    if server:
        with urllib.request.urlopen(server.rstrip("/") + "/object_info", timeout=60) as response:
            return json.loads(response.read())
    if not SAVED_OBJECT_INFO.is_file():
        sys.exit(f"{SAVED_OBJECT_INFO} is missing: run with --server URL --save-object-info once.")
    return json.loads(SAVED_OBJECT_INFO.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", help="URL of a running ComfyUI with this pack, to read /object_info from")
    parser.add_argument("--save-object-info", action="store_true",
                        help=f"keep the node definitions the examples use in {SAVED_OBJECT_INFO.name}")
    parser.add_argument("--output", type=Path, default=OUTPUT_FOLDER)
    arguments = parser.parse_args()

    object_info = load_object_info(arguments.server)
    arguments.output.mkdir(parents=True, exist_ok=True)
    used = set()
    for name, build in EXAMPLES.items():
        workflow = build(object_info).to_json()
        used |= {node["type"] for node in workflow["nodes"]}
        path = arguments.output / f"{name}.json"
        path.write_text(json.dumps(workflow, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {path.relative_to(PACK_ROOT) if path.is_relative_to(PACK_ROOT) else path}")
    if arguments.save_object_info:
        kept = {node_type: object_info[node_type] for node_type in sorted(used) if node_type in object_info}
        SAVED_OBJECT_INFO.write_text(json.dumps(kept, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {SAVED_OBJECT_INFO.relative_to(PACK_ROOT)}")


if __name__ == "__main__":
    main()
