"""The empty-prompt conditioning the paper puts in the unconditional branch before the negative."""

import weakref

_encoded = weakref.WeakKeyDictionary()


def empty_prompt(clip):
    """Encode "" exactly as CLIPTextEncode does, once per CLIP object.

    CLIP objects are never changed in place in ComfyUI (LoRA and layer nodes clone them), so
    the encoding can be kept for as long as the CLIP lives; re-encoding on every run would
    cost a text-encoder pass the stock workflow (a cached CLIPTextEncode node) does not pay.
    """
    if clip not in _encoded:
        _encoded[clip] = clip.encode_from_tokens_scheduled(clip.tokenize(""))
    return _encoded[clip]


# The negative's own timestep range: where the negative acts, not where the empty prompt does.
TIMING_KEYS = ("timestep_start", "timestep_end")


def empty_in_place_of(negative, empty):
    """The empty prompt with everything the nodes after the negative's encoder added to it (a
    ControlNet, hooks, a mask or area, strength), one entry per entry of the negative.

    A stock two-pass workflow sends the empty prompt through the same Apply ControlNet or
    conditioning nodes as the negative (they take the positive and the negative together), so
    that is the reference: only the text, and what the encoder made of it, is the empty prompt's.
    The negative's own timestep range stays with the negative (it bounds where the negative acts,
    not where the empty prompt does). Nothing is changed in place.
    """
    text, encoded = empty[0][0], empty[0][1]
    entries = []
    for _tensor, options in negative:
        carried = {key: value for key, value in options.items() if key not in encoded and key not in TIMING_KEYS}
        entries.append([text, {**carried, **encoded}])
    return entries
