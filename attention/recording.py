"""The state of one attention recording: which words to record, and the maps as sampling goes.

A recording is attached to a model clone (see record_model.py). Each sampling run starts it
afresh; every model evaluation is attributed to its sampler step by the same StepClock the
delayed-negative guider uses, and every attention call to the text (a UNet's cross-attention,
a DiT's joint or cross-attention) adds its maps, reduced on the device to [words, batch items,
latent height, latent width], into one running sum per step. A video's items are its frames.
With the negative's influence measured (negative_influence.py), one more track holds its map.
"""

import torch

from ..clock.step_clock import StepClock
from .maps import INFLUENCE, AttentionMaps, Track
from .joint_share import shares_from_lse, text_probabilities
from .probabilities import heads_first, word_sums

BRANCH_OF_CHUNK = {0: "positive", 1: "unconditional"}  # ComfyUI's cond_or_uncond labels
INFLUENCE_TRACK = Track(INFLUENCE, INFLUENCE, "negative influence")


class AttentionRecording:
    """Words to record per prompt, and the running sums of the current (or last) run.

    `columns` maps a prompt ("positive", "negative", "empty") to [(word, token columns)];
    `empty_embedding` is the empty prompt's encoding, to tell it from the negative in the
    unconditional branch. `negative_influence`: also keep the "negative influence" track.
    """

    def __init__(self, columns: dict[str, list[tuple[str, list[int]]]], empty_embedding: torch.Tensor | None,
                 learn_columns=None, negative_influence: bool = False):
        self.empty_embedding = empty_embedding
        self.learn_columns = learn_columns  # guider conds -> columns, for prompts read from the conditioning
        self.negative_influence = negative_influence
        self.set_columns(columns)
        self.sums = None
        self.counts = None
        self.shares = None  # [steps, items]: the influence's share of the guidance, summed over evaluations
        self.share_counts = None
        self.sigmas = ()
        self.cfg = None
        self.clock = None
        self.step = 0
        self.prompt_of_cond = {}
        self.tokens_of_cond = {}
        self.prompt_tokens_of_cond = {}
        self.positive_uuids = set()
        self.batch = 0
        self.frames = 1
        self.attention_calls = []  # per step: the attention calls to the text that reached the recording
        self.other_hooks = ()  # what else on the sampled model could compute attention around ComfyUI's

    def set_columns(self, columns: dict[str, list[tuple[str, list[int]]]]):
        self.columns = columns
        branch = {"positive": "positive", "negative": "unconditional", "empty": "unconditional"}
        self.tracks = tuple(Track(branch[prompt], prompt, word) for prompt, words in columns.items()
                            for word, _ in words) + ((INFLUENCE_TRACK,) if self.negative_influence else ())
        self.track_ids = {}
        for index, track in enumerate(self.tracks):
            self.track_ids.setdefault(track.prompt, []).append(index)
        self.gather = {}

    # --- called by the model wrappers -------------------------------------------------------

    def learn_prompts(self, guider_conds: dict):
        """Before a run: which conds are the positive prompt (by the uuid ComfyUI gives each), and
        the words of prompts that were not typed, from the conds being sampled."""
        self.positive_uuids = {cond.get("uuid") for cond in guider_conds.get("positive") or []} - {None}
        if self.learn_columns is not None:
            self.set_columns(self.learn_columns(guider_conds))

    def begin_run(self, clock: StepClock, sigmas, latent_shape, other_hooks=()):
        """A new run; `other_hooks` names what else on the model could keep attention from the
        recording (see record_model.other_hooks), for the message if none arrives."""
        steps = len(sigmas) - 1
        self.attention_calls = [0] * steps
        self.other_hooks = tuple(other_hooks)
        self.batch, height, width = latent_shape[0], latent_shape[-2], latent_shape[-1]
        self.frames = latent_shape[2] if len(latent_shape) == 5 else 1  # video latents: maps per frame
        items = self.batch * self.frames
        self.sums = torch.zeros(steps, len(self.tracks), items, height, width, device=sigmas.device)
        self.counts = torch.zeros(steps, len(self.tracks), device=sigmas.device)
        self.shares = torch.zeros(steps, items, device=sigmas.device)
        self.share_counts = torch.zeros(steps, device=sigmas.device)
        self.sigmas = tuple(float(s) for s in sigmas[:-1])
        self.cfg = torch.full((steps,), float("nan"))
        self.clock = clock
        self.prompt_of_cond = {}  # cond uuids are new on every run
        self.tokens_of_cond = {}
        self.prompt_tokens_of_cond = {}

    def begin_evaluation(self, sigma: float):
        if self.clock is not None:
            self.step = self.clock.step_of(sigma)

    def note_cfg(self, cond_scale: float):
        """The cfg ComfyUI guides the current evaluation with (for the chart's schedule line)."""
        if self.cfg is not None:
            self.cfg[self.step] = float(cond_scale)

    def add_influence(self, influence_map: torch.Tensor, share: torch.Tensor):
        """Add one evaluation's negative influence: map [items, height, width], share [items]."""
        if self.sums is None or not self.negative_influence:
            return
        track = self.tracks.index(INFLUENCE_TRACK)
        self.sums[self.step, track] += influence_map.to(self.sums)
        self.counts[self.step, track] += 1
        self.shares[self.step] += share.to(self.shares)
        self.share_counts[self.step] += 1

    def holds_negative(self, conds) -> bool:
        """Whether an evaluation's conds are [positive, unconditional] with the negative (not the
        empty prompt) in the unconditional branch: sampling_function's call, after name_conds."""
        return len(conds) == 2 and any(self.prompt_of_cond.get(cond.get("uuid")) == "negative"
                                       for cond in conds[1] or [])

    def ignore_conds(self, uuids):
        """Conds whose attention is not recorded (the empty prompt the influence measure adds)."""
        for uuid in uuids:
            self.prompt_of_cond[uuid] = INFLUENCE

    def name_conds(self, conds):
        """Remember which prompt each cond of this evaluation holds, by its uuid."""
        for chunk, cond_list in enumerate(conds):
            for cond in cond_list or []:
                self.prompt_of_cond[cond.get("uuid")] = self.prompt_of(chunk, cond)
                crossattn = getattr(cond.get("model_conds", {}).get("c_crossattn"), "cond", None)
                self.tokens_of_cond[cond.get("uuid")] = None if crossattn is None else crossattn.shape[1]
                prompt = prompt_conditioning(cond)
                self.prompt_tokens_of_cond[cond.get("uuid")] = None if prompt is None else prompt.shape[1]

    def prompt_of(self, chunk: int, cond: dict) -> str:
        # By uuid where the guider's conds are known: another node's own evaluation of the
        # unconditional cond alone (Self-Attention Guidance's blurred pass) puts it in chunk 0.
        if cond.get("uuid") in self.positive_uuids or (not self.positive_uuids and chunk == 0):
            return "positive"
        tensor = prompt_conditioning(cond)
        empty = self.empty_embedding
        if tensor is not None and empty is not None and tensor.shape[1:] == empty.shape[1:] \
                and torch.equal(tensor[:1].to(empty), empty[:1]):
            return "empty"
        return "negative"

    def columns_to_gather(self, prompt: str, tokens: int, device, own_tokens: int | None = None, offset: int = 0):
        """(sorted columns, each word's columns, the columns as an index tensor) for a prompt whose
        encoding has `tokens` columns; worked out once, not on every attention call.

        When ComfyUI batches prompts of different lengths (a two-chunk positive beside a one-chunk
        negative) it repeats the shorter one's tokens up to the longer's: `own_tokens` is the
        prompt's own length, and a word's columns in every copy count. `offset`: where the prompt's
        column 0 sits in its own length (Flux.2 pads the conditioning in front).
        """
        key = (prompt, tokens, device, own_tokens, offset)
        if key not in self.gather:
            own = own_tokens if own_tokens and tokens % own_tokens == 0 else tokens
            words = [[offset + c + copy * own for copy in range(tokens // own) for c in columns if offset + c < own]
                     for _, columns in self.columns[prompt]]
            columns = sorted({c for word in words for c in word})
            self.gather[key] = columns, words, torch.tensor(columns, device=device)
        return self.gather[key]

    def add(self, q, k, heads, extra_options, lse=None):
        """Add one UNet cross-attention call's maps (q, k as ComfyUI's attention receives them; `lse`
        the kernel's log-sum-exp of the call, [batch, heads, queries], where it gave one)."""
        if self.sums is None:
            return
        self.attention_calls[self.step] += 1
        height, width = extra_options["activations_shape"][-2:]  # this layer's resolution
        if tuple(extra_options["original_shape"][-2:]) != tuple(self.sums.shape[-2:]):
            return  # an area-restricted chunk (ConditioningSetArea): its maps do not cover the image

        def probabilities(rows, columns):
            queries, keys = heads_first(q[rows], heads), heads_first(k[rows], heads)
            if lse is not None:
                return shares_from_lse(queries, keys, columns, lse[rows])
            return text_probabilities(queries, keys, columns)

        def to_latent(per_word):
            maps = per_word.reshape(per_word.shape[0], per_word.shape[1], height, width)
            if (height, width) != tuple(self.sums.shape[-2:]):
                maps = torch.nn.functional.interpolate(maps, size=self.sums.shape[-2:], mode="bilinear",
                                                       align_corners=False)
            return maps.transpose(0, 1)

        self.add_call(extra_options, q.shape[0], k.shape[1], q.device, probabilities, to_latent)

    def add_text_attention(self, call, layout):
        """Add one DiT attention call's maps: the image tokens' share of each word's text columns
        (joint attention's exact share, see joint_share.py), for a dit_hooks.TextAttentionCall."""
        if self.sums is None:
            return
        self.attention_calls[self.step] += 1
        if (layout.latent[0] * self.batch, *layout.latent[1:]) != tuple(self.sums.shape[2:]):
            return  # an area-restricted chunk: its maps do not cover the image
        image = slice(layout.image_start, layout.image_start + layout.image_tokens)
        queries, mask = call.queries[:, :, image], call.mask
        if mask is not None and mask.ndim >= 2 and mask.shape[-2] > 1:
            mask = mask[..., image, :]

        lse = None if call.lse is None else call.lse[:, :, image]

        def probabilities(rows, columns):
            # ComfyUI's masks: [keys], [queries, keys], or with the batch first ([batch, queries, keys],
            # [batch, heads, queries, keys]); a batch of masks is cut to the chunk's rows
            rows_mask = mask[rows] if mask is not None and mask.ndim >= 3 and mask.shape[0] > 1 else mask
            if lse is not None:
                return shares_from_lse(queries[rows], call.keys[rows], columns + layout.text_start, lse[rows],
                                       rows_mask)
            return text_probabilities(queries[rows], call.keys[rows], columns + layout.text_start, rows_mask)

        self.add_call(call.options, queries.shape[0], layout.text_tokens, queries.device, probabilities,
                      layout.to_latent, layout.prompt_offset)

    def add_call(self, options, rows, tokens, device, probabilities, to_latent, prompt_offset=None):
        """Add one attention call: `probabilities(rows, columns)` gives [batch, pixels, columns] for
        a chunk's rows and its prompt's text columns; `to_latent` turns [batch, words, pixels] into
        [words, batch items, height, width] at the latent's resolution; `prompt_offset(prompt's own
        token count)` where a prompt's column 0 sits in the text (None: at 0)."""
        chunks = options.get("cond_or_uncond", [])
        uuids = options.get("uuids", [None] * len(chunks))
        batch = self.batch
        if rows != batch * len(chunks):
            return  # an area-restricted chunk batched on its own
        for index, uuid in enumerate(uuids):
            prompt = self.prompt_of_cond.get(uuid, "positive" if chunks[index] == 0 else "negative")
            if not self.columns.get(prompt):
                continue
            offset = prompt_offset(self.prompt_tokens_of_cond.get(uuid)) if prompt_offset else 0
            columns, word_columns, index_tensor = self.columns_to_gather(prompt, tokens, device,
                                                                         self.tokens_of_cond.get(uuid), offset)
            if not columns:
                continue
            chunk_rows = slice(index * batch, (index + 1) * batch)
            per_word = word_sums(probabilities(chunk_rows, index_tensor), word_columns, columns)
            ids = self.track_ids[prompt]
            self.sums[self.step, ids] += to_latent(per_word).to(self.sums)
            self.counts[self.step, ids] += 1

    # --- read by the nodes ------------------------------------------------------------------

    def snapshot(self) -> AttentionMaps:
        """The maps of the last run, averaged over the layers and evaluations of each step."""
        if self.sums is None:
            raise ValueError("No attention was recorded: connect the MODEL output of Record Attention Maps "
                             "to the sampler, and the sampler's LATENT output to Collect Attention Maps.")
        evaluated = torch.tensor([calls > 0 for calls in self.attention_calls], dtype=torch.bool)
        if len(evaluated) and not evaluated.any():
            raise ValueError(hidden_attention_message(self.other_hooks))
        counts = self.counts[:, :, None, None, None]
        # in place after the one division: the maps and the sums are all a long video's run holds
        maps = (self.sums / counts.clamp(min=1)).masked_fill_(counts == 0, float("nan"))
        share = None
        if self.negative_influence:
            share_counts = self.share_counts[:, None]
            share = torch.where(share_counts > 0, self.shares / share_counts.clamp(min=1), torch.nan).cpu()
        return AttentionMaps(self.tracks, maps.cpu(), self.sigmas, self.cfg.clone(), self.frames, evaluated, share)


def prompt_conditioning(cond: dict):
    """The conditioning a cond was encoded to, before the model's own changes (Flux.2 pads it in
    front): ComfyUI keeps it as "cross_attn" beside the model's c_crossattn."""
    tensor = cond.get("cross_attn")
    if tensor is None:
        tensor = getattr(cond.get("model_conds", {}).get("c_crossattn"), "cond", None)
    return tensor


def hidden_attention_message(other_hooks) -> str:
    """What to tell a user whose run sampled the model but showed the recording no attention."""
    suspects = ", ".join(other_hooks) if other_hooks else "none that ComfyUI lists (a pack may replace the model)"
    return ("No attention reached Record Attention Maps in this run, though the model was sampled: something on "
            "the model computed the image without ComfyUI's attention functions (a cache that skipped every "
            f"evaluation, or a pack that replaces the model's blocks). Other hooks on this model: {suspects}. "
            "Bypass those nodes while recording, or lower the cache's threshold so that it evaluates the model; "
            "the image itself was not changed by the recording.")
