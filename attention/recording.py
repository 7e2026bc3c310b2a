"""The state of one attention recording: which words to record, and the maps as sampling goes.

A recording is attached to a model clone (see record_model.py). Each sampling run starts it
afresh; every model evaluation is attributed to its sampler step by the same StepClock the
delayed-negative guider uses, and every cross-attention call adds its maps, reduced on the
device to [batch, words, latent height, latent width], into one running sum per step.
"""

import torch

from ..samplers.step_clock import StepClock
from .maps import AttentionMaps, Track
from .probabilities import column_probabilities, word_sums

BRANCH_OF_CHUNK = {0: "positive", 1: "unconditional"}  # ComfyUI's cond_or_uncond labels


class AttentionRecording:
    """Words to record per prompt, and the running sums of the current (or last) run.

    `columns` maps a prompt ("positive", "negative", "empty") to [(word, token columns)];
    `empty_embedding` is the empty prompt's encoding, to tell it from the negative in the
    unconditional branch.
    """

    def __init__(self, columns: dict[str, list[tuple[str, list[int]]]], empty_embedding: torch.Tensor | None,
                 learn_columns=None):
        self.empty_embedding = empty_embedding
        self.learn_columns = learn_columns  # guider conds -> columns, for prompts read from the conditioning
        self.set_columns(columns)
        self.sums = None
        self.counts = None
        self.sigmas = ()
        self.cfg = None
        self.clock = None
        self.step = 0
        self.prompt_of_cond = {}

    def set_columns(self, columns: dict[str, list[tuple[str, list[int]]]]):
        self.columns = columns
        branch = {"positive": "positive", "negative": "unconditional", "empty": "unconditional"}
        self.tracks = tuple(Track(branch[prompt], prompt, word) for prompt, words in columns.items()
                            for word, _ in words)
        self.track_ids = {}
        for index, track in enumerate(self.tracks):
            self.track_ids.setdefault(track.prompt, []).append(index)
        self.gather = {}

    # --- called by the model wrappers -------------------------------------------------------

    def learn_prompts(self, guider_conds: dict):
        """Before a run: the words of prompts that were not typed, from the conds being sampled."""
        if self.learn_columns is not None:
            self.set_columns(self.learn_columns(guider_conds))

    def begin_run(self, clock: StepClock, sigmas, latent_shape):
        steps = len(sigmas) - 1
        batch, height, width = latent_shape[0], latent_shape[-2], latent_shape[-1]
        self.sums = torch.zeros(steps, len(self.tracks), batch, height, width, device=sigmas.device)
        self.counts = torch.zeros(steps, len(self.tracks), device=sigmas.device)
        self.sigmas = tuple(float(s) for s in sigmas[:-1])
        self.cfg = torch.full((steps,), float("nan"))
        self.clock = clock
        self.prompt_of_cond = {}  # cond uuids are new on every run

    def begin_evaluation(self, sigma: float):
        if self.clock is not None:
            self.step = self.clock.step_of(sigma)

    def note_cfg(self, cond_scale: float):
        """The cfg ComfyUI guides the current evaluation with (for the chart's schedule line)."""
        if self.cfg is not None:
            self.cfg[self.step] = float(cond_scale)

    def name_conds(self, conds):
        """Remember which prompt each cond of this evaluation holds, by its uuid."""
        for chunk, cond_list in enumerate(conds):
            for cond in cond_list or []:
                self.prompt_of_cond[cond.get("uuid")] = self.prompt_of(chunk, cond)

    def prompt_of(self, chunk: int, cond: dict) -> str:
        if chunk == 0:
            return "positive"
        crossattn = cond.get("model_conds", {}).get("c_crossattn")
        tensor = getattr(crossattn, "cond", None)
        empty = self.empty_embedding
        if tensor is not None and empty is not None and tensor.shape[1:] == empty.shape[1:] \
                and torch.equal(tensor[:1].to(empty), empty[:1]):
            return "empty"
        return "negative"

    def columns_to_gather(self, prompt: str, tokens: int, device):
        """(sorted columns, each word's columns, the columns as an index tensor) for a prompt whose
        encoding has `tokens` columns; worked out once, not on every cross-attention call."""
        key = (prompt, tokens, device)
        if key not in self.gather:
            words = [[c for c in columns if c < tokens] for _, columns in self.columns[prompt]]
            columns = sorted({c for word in words for c in word})
            self.gather[key] = columns, words, torch.tensor(columns, device=device)
        return self.gather[key]

    def add(self, q, k, heads, extra_options):
        """Add one cross-attention call's maps (q, k as ComfyUI's attention receives them)."""
        if self.sums is None:
            return
        chunks = extra_options.get("cond_or_uncond", [])
        uuids = extra_options.get("uuids", [None] * len(chunks))
        height, width = extra_options["activations_shape"][-2:]  # this layer's resolution
        batch = self.sums.shape[2]
        if tuple(extra_options["original_shape"][-2:]) != tuple(self.sums.shape[-2:]) \
                or q.shape[0] != batch * len(chunks):
            return  # an area-restricted chunk (ConditioningSetArea): its maps do not cover the image
        for index, uuid in enumerate(uuids):
            prompt = self.prompt_of_cond.get(uuid, "positive" if chunks[index] == 0 else "negative")
            words = self.columns.get(prompt)
            if not words:
                continue
            columns, word_columns, index_tensor = self.columns_to_gather(prompt, k.shape[1], q.device)
            if not columns:
                continue
            rows = slice(index * batch, (index + 1) * batch)
            probabilities = column_probabilities(q[rows], k[rows], heads, index_tensor)
            per_word = word_sums(probabilities, word_columns, columns)
            maps = per_word.reshape(batch, len(words), height, width)
            if (height, width) != tuple(self.sums.shape[-2:]):
                maps = torch.nn.functional.interpolate(maps, size=self.sums.shape[-2:], mode="bilinear",
                                                       align_corners=False)
            ids = self.track_ids[prompt]
            self.sums[self.step, ids] += maps.transpose(0, 1).to(self.sums)
            self.counts[self.step, ids] += 1

    # --- read by the nodes ------------------------------------------------------------------

    def snapshot(self) -> AttentionMaps:
        """The maps of the last run, averaged over the layers and evaluations of each step."""
        if self.sums is None:
            raise ValueError("No attention was recorded: connect the MODEL output of Record Attention Maps "
                             "to the sampler, and the sampler's LATENT output to Collect Attention Maps.")
        counts = self.counts[:, :, None, None, None]
        maps = torch.where(counts > 0, self.sums / counts.clamp(min=1), torch.full_like(self.sums, float("nan")))
        return AttentionMaps(self.tracks, maps.cpu(), self.sigmas, self.cfg.clone())
