"""Render the .jpg thumbnail beside each example workflow by running it on a real ComfyUI.

Each workflow is converted to an API prompt (tests/workflow_api.py) and run; the thumbnail is
its attention chart if it saves one, else its saved images side by side, scaled to THUMBNAIL_WIDTH
pixels wide. Without --server a test server is started with the generated test checkpoint, whose
random weights draw noise rather than a portrait: the thumbnails then show the workflow's shape
(two pictures, a labelled grid, a chart), not the paper's result. With --server and real
checkpoints (e.g. `make run` with v1-5-pruned-emaonly.safetensors installed), pass --full to keep
the workflows' own steps and sizes.

Usage:
    python devtools/example_thumbnails.py [--server URL] [--full] [workflow.json ...]
"""

import argparse
import json
import sys
import tempfile
import time
import uuid
import urllib.request
from pathlib import Path

from PIL import Image

PACK_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PACK_ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from workflow_api import scale_down, to_api_prompt  # noqa: E402

TEST_CHECKPOINT = "delayed-negative-test-sd15.safetensors"
THUMBNAIL_WIDTH = 256
PREFERRED_PREFIX = "attention_chart"  # the chart tells the attention example's story best


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


def thumbnail(client: Client, prompt: dict, entry: dict) -> Image.Image:
    saved = [(node_id, image) for node_id, output in sorted(entry["outputs"].items(), key=lambda item: int(item[0]))
             for image in output.get("images", []) if image.get("type") == "output"]
    preferred = [(node_id, image) for node_id, image in saved
                 if prompt[node_id]["inputs"].get("filename_prefix", "").startswith(PREFERRED_PREFIX)]
    pictures = [client.image(image) for _, image in (preferred or saved)]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workflows", nargs="*", type=Path,
                        default=sorted((PACK_ROOT / "example_workflows").glob("*.json")))
    parser.add_argument("--server", help="a running ComfyUI with this pack; default: start a test server")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint to run instead of the ones the workflows name "
                             f"(default without --server: {TEST_CHECKPOINT})")
    parser.add_argument("--full", action="store_true", help="keep the workflows' steps and image sizes")
    parser.add_argument("--max-steps", type=int, default=10)
    parser.add_argument("--max-latent-size", type=int, default=256, help="longest image side, in pixels")
    arguments = parser.parse_args()

    server = None
    if arguments.server:
        client = Client(arguments.server)
    else:
        from comfy_server import ComfyServer

        server = ComfyServer(Path(tempfile.mkdtemp(prefix="example-thumbnails-"))).start()
        client = Client(server.url)
        arguments.checkpoint = arguments.checkpoint or TEST_CHECKPOINT
    try:
        object_info = client.get("/object_info")
        for path in arguments.workflows:
            prompt = to_api_prompt(json.loads(path.read_text()), object_info, checkpoint=arguments.checkpoint)
            if not arguments.full:
                prompt = scale_down(prompt, object_info, arguments.max_steps, arguments.max_latent_size)
            started = time.monotonic()
            entry = client.run(prompt)
            target = path.with_suffix(".jpg")
            thumbnail(client, prompt, entry).save(target, "JPEG", quality=85, optimize=True)
            print(f"wrote {target.name} ({time.monotonic() - started:.0f} s)", flush=True)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
