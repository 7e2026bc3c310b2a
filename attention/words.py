"""From the prompt texts and word lists to the token columns a recording needs.

A prompt's text is typed into Record Attention Maps, or, when left empty there, read at sampling
time from the conditioning the sampler was given (conditioning_prompts.py).
"""

from .conditioning_prompts import prompt_of_branch
from .prompt_words import END
from .text_encoders import every_word, word_columns

BRANCHES = ("positive", "negative")


def chosen_words(words: str) -> list[str]:
    return [word.strip() for word in words.split(",") if word.strip()]


def columns_for(clip, prompt: str, words: str, label: str) -> list[tuple[str, list[int]]]:
    """[(word, columns)] for a comma-separated list of words of `prompt`; an empty list: every word."""
    if not prompt.strip():
        return []
    tokens = clip.tokenize(prompt, return_word_ids=True)
    wanted = chosen_words(words) or every_word(clip, prompt, label, tokens)
    found = word_columns(clip, prompt, wanted, label, tokens)
    return [(word, columns) for word, columns in found.items() if columns]


def recording_columns(clip, positive_prompt: str, negative_prompt: str, positive_words: str,
                      negative_words: str) -> dict[str, list[tuple[str, list[int]]]]:
    """Columns per prompt: the positive and negative words, and the empty prompt's <end> token,
    which stands for the empty prompt in the unconditional branch before a delayed negative."""
    return {
        "positive": columns_for(clip, positive_prompt, positive_words, "positive prompt"),
        "negative": columns_for(clip, negative_prompt, negative_words, "negative prompt"),
        "empty": empty_columns(clip),
    }


def empty_columns(clip) -> list[tuple[str, list[int]]]:
    return list(word_columns(clip, "", [END], "empty prompt").items())


class ColumnsFromConditioning:
    """Columns per prompt for one sampling run: a typed prompt as typed, an empty one from the
    text that the guider's conds of that branch were encoded from."""

    def __init__(self, clip, typed: dict[str, str], words: dict[str, str]):
        self.clip = clip
        self.typed = typed
        self.words = words
        self.empty = empty_columns(clip)

    def __call__(self, guider_conds: dict) -> dict[str, list[tuple[str, list[int]]]]:
        columns, found = {}, {}
        for branch in BRANCHES:
            text = self.typed[branch] if self.typed[branch].strip() else prompt_of_branch(guider_conds, branch)
            found[branch] = text is not None
            columns[branch] = columns_for(self.clip, text or "", self.words[branch], f"{branch} prompt")
        columns["empty"] = self.empty
        if not any(found.values()):
            raise ValueError("Record Attention Maps does not know the prompts: encode them with CLIP Text Encode "
                             "(Attention Words) instead of CLIP Text Encode (then nothing is typed twice), or type "
                             "them into its positive_prompt and negative_prompt.")
        return columns
