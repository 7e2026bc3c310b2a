"""From the node's prompt texts and word lists to the token columns a recording needs."""

from .prompt_words import END, find_word_columns, prompt_words


def chosen_words(words: str) -> list[str]:
    return [word.strip() for word in words.split(",") if word.strip()]


def columns_for(clip, prompt: str, words: str, label: str) -> list[tuple[str, list[int]]]:
    """[(word, columns)] for a comma-separated list of words of `prompt`; an empty list: every word."""
    if not prompt.strip():
        return []
    tokens = clip.tokenize(prompt, return_word_ids=True)
    wanted = chosen_words(words) or [word.text for word in prompt_words(tokens, prompt, label) if word.columns]
    found = find_word_columns(tokens, prompt, wanted, label)
    return [(word, columns) for word, columns in found.items() if columns]


def recording_columns(clip, positive_prompt: str, negative_prompt: str, positive_words: str,
                      negative_words: str) -> dict[str, list[tuple[str, list[int]]]]:
    """Columns per prompt: the positive and negative words, and the empty prompt's <end> token,
    which stands for the empty prompt in the unconditional branch before a delayed negative."""
    empty = clip.tokenize("", return_word_ids=True)
    return {
        "positive": columns_for(clip, positive_prompt, positive_words, "positive prompt"),
        "negative": columns_for(clip, negative_prompt, negative_words, "negative prompt"),
        "empty": list(find_word_columns(empty, "", [END], "empty prompt").items()),
    }
