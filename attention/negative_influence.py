"""Where the negative acted: how much, and where, the negative prompt changes the guided prediction
compared with the empty prompt (issue 23), beside where its words draw the attention.

ComfyUI guides a step with the unconditional prediction D(uncond) (its predictions are the
denoised latent, whatever the model predicts):

    guided = D(uncond) + cfg * (D(positive) - D(uncond))

so the guided prediction with the negative minus the one the empty prompt would give is

    influence = (cfg - 1) * (D(empty) - D(negative))

At every evaluation whose unconditional branch holds the negative, the recorder evaluates the
empty prompt too (one more unconditional evaluation: the empty prompt with everything the nodes
after the negative's encoder added, nodes/empty_prompt.empty_in_place_of), through ComfyUI's own
calc_cond_batch: in the same batch as the positive and the negative where it has the negative's
token count, so that ComfyUI's padding of the batch's prompts to one length is what it would be
without it; in a batch of its own otherwise. Its prediction is taken back out before the sampler
sees the outputs, so the sampled latent is what it would be without the measure (bit for bit
where the model's result for each batch item does not depend on the batch size, as on the CPU).

Per step, like the attention maps, averaged over the evaluations of the step:
- the map: the root mean square over the latent's channels of the influence at each latent pixel
  (latent units, per channel: SD1.5's 4 channels and Flux's 16 read alike; no sign, since a
  removal pushes some channels up and others down);
- its share of the whole guidance: |influence| / |cfg * (D(positive) - D(negative))|, both norms
  over the image's channels and pixels (per batch item, per latent frame of a video).
Where the unconditional branch holds the empty prompt (before a delayed negative starts), or
nothing (no guidance, cfg 1, NAG), there is nothing to measure: NaN, and no extra evaluation.
Only guiders that guide through ComfyUI's sampling_function (KSampler, CFGGuider, the pack's
guider) are measured; guiders that mix their own predictions (Dual CFG, Perp-Neg) are not.
"""

import torch
from comfy.patcher_extension import WrappersMP
from comfy.sampler_helpers import convert_cond

from ..clock.notice import tell_user

EMPTY_KEY = "delayed_negative.empty prompt"  # the guider's conds key of the empty prompt, during a run


class NegativeInfluence:
    """The measure of one recording: the empty prompt's conds of the current run, and the
    predictions of the evaluation under way until the pre-cfg hook tells its cfg.

    `empty_in_place_of(negative)` gives the empty prompt's CONDITIONING in place of the negative's.
    """

    def __init__(self, empty_in_place_of):
        self.empty_in_place_of = empty_in_place_of
        self.empty_conds = None  # ComfyUI's processed conds of the empty prompt, this run
        self.empty_uuids = set()
        self.pending = None  # (D(empty) - D(negative), D(positive) - D(negative)) of this evaluation

    def add_empty_prompt(self, guider) -> None:
        """Before ComfyUI processes the guider's conds (an OUTER_SAMPLE wrapper): add the empty
        prompt in place of the negative, so that it is processed like the negative (areas, masks,
        ControlNets, the model's own extra conds)."""
        self.empty_conds, self.empty_uuids, self.pending = None, set(), None
        negative = guider.conds.get("negative")
        if not negative:
            return
        if getattr(guider, "cfg", 2.0) <= 1.0:
            tell_user("negative_influence measures how the negative changes classifier-free guidance, and this run "
                      "samples at cfg 1, where the negative does not enter it (NAG acts inside the model): nothing "
                      "is measured. Sample at a cfg above 1, or turn negative_influence off.")
            return
        as_conditioning = [[cond.get("cross_attn"), {key: value for key, value in cond.items()
                                                      if key not in ("cross_attn", "uuid")}] for cond in negative]
        empty = convert_cond(self.empty_in_place_of(as_conditioning))
        for cond in empty:
            cond.setdefault("prompt_type", "negative")  # encoded as the negative is (its key's name)
        self.empty_uuids = {cond["uuid"] for cond in empty}
        guider.conds[EMPTY_KEY] = empty

    def take_empty_prompt(self, guider) -> None:
        """After ComfyUI processed the conds (a SAMPLER_SAMPLE wrapper): keep the empty prompt's."""
        conds = getattr(guider, "conds", {}) or {}
        self.empty_conds = conds.get(EMPTY_KEY) if self.empty_uuids else None

    def evaluate(self, executor, model, conds, x_in, timestep, model_options) -> list:
        """calc_cond_batch for [positive, negative] with the empty prompt beside them; returns what
        ComfyUI returns for [positive, negative] and keeps the differences for `measure`."""
        empty = self.empty_conds
        if batches_alike(conds[1], empty):
            *out, empty_out = executor(model, [*conds, empty], x_in, timestep, model_options)
        else:
            out = executor(model, conds, x_in, timestep, model_options)
            empty_out = executor(model, [None, empty], x_in, timestep, model_options)[1]
        self.pending = (empty_out - out[1], out[0] - out[1])
        return out

    def measure(self, cond_scale: float):
        """(map [items, height, width], share [items]) of the evaluation just made, with its cfg;
        None when it did not evaluate the empty prompt."""
        if self.pending is None:
            return None
        empty_minus_negative, positive_minus_negative = self.pending
        self.pending = None
        influence = (float(cond_scale) - 1.0) * empty_minus_negative.float()
        guidance = float(cond_scale) * positive_minus_negative.float()
        return influence_map(influence), guidance_share(influence, guidance)


def measure_negative_influence(patched, recording, empty_in_place_of, key: str) -> None:
    """Hook the measure into `patched` (a clone that records into `recording`), inside the
    recording's own hooks (record_model.py):
    - OUTER_SAMPLE: the empty prompt into the guider's conds, before ComfyUI processes them;
    - SAMPLER_SAMPLE: its processed conds for the run, left out of the attention maps;
    - CALC_COND_BATCH: the empty prompt evaluated beside the negative, its prediction taken out;
    - a pre-cfg function: with the evaluation's cfg, the map and the share into the recording."""
    influence = NegativeInfluence(empty_in_place_of)

    def outer_sample(executor, *args, **kwargs):
        influence.add_empty_prompt(executor.class_obj)  # the guider
        return executor(*args, **kwargs)

    def sampler_sample(executor, guider, *args, **kwargs):
        influence.take_empty_prompt(guider)
        recording.ignore_conds(influence.empty_uuids)
        return executor(guider, *args, **kwargs)

    def calc_cond_batch(executor, model, conds, x_in, timestep, model_options):
        influence.pending = None
        if influence.empty_conds and recording.holds_negative(conds):
            return influence.evaluate(executor, model, conds, x_in, timestep, model_options)
        return executor(model, conds, x_in, timestep, model_options)

    def add_influence(args):
        measured = influence.measure(args["cond_scale"])
        if measured is not None:
            recording.add_influence(*measured)
        return args["conds_out"]

    patched.add_wrapper_with_key(WrappersMP.OUTER_SAMPLE, key, outer_sample)
    patched.add_wrapper_with_key(WrappersMP.SAMPLER_SAMPLE, key, sampler_sample)
    patched.add_wrapper_with_key(WrappersMP.CALC_COND_BATCH, key, calc_cond_batch)
    patched.set_model_sampler_pre_cfg_function(add_influence)


def batches_alike(negative: list, empty: list) -> bool:
    """Whether the empty prompt can join the batch without changing the others' predictions:
    ComfyUI pads the prompts batched together to a common token count (repeating the shorter),
    which a DiT's joint attention does not ignore; a prompt of the negative's own length joins the
    negative's batch and pads nothing more."""
    return token_counts(empty) <= token_counts(negative)


def token_counts(conds: list) -> set:
    return {getattr(cond.get("model_conds", {}).get("c_crossattn"), "cond", torch.zeros(0, 0)).shape[1:2]
            for cond in conds or []}


def per_item(values: torch.Tensor) -> torch.Tensor:
    """[batch, channels, (frames,) height, width] -> [items, channels, height, width], a video's
    latent frames as items in order (item = video x frames + frame), as the attention maps."""
    if values.ndim == 5:
        values = values.transpose(1, 2)
        return values.reshape(-1, *values.shape[2:])
    return values


def influence_map(influence: torch.Tensor) -> torch.Tensor:
    """[items, height, width]: the root mean square over the channels at each latent pixel."""
    return per_item(influence).pow(2).mean(dim=1).sqrt()


def guidance_share(influence: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
    """[items]: |influence| / |guidance| over each item's channels and pixels; NaN without guidance."""
    size = per_item(influence).flatten(1).norm(dim=1)
    whole = per_item(guidance).flatten(1).norm(dim=1)
    return torch.where(whole > 0, size / whole.clamp(min=torch.finfo(whole.dtype).tiny), torch.nan)
