"""Attention Viewer: the maps of a run explored in the node itself (web/attention_viewer.js).

The node returns everything once (render/viewer_payload.py); steps, words, branches and batch
items are then chosen in the browser, so looking at another step queues nothing.
"""

from comfy_api.latest import io, ui

from ..render.viewer_payload import viewer_payload
from .attention_maps import CATEGORY, maps_input

# The key of the node's UI output that the widget reads; a key of its own, since the frontend
# would draw an "images" output under the node itself.
UI_KEY = "delayed_negative_attention_viewer"


class AttentionViewer(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DelayedNegativeAttentionViewer",
            display_name="Attention Viewer (Delayed Negative)",
            category=CATEGORY,
            description="Shows the image with the heat map of a chosen word, in the node: a step slider with play, "
                        "word, branch and batch pickers, the strength chart with the step and the negative's start, "
                        "and on hover each word's share of attention at that pixel. Exploring queues nothing.",
            inputs=[maps_input(),
                    io.Image.Input("image", tooltip="The decoded image of the same run (the VAE Decode after the "
                                                    "sampler), under the heat map.")],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, attention_maps, image):
        shown = image[attention_maps.image_of_each_item(image.shape[0])]
        saved = ui.PreviewImage(shown, cls=cls).as_dict()["images"]
        return io.NodeOutput(ui={UI_KEY: [viewer_payload(attention_maps, saved)]})


NODES = [AttentionViewer]
