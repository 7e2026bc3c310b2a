"""Drive the ComfyUI frontend (1.32, 1.49, 1.58) in Debian's headless chromium through Playwright's sync API.

Playwright's own browser download does not work on the machines this pack is built on, so the
system chromium is launched through `executable_path`. Everything here reaches the page the way a
user's browser would: the frontend's `window.app` (the ComfyApp), its dialogs and its Run button.
"""

import time
from dataclasses import dataclass, field

CHROMIUM = "/usr/bin/chromium"
# No sandbox (root in a container), no GPU, and nothing that phones home or updates itself.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-quic"]
VIEWPORT = {"width": 1600, "height": 1000}

# The frontend opens its dialogs with these keys (its dialog store's `global-…` names): up to 1.49
# in the dialog's aria-labelledby, from 1.58 (reka dialogs) in its data-dialog-key.
TEMPLATES_DIALOG = ('[role=dialog][aria-labelledby="global-workflow-template-selector"], '
                    '[role=dialog][data-dialog-key="global-workflow-template-selector"]')
TEMPLATES_CLOSE = 'button:has(.pi-times), button[aria-label="Close dialog"]'  # its × (1.32, 1.49; 1.58)
MISSING_NODES_DIALOG = "global-missing-nodes"  # 1.58 lists missing nodes in a side panel instead
ERROR_DIALOGS = ("global-execution-error", "global-error")
# The Run button: inside the queue-button group (frontend 1.32), or the button itself (1.49).
QUEUE_BUTTON = '[data-testid="queue-button"] button[aria-label="Run"], button[data-testid="queue-button"]'
PACK_MARKERS = ("delayednegative", "delayed negative", "delayed-negative", "delayed_negative")


def launch(playwright):
    """The system chromium, headless; Playwright gives it a new empty --user-data-dir of its own."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)


@dataclass
class Console:
    """What the page wrote to its console, and the exceptions it did not catch."""
    origin: str
    messages: list = field(default_factory=list)

    def listen(self, page):
        page.on("console", lambda message: self.messages.append(
            (message.type, message.text, message.location.get("url", ""))))
        page.on("pageerror", lambda error: self.messages.append(("pageerror", str(error), "")))

    def errors_from_pack(self) -> list[str]:
        """Errors that name this pack: the frontend itself logs a few 404s and a TypeError of its own.

        Requests to other sites are left out: the machine is offline, and the frontend asks the
        Comfy Registry (api.comfy.org/comfy-nodes/<node id>) about every custom node it shows.
        """
        return [f"{kind}: {text} ({url})" for kind, text, url in self.messages
                if kind in ("error", "pageerror")
                and not (url.startswith(("http:", "https:")) and not url.startswith(self.origin))
                and any(marker in f"{text} {url}".lower() for marker in PACK_MARKERS)]


def open_frontend(page, url: str):
    """Load the UI and wait until it has finished its own start-up workflow; close the Templates dialog.

    On a first visit (the server's Comfy.TutorialCompleted setting unset) the frontend starts with a
    blank graph and opens its Templates dialog; otherwise it loads its default graph.
    """
    page.goto(url)
    page.wait_for_function(f"""() => document.querySelector('{TEMPLATES_DIALOG}')
                                     || window.app?.graph?.nodes?.length > 0""")
    templates = page.locator(TEMPLATES_DIALOG)
    if templates.count():
        templates.locator(TEMPLATES_CLOSE).first.click()  # Escape does not close it
        templates.wait_for(state="detached")


def load_workflow(page, workflow: dict):
    """Load a UI-format workflow into the canvas the way opening the file does (app.loadGraphData)."""
    page.evaluate("async (workflow) => await window.app.loadGraphData(workflow)", workflow)
    # Its warning dialogs are opened during the load and rendered on a later frame.
    page.wait_for_timeout(1000)


def open_dialogs(page) -> dict[str, str]:
    """{dialog key: its text} for every dialog the frontend shows."""
    return page.evaluate("""() => Object.fromEntries(Array.from(document.querySelectorAll('[role=dialog]'))
        .map(dialog => [dialog.dataset.dialogKey ?? dialog.getAttribute('aria-labelledby'), dialog.innerText]))""")


def toasts(page) -> list[str]:
    """Error and warning notifications (e.g. "Invalid workflow against zod schema")."""
    return page.evaluate("""() => Array.from(document.querySelectorAll(
        '.p-toast-message-error, .p-toast-message-warn')).map(toast => toast.innerText)""")


def graph_nodes(page) -> list[dict]:
    """The canvas's nodes: id, type, and whether the frontend knows the type (a missing one is kept
    as a red placeholder node with has_errors set)."""
    return page.evaluate("""() => window.app.graph.nodes.map(node => ({
        id: node.id, type: node.type, registered: Boolean(LiteGraph.registered_node_types[node.type]),
        has_errors: Boolean(node.has_errors)}))""")


def flagged_alone(page, workflow: dict, node_id) -> bool:
    """Whether the frontend flags this node of `workflow` when it stands alone in an otherwise empty
    graph, with the same widget values: what it does to a stock node whatever the pack does
    (frontend 1.49 flags a loader whose model file the server does not have)."""
    node = next(node for node in workflow["nodes"] if str(node["id"]) == str(node_id))
    alone = {**workflow, "nodes": [{**node, "inputs": [], "outputs": []}], "links": [], "groups": []}
    load_workflow(page, alone)
    return page.evaluate("() => Boolean(window.app.graph.nodes[0]?.has_errors)")


def api_prompt(page) -> dict:
    """The API-format prompt the frontend would queue now (its own graphToPrompt)."""
    return page.evaluate("async () => (await window.app.graphToPrompt()).output")


def set_widget_values(page, values: dict) -> list[str]:
    """Set widgets from {node id: {widget name: value}}; returns "node.widget: old -> new" lines."""
    return page.evaluate("""(values) => {
        const changes = [];
        for (const node of window.app.graph.nodes) {
            for (const widget of node.widgets ?? []) {
                const wanted = values[String(node.id)]?.[widget.name];
                if (wanted === undefined || wanted === widget.value) continue;
                changes.push(`${node.id} ${node.type}.${widget.name}: ${widget.value} -> ${wanted}`);
                widget.value = wanted;
            }
        }
        window.app.graph.setDirtyCanvas(true, true);
        return changes;
    }""", values)


def fit_view(page):
    """Show the whole workflow: the canvas only loads a node's image previews when it draws the node."""
    page.evaluate("async () => await window.app.extensionManager.command.execute('Comfy.Canvas.FitView')")


def queue_from_ui(page):
    page.locator(QUEUE_BUTTON).click()


def shown_images(page, node_ids: list[str]) -> dict[str, list[str]]:
    """{node id: src of each image preview the page has loaded for it from the server's /view}."""
    return page.evaluate("""(ids) => Object.fromEntries(ids.map(id => {
        const node = window.app.graph.getNodeById(Number(id)) ?? window.app.graph.getNodeById(id);
        const images = (node?.imgs ?? []).filter(image => image.complete && image.naturalWidth > 0
                                                          && image.src.includes('/view?'));
        return [id, images.map(image => image.src)];
    }))""", node_ids)


def wait_for_images(page, node_ids: list[str], timeout: float):
    """Wait until every node in `node_ids` shows at least one image; fail early on an error dialog."""
    deadline = time.monotonic() + timeout
    while True:
        shown = shown_images(page, node_ids)
        if all(shown.values()):
            return shown
        dialogs = open_dialogs(page)
        failed = {key: text for key, text in dialogs.items() if key in ERROR_DIALOGS}
        if failed:
            raise AssertionError(f"the frontend reported an error: {failed}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"after {timeout:.0f} s, no image shown by nodes "
                               f"{[node_id for node_id, images in shown.items() if not images]}; "
                               f"dialogs: {dialogs}; errors: {toasts(page)}")
        page.wait_for_timeout(500)


def wait_for_viewers(page, node_ids: list[str], timeout: float):
    """Wait until the Attention Viewer widget of every node in `node_ids` shows a run."""
    deadline = time.monotonic() + timeout
    while True:
        waiting = page.evaluate("""(ids) => ids.filter(id => {
            const node = window.app.graph.getNodeById(Number(id)) ?? window.app.graph.getNodeById(id);
            const body = node?.attentionViewer?.body;
            return !body || body.style.display === 'none';
        })""", node_ids)
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"after {timeout:.0f} s, the Attention Viewer of nodes {waiting} shows no run; "
                               f"dialogs: {open_dialogs(page)}; errors: {toasts(page)}")
        page.wait_for_timeout(500)
