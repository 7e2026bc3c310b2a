"""The prompt vocabulary of the toy model: captions in words, and the variants it is trained on.

The model sees the full caption of a drawing most of the time, the empty prompt sometimes (so
classifier-free guidance has an unconditional branch), and sometimes only the words of some of
its objects ("glasses", "a red hat"): that is what lets a negative prompt such as "glasses"
name something the model can draw, the way the paper's negatives do.
"""

import itertools

import numpy as np

SUBJECT = "portrait photo of a man"
HAT_COLOURS = ("red", "blue", "green", "yellow")
EMPTY_PROBABILITY = 0.1
OBJECTS_ONLY_PROBABILITY = 0.2


def object_phrases(glasses: bool, mustache: bool, hat: str | None) -> list[str]:
    phrases = []
    if glasses:
        phrases.append("glasses")
    if mustache:
        phrases.append("a mustache")
    if hat is not None:
        phrases.append(f"a {hat} hat")
    return phrases


def join_phrases(phrases: list[str]) -> str:
    if len(phrases) <= 1:
        return "".join(phrases)
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def caption_for(glasses: bool, mustache: bool, hat: str | None) -> str:
    """'portrait photo of a man with glasses, a mustache and a red hat' (objects in that order)."""
    phrases = object_phrases(glasses, mustache, hat)
    return SUBJECT + (" with " + join_phrases(phrases) if phrases else "")


def training_caption(glasses: bool, mustache: bool, hat: str | None, rng: np.random.Generator) -> str:
    """The caption one training example is shown with: full, empty, or some of its objects only."""
    draw = rng.random()
    if draw < EMPTY_PROBABILITY:
        return ""
    phrases = object_phrases(glasses, mustache, hat)
    if draw < EMPTY_PROBABILITY + OBJECTS_ONLY_PROBABILITY and phrases:
        chosen = [p for p in phrases if rng.random() < 0.5] or [phrases[rng.integers(len(phrases))]]
        return join_phrases([p.removeprefix("a ") for p in chosen])
    return caption_for(glasses, mustache, hat)


def all_captions() -> list[str]:
    """Every caption `training_caption` can return, sorted: the text embeddings to precompute."""
    captions = {""}
    for glasses, mustache, hat in itertools.product((False, True), (False, True), (None, *HAT_COLOURS)):
        captions.add(caption_for(glasses, mustache, hat))
        phrases = [p.removeprefix("a ") for p in object_phrases(glasses, mustache, hat)]
        for size in range(1, len(phrases) + 1):
            for chosen in itertools.combinations(phrases, size):
                captions.add(join_phrases(list(chosen)))
    return sorted(captions)
