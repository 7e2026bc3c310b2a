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
