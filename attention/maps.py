"""The recorded attention maps of one sampling run: what downstream nodes take."""

import math
from dataclasses import dataclass

import torch

BRANCHES = ("positive", "unconditional", "influence")
INFLUENCE = "influence"  # the branch and prompt of the negative-influence track (negative_influence.py)


@dataclass(frozen=True)
class Track:
    """One word recorded in one branch: the positive prompt's words in the positive branch; the
    negative prompt's words, and the empty prompt's tokens, in the unconditional branch. One more
    track, "negative influence" in branch and prompt "influence", holds no attention but how much
    the negative changed the guided prediction (negative_influence.py)."""

    branch: str  # "positive", "unconditional" or "influence"
    prompt: str  # "positive", "negative", "empty" or "influence"
    word: str

    @property
    def label(self) -> str:
        return self.word if self.prompt != "empty" else f"{self.word} (empty prompt)"


@dataclass(frozen=True)
class AttentionMaps:
    """Cross-attention per step, word and batch item, averaged over heads and layers.

    `maps` is float32 [steps, tracks, items, height, width] at the latent's resolution, each value
    the share of a pixel's attention that went to the word's tokens. NaN marks a step at which
    the track's prompt was not in its branch (the negative before a delayed negative starts, the
    empty prompt after, or an unconditional branch skipped at cfg 1). `sigmas` are the sigmas
    the steps start at; `cfg` [steps] the cfg ComfyUI guided each step with (1: no guidance),
    NaN where unknown, or None where it was not recorded. The items are the batch's images; for a
    video latent, each video's `frames` latent frames in order (item = video x frames + frame).
    `evaluated` [steps] is False at a step where the model was not evaluated (a cache such as
    EasyCache reused an earlier prediction): every track is NaN there, and the views say "not
    evaluated" rather than leave a hole; None means every step was evaluated.

    The "negative influence" track, where recorded, is in latent units instead of attention
    shares (see negative_influence.py), and `influence_share` [steps, items] is its share of the
    whole guidance per step, NaN where the negative was not in force (None: not measured).
    """

    tracks: tuple[Track, ...]
    maps: torch.Tensor
    sigmas: tuple[float, ...]
    cfg: torch.Tensor | None = None
    frames: int = 1
    evaluated: torch.Tensor | None = None
    influence_share: torch.Tensor | None = None

    @property
    def steps(self) -> int:
        return self.maps.shape[0]

    def influence_tracks(self) -> list[int]:
        """The tracks that hold the negative's influence rather than attention."""
        return [index for index, track in enumerate(self.tracks) if track.branch == INFLUENCE]

    def steps_not_evaluated(self) -> list[int]:
        """The steps at which the model was not evaluated (a cache skipped it)."""
        if self.evaluated is None:
            return []
        return [step for step, evaluated in enumerate(self.evaluated.tolist()) if not evaluated]

    def track_index(self, word: str, branch: str | None = None) -> int:
        """The first track for `word` (case-insensitive), optionally in one branch."""
        for index, track in enumerate(self.tracks):
            if track.word.lower() == word.strip().lower() and branch in (None, track.branch):
                return index
        known = ", ".join(track.word for track in self.tracks)
        raise ValueError(f"'{word.strip()}' was not recorded. Recorded words: {known}. "
                         "Add it to the words of Record Attention Maps.")

    def select(self, words: str) -> list[int]:
        """Track indices for a comma-separated list of words; an empty list means every track."""
        chosen = [word for word in words.split(",") if word.strip()]
        return [self.track_index(word) for word in chosen] if chosen else list(range(len(self.tracks)))

    def strength(self) -> torch.Tensor:
        """Mean attention over the image: [steps, tracks, items], NaN where absent."""
        return self.maps.mean(dim=(-2, -1))

    def video_of(self, item: int) -> list[int]:
        """The items of the video holding `item`, its frames in order ([item] for an image)."""
        first = item - item % self.frames
        return list(range(first, first + self.frames))

    def items_for_images(self, count: int) -> list[int] | None:
        """Which item each of `count` decoded images shows, or None when they do not match.

        One image per item; or a batch of decoded videos, whose VAE makes 1 + k x (frames - 1)
        images of `frames` latent frames (Wan's k is 4): the first image comes from the first
        latent frame, each next k from the next one.
        """
        items = self.maps.shape[2]
        if count == items:
            return list(range(items))
        videos = items // self.frames
        if self.frames < 2 or count % videos or (count // videos - 1) % (self.frames - 1):
            return None
        per_video = count // videos
        stride = (per_video - 1) // (self.frames - 1)
        return [video * self.frames + math.ceil(image / stride) for video in range(videos)
                for image in range(per_video)]

    def image_of_each_item(self, count: int) -> list[int]:
        """Which of `count` decoded images to show under each item: all of them, or for a decoded
        video the first image each latent frame made."""
        order = self.items_for_images(count)
        if order is None or count == self.maps.shape[2]:
            return list(range(count))
        return [order.index(item) for item in range(self.maps.shape[2])]
