"""Render the .jpg thumbnail beside each example workflow by running it on a real ComfyUI.

Each workflow is converted to an API prompt (tests/workflow_api.py) and run; the thumbnail is the
first of PREFERRED_PREFIXES it saves (the toy example's comparison, an attention chart), else its
saved images side by side, scaled to THUMBNAIL_WIDTH pixels wide. Without --server a test server
is started and every workflow runs on the toy portraits model (`make setup` builds it), with its
own steps (--max-steps caps them) on 64x64 images, the size the model was trained on; a workflow
made for the toy model runs as it is. The pictures a workflow loads (Load Image: example 13's portrait,
committed in example_workflows/) are uploaded to the server first, as the frontend's upload button does.
The toy model has learnt portraits and glasses but not mustaches, so the paper
examples' negative "mustache" shows the workflow's shape on real portraits, not the paper's
result. With --server and real checkpoints (e.g. `make run` with v1-5-pruned-emaonly.safetensors
installed), pass --checkpoint NAME, and --full to keep the workflows' own image sizes.

A workflow that names a model file the server does not have even then (Flux dev's diffusion model,
text encoders and VAE; a Lightning LoRA: no generated model stands in for them) is not run: its
thumbnail is the workflow's own nodes of this pack (its NAG Settings and sampler) as the frontend draws
them on the canvas (Debian's headless chromium, driven as in the browser tests).

Usage:
    python -m devtools.examples.example_thumbnails [--server URL] [--full] [workflow.json ...]
"""

import argparse
import io
import json
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from PIL import Image

PACK_ROOT = Path(__file__).resolve().parents[2]
from devtools.host.workflow_api import (  # noqa: E402
    EXAMPLE_INPUTS,
    files_the_server_lacks,
    input_images,
    scale_down,
    to_api_prompt,
)
from tests.comfy_server import upload_image

TOY_CHECKPOINT = "delayed-negative-toy-portraits.safetensors"
TOY_IMAGE_SIZE = 64
THUMBNAIL_WIDTH = 256
CANVAS_THUMBNAIL_WIDTH = 512  # drawn nodes: at most this wide, to keep their text legible
# The toy example's three rows tell its story best, the chart the attention examples', and the words x
# steps grid the explained picture's.
PREFERRED_PREFIXES = ("toy_glasses_none_stock_delayed", "attention_chart", "explain_image_grid")


class Client:
    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=60) as response:
            return json.loads(response.read())

    def image(self, image: dict) -> Image.Image:
        query = "&".join(f"{key}={urllib.request.quote(str(image.get(key, '')))}"
                         for key in ("filename", "subfolder", "type"))
        with urllib.request.urlopen(f"{self.url}/view?{query}", timeout=60) as response:
            picture = Image.open(response)
            picture.load()
        return picture.convert("RGB")

    def run(self, prompt: dict, timeout: float = 3600.0) -> dict:
        request = urllib.request.Request(self.url + "/prompt", headers={"Content-Type": "application/json"},
                                         data=json.dumps({"prompt": prompt, "client_id": str(uuid.uuid4())}).encode())
        with urllib.request.urlopen(request, timeout=60) as response:
            prompt_id = json.loads(response.read())["prompt_id"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.get(f"/history/{prompt_id}").get(prompt_id, {})
            if entry.get("status", {}).get("completed") is not None:
                if entry["status"]["status_str"] != "success":
                    raise RuntimeError(json.dumps(entry["status"], indent=1))
                return entry
            time.sleep(1.0)
        raise TimeoutError(f"{prompt_id} did not finish in {timeout} s")


def preferred(prompt: dict, saved: list) -> list:
    """The saved images of the first of PREFERRED_PREFIXES the workflow saves under; [] if none."""
    for prefix in PREFERRED_PREFIXES:
        chosen = [(node_id, image) for node_id, image in saved
                  if prompt[node_id]["inputs"].get("filename_prefix", "").startswith(prefix)]
        if chosen:
            return chosen
    return []


def thumbnail(client: Client, prompt: dict, entry: dict) -> Image.Image:
    saved = [(node_id, image) for node_id, output in sorted(entry["outputs"].items(), key=lambda item: int(item[0]))
             for image in output.get("images", []) if image.get("type") == "output"]
    pictures = [client.image(image) for _, image in (preferred(prompt, saved) or saved)]
    height = max(picture.height for picture in pictures)
    pictures = [picture.resize((round(picture.width * height / picture.height), height), Image.LANCZOS)
                for picture in pictures]
    gap = max(2, height // 64)
    strip = Image.new("RGB", (sum(picture.width for picture in pictures) + gap * (len(pictures) - 1), height), "white")
    x = 0
    for picture in pictures:
        strip.paste(picture, (x, 0))
        x += picture.width + gap
    return strip.resize((THUMBNAIL_WIDTH, max(1, round(strip.height * THUMBNAIL_WIDTH / strip.width))),
                        Image.LANCZOS)


def canvas_picture(url: str, workflow: dict) -> Image.Image:
    """This pack's nodes of the workflow (its NAG Settings and sampler), drawn at full size by the frontend
    at `url`: a whole workflow fitted into a thumbnail is drawn without text (litegraph's low-quality zoom)."""
    from playwright.sync_api import sync_playwright

    from tests import browser as ui

    with sync_playwright() as playwright:
        chromium = ui.launch(playwright)
        try:
            page = chromium.new_page(viewport={"width": 2400, "height": 1600})
            page.set_default_timeout(90_000)
            ui.open_frontend(page, url)
            ui.load_workflow(page, workflow)
            # Scale 1, the nodes' box moved clear of the frontend's menus and side bar.
            box = page.evaluate("""() => {
                const canvas = window.app.canvas, title = LiteGraph.NODE_TITLE_HEIGHT, margin = 24, at = 240;
                const ours = window.app.graph.nodes.filter(node => String(node.type).startsWith('DelayedNegative'));
                const left = Math.min(...ours.map(node => node.pos[0])) - margin;
                const top = Math.min(...ours.map(node => node.pos[1] - title)) - margin;
                const right = Math.max(...ours.map(node => node.pos[0] + node.size[0])) + margin;
                const bottom = Math.max(...ours.map(node => node.pos[1] + node.size[1])) + margin;
                canvas.ds.scale = 1;
                canvas.ds.offset[0] = at - left;
                canvas.ds.offset[1] = at - top;
                canvas.setDirty(true, true);
                return {x: at, y: at, width: right - left, height: bottom - top};
            }""")
            page.wait_for_timeout(1000)
            picture = Image.open(io.BytesIO(page.screenshot(clip=box))).convert("RGB")
        finally:
            chromium.close()
    if picture.width > CANVAS_THUMBNAIL_WIDTH:
        height = round(picture.height * CANVAS_THUMBNAIL_WIDTH / picture.width)
        picture = picture.resize((CANVAS_THUMBNAIL_WIDTH, height), Image.LANCZOS)
    return picture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workflows", nargs="*", type=Path,
                        default=sorted((PACK_ROOT / "example_workflows").glob("*.json")))
    parser.add_argument("--server", help="a running ComfyUI with this pack; default: start a test server")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint to run instead of the ones the workflows name "
                             f"(default without --server: {TOY_CHECKPOINT})")
    parser.add_argument("--full", action="store_true", help="keep the workflows' steps and image sizes")
    parser.add_argument("--max-steps", type=int, default=None, help="cap on the sampling steps (default: none)")
    parser.add_argument("--max-latent-size", type=int, default=None,
                        help=f"longest image side, in pixels (default: {TOY_IMAGE_SIZE} on the toy model, else 256)")
    arguments = parser.parse_args()

    server = None
    if arguments.server:
        client = Client(arguments.server)
    else:
        from tests.comfy_server import ComfyServer

        server = ComfyServer(Path(tempfile.mkdtemp(prefix="example-thumbnails-"))).start()
        client = Client(server.url)
        arguments.checkpoint = arguments.checkpoint or TOY_CHECKPOINT
    if arguments.max_latent_size is None:
        arguments.max_latent_size = TOY_IMAGE_SIZE if arguments.checkpoint == TOY_CHECKPOINT else 256
    try:
        workflows = {path: json.loads(path.read_text()) for path in arguments.workflows}
        for name in sorted({name for workflow in workflows.values() for name in input_images(workflow)}):
            if (EXAMPLE_INPUTS / name).is_file():
                upload_image(client.url, EXAMPLE_INPUTS / name)
        object_info = client.get("/object_info")
        for path, workflow in workflows.items():
            made_for_toy = {node["widgets_values"][0] for node in workflow["nodes"]
                            if node["type"] == "CheckpointLoaderSimple"} == {TOY_CHECKPOINT}
            prompt = to_api_prompt(workflow, object_info, checkpoint=None if made_for_toy else arguments.checkpoint)
            if not (arguments.full or made_for_toy):
                prompt = scale_down(prompt, object_info, arguments.max_steps, arguments.max_latent_size)
            started = time.monotonic()
            target = path.with_suffix(".jpg")
            if files_the_server_lacks(prompt, object_info):
                picture = canvas_picture(client.url, workflow)
            else:
                picture = thumbnail(client, prompt, client.run(prompt))
            picture.save(target, "JPEG", quality=85, optimize=True)
            print(f"wrote {target.name} ({time.monotonic() - started:.0f} s)", flush=True)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
