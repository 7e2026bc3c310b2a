"""Tell the user something about their run: in the console, and on the node that is running.

ComfyUI shows a node's progress text under the node (PromptServer.send_progress_text, with the
executing node from comfy_execution.utils.get_executing_context; both in 0.3.75 and 0.33).
Outside a server (scripts, tests) only the console gets it.
"""

import logging

LOG = logging.getLogger("delayed_negative")


def tell_user(message: str) -> None:
    LOG.warning("[Delayed Negative] %s", message)
    node_id = executing_node_id()
    if node_id is None:
        return
    try:
        from server import PromptServer

        PromptServer.instance.send_progress_text(message, node_id)
    except (ImportError, AttributeError):
        pass  # no server in this process: the console has it


def executing_node_id():
    try:
        from comfy_execution.utils import get_executing_context
    except ImportError:
        return None
    context = get_executing_context()
    return getattr(context, "node_id", None)
