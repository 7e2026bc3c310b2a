"""The Attention Viewer's widget in a real browser (headless chromium, the server's own frontend).

A small run on the toy portraits model (64x64, a batch of 2, 12 euler steps, the negative "glasses"
from step 3) ends in the viewer, queued with the Run button. Then, with no prompt queued: the
widget shows the run; the heat-map canvas holds, pixel for pixel, the chosen word's map of the
chosen step and image as the node returned it (decoded here from /history, normalised and
coloured by the pack's own render code, within quantisation); moving the step slider, choosing
another word, branch or image changes it to that map; hovering a pixel reads the word's share and
ranks the words there; words are shown as text, never as markup; a step a cache skipped (the same
run's payload as the node writes it then) is said not evaluated and shaded in the chart; no
console error. All of it in the classic canvas and in the Nodes 2.0 renderer (the frontend's Vue
nodes). Screenshots:
.artifacts/browser/attention_viewer*.png.
"""

import base64
import time

import numpy as np
import pytest

import browser as ui
from delayed_negative.nodes.attention_viewer import UI_KEY
from delayed_negative.render import normalize_maps
from delayed_negative.render.viewer_payload import decode_maps, quantize
from devtools.examples.example_workflows import Graph
from test_browser import SCREENSHOTS, TOY_CHECKPOINT_NAME, chromium  # noqa: F401 (a fixture)

PROMPT, NEGATIVE = "portrait photo of a man with glasses", "glasses"
STEPS, NEGATIVE_START, BATCH = 12, 3, 2  # the README pictures' run (devtools/examples/readme_pictures.py), 2 images
RUN_TIMEOUT = 300.0
COLOUR_TOLERANCE = 6  # a colormap entry or two apart: the byte quantisation and float rounding
NOT_EVALUATED_STEP = 7  # the step a cache skips in the not-evaluated test (after the negative's start)
# web/viewer/panel.js: the chart's size and margins, and the shade of a step not evaluated,
# rgba(200, 150, 110, 0.18) as a canvas reads it back (alpha 0.18 of 255).
CHART_WIDTH, CHART_MARGIN_LEFT, CHART_MARGIN_RIGHT = 380, 34, 8
NOT_EVALUATED_SHADE = (200, 150, 110, 46)
VIEWER = ".dn-attention-viewer"


def viewer_workflow(object_info: dict) -> dict:
    graph = Graph(object_info, "Attention Viewer test: the toy portraits model, negative from step 3.")
    checkpoint = graph.add("CheckpointLoaderSimple", ckpt_name=TOY_CHECKPOINT_NAME)
    positive = graph.add("CLIPTextEncode", text=PROMPT, clip=checkpoint["CLIP"])
    negative = graph.add("CLIPTextEncode", text=NEGATIVE, clip=checkpoint["CLIP"])
    latent = graph.add("EmptyLatentImage", width=64, height=64, batch_size=BATCH)
    recorder = graph.add("DelayedNegativeRecordAttentionMaps", model=checkpoint["MODEL"], clip=checkpoint["CLIP"],
                         positive_prompt=PROMPT, negative_prompt=NEGATIVE, positive_words="man, glasses",
                         negative_words="glasses", layers="all")
    sampler = graph.add("DelayedNegativeKSampler", model=recorder["MODEL"], seed=0, steps=STEPS, cfg=5.0,
                        sampler_name="euler", scheduler="normal", positive=positive[0], negative=negative[0],
                        latent_image=latent[0], denoise=1.0, negative_start=float(NEGATIVE_START),
                        negative_end=-1.0, timing_unit="step", before_negative="empty prompt",
                        clip=checkpoint["CLIP"])
    image = graph.add("VAEDecode", samples=sampler[0], vae=checkpoint["VAE"])
    maps = graph.add("DelayedNegativeCollectAttentionMaps", recording=recorder[1], samples=sampler[0])
    viewer = graph.add("DelayedNegativeAttentionViewer", attention_maps=maps[0], image=image[0])
    workflow = graph.to_json()
    for node in workflow["nodes"]:
        if node["id"] == viewer.id:
            node["size"] = [460, 820]
    return workflow, str(viewer.id)


@pytest.fixture(scope="module")
def object_info(server):
    return server.get("/object_info")


RENDERERS = {"classic canvas": False, "nodes 2.0": True}  # the frontend's Comfy.VueNodes.Enabled


@pytest.fixture(scope="module", params=list(RENDERERS))
def page(chromium, server, object_info, request):  # noqa: F811
    """One page per renderer: the run is made once, then explored by every test."""
    context = chromium.new_context(viewport={**ui.VIEWPORT, "height": 1200})  # the whole viewer at 100%
    page = context.new_page()
    page.set_default_timeout(90_000)
    page.console = ui.Console(origin=server.url)
    page.console.listen(page)
    page.renderer = request.param
    ui.open_frontend(page, server.url)
    before = page.evaluate("() => window.app.extensionManager.setting.get('Comfy.VueNodes.Enabled')")
    set_vue_nodes(page, RENDERERS[request.param])
    yield page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        page.screenshot(path=SCREENSHOTS / f"attention_viewer_page_{file_name(page)}.png")
        set_vue_nodes(page, before)  # a setting the server keeps: leave it as the other browser tests found it
    finally:
        context.close()


def set_vue_nodes(page, enabled: bool):
    page.evaluate("async (on) => await window.app.extensionManager.setting.set('Comfy.VueNodes.Enabled', on)",
                  enabled)


def file_name(page) -> str:
    return page.renderer.replace(" ", "_").replace(".", "")


def viewer_state(page) -> dict:
    return page.evaluate(f"""() => {{
        const root = document.querySelector('{VIEWER}');
        const body = root?.querySelector('.dn-body');
        return {{present: Boolean(root), vue: Boolean(root?.closest('[data-node-id]')),
                 shown: Boolean(body) && getComputedStyle(body).display !== 'none',
                 visible: Boolean(root) && root.getBoundingClientRect().width > 0}};
    }}""")


@pytest.fixture(scope="module")
def run(page, server, object_info):
    """Load the workflow, queue it with the Run button, wait for the widget to show the run; the payload
    the node returned, from the server's history."""
    workflow, viewer_id = viewer_workflow(object_info)
    ui.load_workflow(page, workflow)
    assert not ui.open_dialogs(page), ui.open_dialogs(page)
    assert viewer_state(page)["present"], "the viewer's DOM widget is not on the page before the run"
    assert viewer_state(page)["vue"] == RENDERERS[page.renderer], f"not drawn by the {page.renderer} renderer"
    assert not viewer_state(page)["shown"]
    history_before = set(server.get("/history"))
    ui.fit_view(page)
    ui.queue_from_ui(page)
    deadline = time.monotonic() + RUN_TIMEOUT
    while not viewer_state(page)["shown"]:
        failed = {key: text for key, text in ui.open_dialogs(page).items() if key in ui.ERROR_DIALOGS}
        assert not failed, f"{failed}\nserver log:\n{server.log()[-3000:]}"
        assert time.monotonic() < deadline, f"the viewer shows nothing after {RUN_TIMEOUT} s:\n{server.log()[-3000:]}"
        page.wait_for_timeout(500)
    entries = {key: value for key, value in server.get("/history").items() if key not in history_before}
    assert len(entries) == 1
    [entry] = entries.values()
    [payload] = entry["outputs"][viewer_id][UI_KEY]
    page.wait_for_function(f"() => document.querySelector('{VIEWER} .dn-image')?.naturalWidth > 0")
    focus_viewer(page)
    return payload


def focus_viewer(page):
    """Zoom to 100% on the viewer node (the run was queued with the whole workflow in view)."""
    page.evaluate("""() => {
        const node = window.app.graph.nodes.find(n => n.type === 'DelayedNegativeAttentionViewer');
        window.app.canvas.ds.scale = 1;
        window.app.canvas.ds.offset = [-node.pos[0] + 500, -node.pos[1] + 200];
        window.app.canvas.setDirty(true, true);
    }""")
    page.wait_for_timeout(500)


def heat_pixels(page) -> np.ndarray:
    """The heat-map canvas as the viewer drew it: uint8 [height, width, 4]."""
    return canvas_pixels(page, ".dn-heat")


def canvas_pixels(page, selector: str) -> np.ndarray:
    """One of the viewer's canvases as drawn: uint8 [height, width, 4], in canvas (device) pixels."""
    width, height, data = page.evaluate(f"""() => {{
        const canvas = document.querySelector('{VIEWER} {selector}');
        const image = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
        return [canvas.width, canvas.height, Array.from(image.data)];
    }}""")
    return np.array(data, dtype=np.uint8).reshape(height, width, 4)


def expected_colours(payload, step, track, item, normalization="per word over steps", colormap="viridis"):
    """The map as the node returned it, normalised and coloured as render/ does: uint8 [h, w, 3], or None."""
    maps = decode_maps(payload)[:, :, item]  # [steps, tracks, h, w]
    if maps[step, track].isnan().all():
        return None
    level = normalize_maps(maps, normalization)[step, track]
    table = np.frombuffer(base64.b64decode(payload["colormaps"][colormap]), dtype=np.uint8).reshape(-1, 3)
    return table[(level.numpy() * (len(table) - 1)).round().astype(int)]


def assert_shows(page, payload, step, track, item):
    drawn = heat_pixels(page)
    expected = expected_colours(payload, step, track, item)
    assert expected is not None
    assert (drawn[..., 3] == 255).all()
    difference = np.abs(drawn[..., :3].astype(int) - expected.astype(int))
    assert difference.max() <= COLOUR_TOLERANCE, f"step {step}, track {track}, image {item}: off by {difference.max()}"
    return drawn


def choose(page, selector, value):
    page.locator(f"{VIEWER} {selector}").select_option(str(value))


def test_the_widget_shows_the_run_with_its_words_steps_and_negative_start(page, run):
    payload = run
    assert payload["steps"] == STEPS and payload["batch"] == BATCH and payload["negative_start"] == NEGATIVE_START
    assert viewer_state(page)["visible"]
    texts = page.evaluate(f"""() => {{
        const root = document.querySelector('{VIEWER}');
        const options = (name) => Array.from(root.querySelectorAll(`${{name}} option`)).map(o => o.textContent);
        return {{words: options('.dn-word'), branches: options('.dn-branch'), items: options('.dn-item'),
                 slider: [root.querySelector('.dn-step').min, root.querySelector('.dn-step').max],
                 status: root.querySelector('.dn-status').textContent,
                 legend: Array.from(root.querySelectorAll('.dn-legend > span')).map(s => s.textContent)}};
    }}""")
    assert texts["words"] == ["man", "glasses"]  # the positive branch first
    assert texts["branches"] == ["+ positive", "− unconditional"]
    assert texts["items"] == ["0", "1"]
    assert texts["slider"] == ["0", str(STEPS - 1)]
    assert f"negative from step {NEGATIVE_START}" in texts["status"]
    assert texts["legend"] == ["+ man", "+ glasses", "− glasses", "− <end> (empty prompt)"]
    page.locator(VIEWER).screenshot(path=SCREENSHOTS / f"attention_viewer_{file_name(page)}.png")


def test_the_slider_shows_each_steps_map(page, run):
    payload = run
    slider = page.locator(f"{VIEWER} .dn-step")
    shown = {}
    for step in (0, 3, STEPS - 1):
        slider.fill(str(step))
        shown[step] = assert_shows(page, payload, step, track=0, item=0)
    assert not np.array_equal(shown[0], shown[STEPS - 1])  # the map really moved with the slider


def test_another_word_branch_and_image_change_the_map(page, run):
    payload = run
    page.locator(f"{VIEWER} .dn-step").fill("4")
    first = assert_shows(page, payload, 4, track=0, item=0)
    choose(page, ".dn-word", 1)  # "glasses" in the positive branch
    glasses = assert_shows(page, payload, 4, track=1, item=0)
    assert not np.array_equal(first, glasses)
    choose(page, ".dn-item", 1)
    assert_shows(page, payload, 4, track=1, item=1)
    choose(page, ".dn-branch", "unconditional")  # the negative's "glasses"
    assert_shows(page, payload, 4, track=2, item=1)
    page.locator(f"{VIEWER} .dn-step").fill("1")  # before the negative starts: absent, and said so
    assert (heat_pixels(page)[..., 3] == 0).all()
    absent = page.locator(f"{VIEWER} .dn-absent").text_content()
    assert absent == f"“glasses” is not in the unconditional branch at step 1 (the negative starts at step " \
                     f"{NEGATIVE_START})"
    choose(page, ".dn-branch", "positive")
    choose(page, ".dn-item", 0)


def test_hover_reads_the_share_and_ranks_the_words_at_that_pixel(page, run):
    payload = run
    page.locator(f"{VIEWER} .dn-step").fill("3")
    choose(page, ".dn-word", 0)
    box = page.locator(f"{VIEWER} .dn-stage").bounding_box()
    height, width = payload["height"], payload["width"]
    x, y = 5, 2
    page.mouse.move(box["x"] + (x + 0.5) * box["width"] / width, box["y"] + (y + 0.5) * box["height"] / height)
    maps = decode_maps(payload)
    readout = page.locator(f"{VIEWER} .dn-readout").text_content()
    share = float(maps[3, 0, 0, y, x])
    assert readout.startswith(f"({x}, {y}) step 3: “man” ")
    shown = float(readout.split("“man” ")[1].split("%")[0]) / 100
    assert shown == pytest.approx(share, abs=0.0006)
    ranking = page.locator(f"{VIEWER} .dn-ranking li").all_text_contents()
    order = sorted([("man", float(maps[3, 0, 0, y, x])), ("glasses", float(maps[3, 1, 0, y, x]))],
                   key=lambda entry: -entry[1])
    expected = [f"{rank}. {word}" for rank, (word, _) in enumerate(order, 1)]
    assert [line.rsplit(" ", 1)[0] for line in ranking] == expected
    page.locator(VIEWER).screenshot(path=SCREENSHOTS / f"attention_viewer_hover_{file_name(page)}.png")


def test_play_and_the_chart_pick_steps_and_exploring_queues_nothing(page, run, server):
    before = len(server.get("/history"))
    page.locator(f"{VIEWER} .dn-play").click()
    page.wait_for_function(f"() => document.querySelector('{VIEWER} .dn-heat').dataset.step === '7'",
                           timeout=10_000)
    page.locator(f"{VIEWER} .dn-play").click()
    chart = page.locator(f"{VIEWER} .dn-chart").bounding_box()  # a click on the chart picks its step
    left, right = CHART_MARGIN_LEFT, CHART_WIDTH - CHART_MARGIN_RIGHT
    x = chart["x"] + (left + (right - left) * 6 / (STEPS - 1)) * chart["width"] / CHART_WIDTH
    page.mouse.click(x, chart["y"] + chart["height"] / 2)
    assert page.locator(f"{VIEWER} .dn-heat").get_attribute("data-step") == "6"
    assert page.locator(f"{VIEWER} .dn-step").input_value() == "6"
    assert server.get("/queue") == {"queue_running": [], "queue_pending": []}
    assert len(server.get("/history")) == before


def test_the_readme_picture(page, run):
    """docs/attention_viewer.png is this screenshot from the pinned host's classic canvas: "glasses" in
    the positive branch at step 8 of the first image, the pointer where it takes the most attention."""
    payload, step = run, 8
    choose(page, ".dn-branch", "positive")
    choose(page, ".dn-word", 1)
    choose(page, ".dn-item", 0)
    page.locator(f"{VIEWER} .dn-step").fill(str(step))
    page.locator(f"{VIEWER} .dn-opacity").fill("0.45")
    glasses = decode_maps(payload)[step, 1, 0]
    y, x = divmod(int(glasses.flatten().argmax()), payload["width"])
    box = page.locator(f"{VIEWER} .dn-stage").bounding_box()
    page.mouse.move(box["x"] + (x + 0.5) * box["width"] / payload["width"],
                    box["y"] + (y + 0.5) * box["height"] / payload["height"])
    assert page.locator(f"{VIEWER} .dn-readout").text_content().startswith(f"({x}, {y}) step {step}: “glasses” ")
    node = page.locator(VIEWER).bounding_box()
    title = 105  # the node's title bar and its two input slots, above the widget
    page.screenshot(path=SCREENSHOTS / f"attention_viewer_readme_{file_name(page)}.png",
                    clip={"x": node["x"] - 12, "y": node["y"] - title, "width": node["width"] + 24,
                          "height": node["height"] + title + 12})
    page.mouse.move(0, 0)
    page.locator(f"{VIEWER} .dn-opacity").fill("0.6")


def test_words_are_shown_as_text_never_as_markup(page, run):
    hostile = '<img src=x onerror="window.__injected=1">'
    page.evaluate("""([payload, word]) => {
        const node = window.app.graph.nodes.find(n => n.type === 'DelayedNegativeAttentionViewer');
        node.attentionViewer.show({...payload, tracks: payload.tracks.map(t => ({...t, word, label: word}))});
    }""", [run, hostile])
    root = page.locator(VIEWER)
    assert root.locator("img").count() == 1  # only the picture of the run
    assert hostile in root.locator(".dn-word option").first.text_content()
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__injected") is None
    show_payload(page, run)


def skipped_by_a_cache(payload: dict, step: int) -> dict:
    """The run's payload as render/viewer_payload.py writes it when a cache (EasyCache, a pack's step
    cache) reused an earlier prediction at `step`: no map there (NaN, quantised by the pack's own code
    to absent scales), no strength, and the step listed in not_evaluated."""
    maps = decode_maps(payload)
    maps[step] = float("nan")
    codes, scales = quantize(maps)
    strength = [[[None] * len(items) for items in tracks] if each == step else tracks
                for each, tracks in enumerate(payload["strength"])]
    return {**payload, "not_evaluated": [step], "scales": scales, "strength": strength,
            "maps": base64.b64encode(codes.tobytes()).decode("ascii")}


def show_payload(page, payload: dict):
    page.evaluate("""(payload) => window.app.graph.nodes.find(n => n.type === 'DelayedNegativeAttentionViewer')
                                  .attentionViewer.show(payload)""", payload)


def chart_columns_with(page, rgba) -> list[int]:
    """The chart's x positions (its 380-pixel drawing units) where some pixel has this colour: a
    translucent fill over the cleared canvas reads back as its own colour, within rounding."""
    pixels = canvas_pixels(page, ".dn-chart").astype(int)
    close = (np.abs(pixels - np.array(rgba)) <= [4, 4, 4, 2]).all(axis=-1).any(axis=0)
    scale = pixels.shape[1] / CHART_WIDTH  # devicePixelRatio
    return sorted({int(x / scale) for x in np.flatnonzero(close)})


def test_a_step_a_cache_skipped_is_said_not_evaluated_and_shaded_in_the_chart(page, run):
    step = NOT_EVALUATED_STEP
    assert not chart_columns_with(page, NOT_EVALUATED_SHADE)  # nothing shaded in a run with every step
    skipped = skipped_by_a_cache(run, step)
    show_payload(page, skipped)
    try:
        choose(page, ".dn-branch", "positive")
        choose(page, ".dn-word", 0)
        choose(page, ".dn-item", 0)
        page.locator(f"{VIEWER} .dn-step").fill(str(step))
        assert (heat_pixels(page)[..., 3] == 0).all()  # no map drawn, not a stale one
        absent = page.locator(f"{VIEWER} .dn-absent")
        assert absent.is_visible()
        assert absent.text_content() == f"Step {step} was not evaluated: a cache reused an earlier prediction, " \
                                        "so no attention was computed there"
        page.locator(VIEWER).screenshot(path=SCREENSHOTS / f"attention_viewer_not_evaluated_{file_name(page)}.png")

        page.locator(f"{VIEWER} .dn-step").fill(str(step - 1))  # the step before: its map, no label
        assert_shows(page, skipped, step - 1, track=0, item=0)  # scaled over the steps that have maps
        assert not absent.is_visible()
        shaded = chart_columns_with(page, NOT_EVALUATED_SHADE)  # the current step's line now out of the band
        left, right = CHART_MARGIN_LEFT, CHART_WIDTH - CHART_MARGIN_RIGHT
        at, half = left + (right - left) * step / (STEPS - 1), (right - left) / (STEPS - 1) / 2
        assert shaded and at - half - 1 <= shaded[0] and shaded[-1] <= at + half + 1, (shaded, at, half)
        assert len(shaded) >= 2 * half - 2, (shaded, at, half)  # the whole band around the step, nothing else
    finally:
        show_payload(page, run)


def test_no_console_error_from_the_viewer(page, run):
    errors = page.console.errors_from_pack()
    uncaught = [text for kind, text, _ in page.console.messages if kind == "pageerror"]
    assert not errors and not uncaught, errors + uncaught
