"""Prompts entered once: the recorder reads each prompt's text from the conditioning it samples.

CLIP Text Encode (Attention Words) encodes exactly like the stock CLIP Text Encode and adds one
entry to each cond's options: PROMPT_KEY, the text and the encoding it made. ComfyUI's
conditioning nodes copy those options along, so at sampling time the recorder finds, in the
guider's conds, which text each branch holds, and works out its words' columns itself (the same
word → token mapping as for typed prompts, attention/words.py). Where a conditioning node changed
the encoding after it was made, the recorder says what that means for the maps:
- Conditioning Combine (several prompts in one branch): the maps follow one prompt per branch,
  so several different texts are refused with a clear message;
- Conditioning Concat (more columns than the text's encoding): the text's own columns are
  mapped, the appended ones are not; the user is told;
- Conditioning Average and the like (same shape, other values): the columns hold blends of
  prompts; the maps are still labelled with this text's words, and the user is told.
Area and timestep settings leave the encoding as it was.
"""

from dataclasses import dataclass

import torch

from ..clock.notice import tell_user

PROMPT_KEY = "delayed_negative_prompt"


@dataclass(frozen=True)
class EncodedPrompt:
    """A prompt's text and the encoding CLIP Text Encode (Attention Words) made of it."""

    text: str
    encoding: torch.Tensor


def with_prompt(conditioning, text: str):
    """The conditioning with each cond's options carrying its text (a new list: the input stays)."""
    return [[tensor, {**options, PROMPT_KEY: EncodedPrompt(text, tensor)}] for tensor, options in conditioning]


def prompt_of_branch(guider_conds: dict, branch: str) -> str | None:
    """The text the guider's `branch` conds were encoded from, or None if they do not say.

    Raises ValueError for several different texts in one branch; tells the user when the
    encoding was changed after it was made.
    """
    prompts = []
    for cond in guider_conds.get(branch) or []:
        encoded = cond.get(PROMPT_KEY)
        if encoded is None:
            continue
        check_unchanged(encoded, cond.get("cross_attn"), branch)
        if encoded.text not in prompts:
            prompts.append(encoded.text)
    if len(prompts) > 1:
        listed = "; ".join(f"'{text}'" for text in prompts)
        raise ValueError(f"The {branch} conditioning combines {len(prompts)} prompts ({listed}), and the attention "
                         f"maps follow one prompt per branch. Record one of them: type it into Record Attention "
                         f"Maps' {branch}_prompt, or combine after a single CLIP Text Encode (Attention Words).")
    return prompts[0] if prompts else None


def check_unchanged(encoded: EncodedPrompt, sampled, branch: str) -> None:
    if sampled is None or sampled is encoded.encoding:
        return
    made = encoded.encoding
    if sampled.shape[1] > made.shape[1] and torch.equal(sampled[:, :made.shape[1]].to(made), made):
        tell_user(f"The {branch} prompt '{encoded.text}' was concatenated with another conditioning: its own "
                  f"{made.shape[1]} token columns are recorded, the {sampled.shape[1] - made.shape[1]} appended "
                  "ones are not.")
    elif sampled.shape != made.shape or not torch.equal(sampled.to(made), made):
        tell_user(f"The {branch} conditioning was changed after '{encoded.text}' was encoded (Conditioning "
                  "Average or the like): its columns hold a blend, and the maps are labelled with this prompt's "
                  "words.")
