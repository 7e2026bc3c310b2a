"""Every example workflow in a real browser: Debian's headless chromium, driven by Playwright, on the
ComfyUI frontend that the test server serves.

Each example opens with no dialog (no "missing nodes"), no error notification and no console error
from this pack, with all its nodes on the canvas; it is queued with the Run button and every output
node shows its images. To run in seconds on a CPU, the frontend's own API prompt for the workflow
is scaled down (workflow_api: the generated checkpoint of each architecture, a few steps, 64-pixel latents;
an example made for the toy portraits model keeps it) and written back into the widgets before
queueing. The frontend's API prompt must carry the widget values workflow_api reads from the file.
The pictures examples load (Load Image) are uploaded to the server's input folder first, through the
route the frontend's upload button uses.
An example that loads models no generated model stands in for (Flux dev, a Lightning LoRA:
workflow_api.runs_on_generated_models) is not queued: the frontend's own API prompt for it goes to the
server's /prompt validation, which must refuse it for the model files it lacks and nothing else.
A screenshot of each example is kept in .artifacts/browser/<example>.png, whether it passes or fails.
"""

import json
import uuid
from collections import Counter
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

import browser as ui
from devtools.host.workflow_api import (TOY_CHECKPOINT, errors_besides_missing_files, on_generated_checkpoints,
                                       runs_on_generated_models, scale_down, to_api_prompt)

PACK_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((PACK_ROOT / "example_workflows").glob("*.json"))
SCREENSHOTS = PACK_ROOT / ".artifacts" / "browser"
TOY_CHECKPOINT_NAME = TOY_CHECKPOINT  # `make setup` builds it: kept as named
# Fewer steps than the API-format test: the sweep alone runs five samplers, and the
# browser test should take a few minutes on two shared cores.
MAX_STEPS = 3
MAX_LATENT_SIZE = 64
RUN_TIMEOUT = 300.0
VIEWER = "DelayedNegativeAttentionViewer"  # its widget shows the run (test_browser_viewer.py)


@pytest.fixture(scope="module")
def chromium():
    if not Path(ui.CHROMIUM).is_file():
        pytest.fail(f"{ui.CHROMIUM} is missing: `make test` installs Debian's chromium.")
    with sync_playwright() as playwright:
        browser = ui.launch(playwright)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def object_info(server):
    """The server's node definitions, once the pictures the examples load are in its input folder (uploaded
    through /upload/image, as the frontend's upload button does) before any page opens: Load Image lists
    and shows them."""
    server.upload_example_inputs([json.loads(path.read_text()) for path in EXAMPLES])
    return server.get("/object_info")


@pytest.fixture
def page(chromium, request):
    """A fresh page (its own storage, so the frontend starts as for a new user); screenshot at the end."""
    context = chromium.new_context(viewport=ui.VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(90_000)
    yield page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        page.screenshot(path=SCREENSHOTS / f"{request.node.callspec.params['path'].stem}.png")
    finally:
        context.close()


def small_widget_values(prompt: dict, object_info: dict) -> dict:
    """{node id: {widget: value}} of the prompt on the generated checkpoints, scaled down for a CPU."""
    small = scale_down(on_generated_checkpoints(prompt), object_info, max_steps=MAX_STEPS, max_latent_size=MAX_LATENT_SIZE)
    return {node_id: {name: value for name, value in node["inputs"].items() if not isinstance(value, list)}
            for node_id, node in small.items()}


def widget_values(prompt: dict) -> dict:
    """{node id: {input: value}} of an API prompt's values, links left out."""
    return {node_id: {name: value for name, value in node["inputs"].items() if not isinstance(value, list)}
            for node_id, node in prompt.items()}


def test_there_are_example_workflows_to_open():
    assert EXAMPLES, "example_workflows/ holds no .json workflow"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_example_opens_queues_and_shows_its_images(path, server, object_info, page):
    workflow = json.loads(path.read_text())
    console = ui.Console(origin=server.url)
    console.listen(page)
    ui.open_frontend(page, server.url)

    ui.load_workflow(page, workflow)
    dialogs = ui.open_dialogs(page)
    assert ui.MISSING_NODES_DIALOG not in dialogs, dialogs[ui.MISSING_NODES_DIALOG]
    assert not dialogs, dialogs
    assert not ui.toasts(page)
    on_canvas = ui.graph_nodes(page)
    unknown = [f"{node['id']} {node['type']}" for node in on_canvas if not node["registered"]]
    assert not unknown, f"nodes the frontend does not know: {unknown}"
    flagged = [node for node in on_canvas if node["has_errors"]]
    if flagged:  # compared with the same stock node alone; the pack's own nodes are never excused
        ours_flagged = [node["type"] for node in flagged if node["type"].startswith("DelayedNegative")]
        assert not ours_flagged, f"the frontend flags the pack's nodes: {ours_flagged}"
        not_stock = [node["type"] for node in flagged if not ui.flagged_alone(page, workflow, node["id"])]
        assert not not_stock, f"flagged only inside this workflow: {not_stock}"
        ui.load_workflow(page, workflow)
    assert Counter((str(node["id"]), node["type"]) for node in on_canvas) == \
        Counter((str(node["id"]), node["type"]) for node in workflow["nodes"])
    assert not console.errors_from_pack()

    prompt = ui.api_prompt(page)
    assert widget_values(prompt) == widget_values(to_api_prompt(workflow, object_info))
    output_nodes = [node_id for node_id, node in prompt.items() if object_info[node["class_type"]]["output_node"]]
    assert output_nodes, "the workflow has no output node"
    if not runs_on_generated_models(workflow):
        answer = server.post("/prompt", {"prompt": prompt, "client_id": str(uuid.uuid4())})
        assert not errors_besides_missing_files(answer, prompt), json.dumps(answer, indent=1)[:3000]
        return
    print("scaled down:", *ui.set_widget_values(page, small_widget_values(prompt, object_info)), sep="\n  ")
    ui.fit_view(page)
    ui.queue_from_ui(page)
    viewers = [node_id for node_id in output_nodes if prompt[node_id]["class_type"] == VIEWER]
    output_nodes = [node_id for node_id in output_nodes if node_id not in viewers]  # they show no image preview
    try:
        shown = ui.wait_for_images(page, output_nodes, RUN_TIMEOUT)
        ui.wait_for_viewers(page, viewers, RUN_TIMEOUT)
    except (AssertionError, TimeoutError) as error:
        raise AssertionError(f"{error}\nserver log:\n{server.log()[-3000:]}") from None
    assert all("/view?" in src for sources in shown.values() for src in sources), shown
    assert not console.errors_from_pack()
    assert not ui.toasts(page)
    assert ui.MISSING_NODES_DIALOG not in ui.open_dialogs(page)  # in case it rendered late
