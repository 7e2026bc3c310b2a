"""Explain Image (Attention Maps): the attention maps of an existing picture, at chosen noise levels.

The node encodes the image with the stock VAE Encode and hands the latent to
samplers/explain_image.py, which noises it to each chosen step and evaluates the model once
there. The words and layers come from Record Attention Maps, as for a sampled run: one place to
choose them, and its MODEL and recording outputs connect here instead of to a sampler.
"""

import comfy.samplers
import nodes
from comfy_api.latest import io

from ..samplers.explain_image import explain_latent
from .attention_maps import CATEGORY, AttentionMapsType, AttentionRecordingType


class ExplainImage(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DelayedNegativeExplainImage",
            display_name="Explain Image (Attention Maps)",
            category=CATEGORY,
            description="Which words the model sees where in an existing image, and at which noise level: the image "
                        "is encoded, noised to each chosen step of the schedule with the seed's noise, and the model "
                        "evaluated once there (positive and unconditional branch, as KSampler Advanced's first step "
                        "from that step). The maps go to every attention view and the viewer.",
            inputs=[
                io.Model.Input("model", tooltip="The MODEL output of Record Attention Maps (which sets the words "
                                                "and layers to record)."),
                AttentionRecordingType.Input("recording", tooltip="The recording output of the same Record "
                                                                  "Attention Maps node."),
                io.Vae.Input("vae", tooltip="The model's VAE, to encode the image."),
                io.Image.Input("image", tooltip="The picture to explain: generated or not, any size the VAE "
                                                "encodes. A batch gives one set of maps per image."),
                io.Conditioning.Input("positive", tooltip="The positive prompt, encoded (CLIP Text Encode "
                                                          "(Attention Words) when Record's prompt boxes are empty)."),
                io.Conditioning.Input("negative", tooltip="The negative prompt, encoded; it is the unconditional "
                                                          "branch at every chosen step."),
                io.Int.Input("steps", default=10, min=1, max=10000,
                             tooltip="Steps of the schedule the noise levels come from, as a KSampler's steps."),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="normal",
                               tooltip="The schedule's scheduler, as a KSampler's."),
                io.String.Input("explain_steps", default="all",
                                tooltip="Which steps of the schedule to explain: 'all', or steps such as 3, 6, 9 or "
                                        "2-5 (0 = the noisiest). One model evaluation each; step i of the maps is "
                                        "the i-th chosen step."),
                # No "control after generate" (the frontend adds one to an INT named seed unless told not
                # to): a new seed at every queue would re-run the evaluations and change the maps.
                io.Int.Input("seed", default=0, min=0, max=0xffffffffffffffff, control_after_generate=False,
                             tooltip="The seed of the noise added to the image; the same noise at every chosen "
                                     "step, scaled to its sigma. It stays as set between runs."),
                io.Float.Input("cfg", default=8.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance scale of the evaluation, as the sampler's. At 1 "
                                       "ComfyUI skips the unconditional branch: the negative's maps are then empty."),
            ],
            outputs=[AttentionMapsType.Output("attention_maps", tooltip="One step per chosen step, in order: connect "
                                                                        "to the attention views and the viewer.")],
        )

    @classmethod
    def execute(cls, model, recording, vae, image, positive, negative, steps, scheduler, explain_steps, seed, cfg):
        latent = nodes.VAEEncode().encode(vae, image)[0]
        return io.NodeOutput(explain_latent(model, recording, latent, positive, negative, steps, scheduler,
                                            explain_steps, seed, cfg))


NODES = [ExplainImage]
