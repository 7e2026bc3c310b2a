"""CLIP Text Encode (Attention Words): the stock text encoder, whose conditioning also says its text.

Encode the prompts with it and leave Record Attention Maps' prompt texts empty: the recorder
reads each branch's text from the conditioning it samples (attention/conditioning_prompts.py),
so a prompt is typed once. The conditioning is the stock CLIP Text Encode's, bit for bit.
Node ids are a public contract: never rename, version instead.
"""

import nodes
from comfy_api.latest import io

from ..attention.conditioning_prompts import with_prompt
from .negative_inputs import CATEGORY


class DelayedNegativeTextEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DelayedNegativeTextEncode",
            display_name="CLIP Text Encode (Attention Words)",
            category=CATEGORY,
            description="Encodes a prompt exactly like CLIP Text Encode, and lets Record Attention Maps read its "
                        "words from the conditioning: leave the recorder's prompt texts empty, and nothing is "
                        "typed twice.",
            inputs=[
                io.Clip.Input("clip", tooltip="The CLIP model used for encoding the text."),
                io.String.Input("text", multiline=True, dynamic_prompts=True,
                                tooltip="The text to be encoded; Record Attention Maps finds its words here."),
            ],
            outputs=[io.Conditioning.Output(tooltip="The encoded text, the same as CLIP Text Encode's, carrying "
                                                    "the text for Record Attention Maps.")],
        )

    @classmethod
    def execute(cls, clip, text):
        return io.NodeOutput(with_prompt(nodes.CLIPTextEncode().encode(clip, text)[0], text))


NODES = [DelayedNegativeTextEncode]
