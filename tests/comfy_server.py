"""A real ComfyUI server subprocess with this pack, driven through its HTTP API."""

import json
import mimetypes
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from devtools.host.comfyui_home import comfyui_home
from devtools.host.comfyui_server import server_command
from devtools.host.workflow_api import EXAMPLE_INPUTS, input_images


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ComfyServer:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        self.process = None

    def start(self, timeout: float = 180.0):
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(server_command(self.workdir, self.port, for_tests=True),
                                        cwd=str(comfyui_home()), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited at start-up:\n{self.log()}")
            try:
                self.get("/system_stats")
                return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        raise TimeoutError(f"ComfyUI did not answer within {timeout} s:\n{self.log()}")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def post(self, path: str, payload: dict):
        request = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body = response.read()
                return json.loads(body) if body else {}  # /interrupt and /free answer with no body
        except urllib.error.HTTPError as error:
            return {"http_error": error.code, **json.loads(error.read() or b"{}")}

    def upload_example_inputs(self, workflows: list[dict]) -> list[str]:
        """Upload the pictures the workflows load (Load Image), committed in EXAMPLE_INPUTS, as a user
        does before queueing them; returns their names."""
        names = sorted({name for workflow in workflows for name in input_images(workflow)})
        for name in names:
            upload_image(self.url, EXAMPLE_INPUTS / name)
        return names

    def run(self, prompt: dict, timeout: float = 300.0) -> dict:
        """Queue an API-format prompt and wait for its history entry (outputs and status)."""
        queued = self.post("/prompt", {"prompt": prompt, "client_id": str(uuid.uuid4())})
        if "prompt_id" not in queued:
            return {"rejected": queued}
        prompt_id = queued["prompt_id"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = self.get(f"/history/{prompt_id}")
            if prompt_id in history and history[prompt_id].get("status", {}).get("completed") is not None:
                return history[prompt_id]
            time.sleep(0.3)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout} s")

    def output_files(self, entry: dict) -> list[Path]:
        return [self.workdir / "output" / image.get("subfolder", "") / image["filename"]
                for output in entry.get("outputs", {}).values() for image in output.get("images", [])
                if image.get("type") == "output"]


def upload_image(url: str, picture: Path) -> dict:
    """POST the picture to the server's /upload/image, as Load Image's upload button does: a form with
    the file as `image`, into the input folder. The server keeps one copy of a picture uploaded twice;
    a different picture of the same name would be renamed, and the workflow would load the wrong one:
    that is an error here."""
    boundary = uuid.uuid4().hex
    kind = mimetypes.guess_type(picture.name)[0] or "application/octet-stream"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{picture.name}"\r\n'
            f"Content-Type: {kind}\r\n\r\n").encode() + picture.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url.rstrip("/") + "/upload/image", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    if answer.get("name") != picture.name:
        raise RuntimeError(f"The server's input folder holds another picture named {picture.name}: it kept the "
                           f"upload as {answer.get('name')!r}. Remove or rename the other one.")
    return answer
