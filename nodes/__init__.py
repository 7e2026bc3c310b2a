"""The pack's ComfyUI nodes. Behaviour lives in samplers/ and attention/; nodes translate widgets."""

from typing_extensions import override

from comfy_api.latest import ComfyExtension, io

from .attention_maps import NODES as ATTENTION_NODES
from .attention_text_encode import NODES as TEXT_ENCODE_NODES
from .attention_viewer import NODES as VIEWER_NODES
from .auto_start import NODES as AUTO_START_NODES
from .delayed_negative import NODES as DELAYED_NEGATIVE_NODES
from .explain_image import NODES as EXPLAIN_IMAGE_NODES
from .guidance_schedule import NODES as GUIDANCE_SCHEDULE_NODES
from .image_grid import NODES as IMAGE_GRID_NODES
from .nag import NODES as NAG_NODES
from .sweep import NODES as SWEEP_NODES


class DelayedNegativeExtension(ComfyExtension):
    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [*DELAYED_NEGATIVE_NODES, *GUIDANCE_SCHEDULE_NODES, *AUTO_START_NODES, *NAG_NODES, *SWEEP_NODES,
                *TEXT_ENCODE_NODES, *ATTENTION_NODES, *EXPLAIN_IMAGE_NODES, *VIEWER_NODES, *IMAGE_GRID_NODES]


async def comfy_entrypoint() -> DelayedNegativeExtension:
    return DelayedNegativeExtension()
