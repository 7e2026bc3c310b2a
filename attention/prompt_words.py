"""Which token columns of the cross-attention belong to which word of a prompt.

ComfyUI encodes a prompt in chunks of 77 tokens, ``[<start>, up to 75 tokens, <end>, padding]``,
and concatenates the encoded chunks along the token axis, so chunk ``c``, position ``p`` is column
``c * 77 + p`` of every cross-attention map. This module says which columns hold which word, from
what ``clip.tokenize(text, return_word_ids=True)`` returns and the same text.

ComfyUI's word ids alone cannot answer that. In ComfyUI 0.3.75 a "word id" numbers a *piece* of the
prompt: the text between weight brackets, or an ``embedding:`` name, or the text after one. So
``"portrait photo of a man"`` is one id for five words, and ``"a (mustache:1.3), hat"`` has three
ids: ``"a "``, ``"mustache"``, ``", hat"``. We therefore rebuild those pieces with ComfyUI's own
weight parser, split each piece on whitespace, and tokenize every word alone with the same CLIP
tokenizer. CLIP's pre-tokenizer never joins characters across whitespace, so the words' tokens laid
end to end must equal the piece's tokens; we check that, so a text that does not fit its tokens is
an error, never a wrong map.

Long prompts: ComfyUI moves a piece shorter than 8 tokens whole to the next chunk, but cuts a longer
piece at the chunk boundary, even inside a word. Columns are taken token by token, so a word cut in
two simply gets the columns on both sides of the ``<end>``/``<start>`` pair.
"""

from __future__ import annotations

import functools
import numbers
import re
from dataclasses import dataclass, field

START = "<start>"
END = "<end>"

# ComfyUI's SDTokenizer.embedding_identifier: "embedding:NAME" inserts a textual inversion.
EMBEDDING_PREFIX = "embedding:"


@dataclass(frozen=True)
class PromptWord:
    """One whitespace-separated word of a prompt and the token columns it occupies.

    ``text`` is the word as typed, without weight syntax and without punctuation around it:
    ``"(mustache:1.3),"`` gives ``"mustache"``. A textual-inversion embedding keeps its prefix,
    ``"embedding:myemb"``. ``columns`` are sorted column indices into the cross-attention's token
    axis; they are empty when ComfyUI gave the word no tokens (an embedding file it could not find).
    ``is_embedding`` is true when the tokens are embedding vectors rather than CLIP tokens.
    """

    text: str
    columns: tuple[int, ...]
    is_embedding: bool = False
    _names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        lowered = self.text.lower()
        names = {lowered}
        # Users ask for an embedding by its file name as often as by what they typed.
        if lowered.startswith(EMBEDDING_PREFIX):
            names.add(lowered[len(EMBEDDING_PREFIX):])
        # An embedding file may be named "x," and keeps the comma; "x" should still find it.
        names |= {_bare(name) for name in names}
        object.__setattr__(self, "_names", frozenset(names))

    def matches(self, requested: str) -> bool:
        """True when ``requested`` (one word, any case, punctuation around it ignored) is this word."""
        return _bare(requested).lower() in self._names


def special_columns(tokens: dict) -> dict[str, list[int]]:
    """Columns of the ``<start>`` and ``<end>`` token of every chunk.

    ``tokens`` is what ``clip.tokenize(text, return_word_ids=True)`` returns. Returns
    ``{"<start>": [0, 77, ...], "<end>": [6, 153, ...]}``, one column per chunk. They exist for
    every prompt, the empty one included (``{"<start>": [0], "<end>": [1]}``), which is why
    ``find_word_columns`` accepts them as words. Padding after ``<end>`` is in neither list.
    """
    starts, ends = [], []
    offset = 0
    for chunk in _word_id_chunks(tokens):
        word_ids = [word_id for _token, _weight, word_id in chunk]
        content = [position for position, word_id in enumerate(word_ids) if word_id != 0]
        has_start = bool(word_ids) and word_ids[0] == 0
        if has_start:
            starts.append(offset)
        end = content[-1] + 1 if content else int(has_start)
        if end < len(chunk):
            ends.append(offset + end)
        offset += len(chunk)
    return {START: starts, END: ends}


def prompt_words(tokens: dict, prompt: str, prompt_label: str = "prompt") -> list[PromptWord]:
    """The words of ``prompt`` in order, each with its token columns.

    ``tokens`` must be what ``clip.tokenize(prompt, return_word_ids=True)`` returned for this very
    text. ``prompt_label`` ("positive prompt", ...) names the prompt in error messages. Raises
    ``ValueError`` when the tokens do not come from a CLIP tokenizer reading this text.
    """
    from comfy import sd1_clip  # imported late: importing it sets up ComfyUI's devices

    reader = _PieceReader(_tokens_by_word_id(_word_id_chunks(tokens)))
    for piece in _pieces(prompt, sd1_clip):
        if not reader.read(piece):
            raise _mismatch(prompt_label)
    if not reader.used_every_word_id():
        raise _mismatch(prompt_label)
    return reader.words


class _PieceReader:
    """Walks ComfyUI's pieces of a prompt alongside its word ids (1, 2, ...), collecting words.

    Each ``read`` returns False when the piece's tokens are not the ones under the next word id.
    """

    def __init__(self, groups: dict[int, list[tuple[int, object]]]):
        self.groups = groups
        self.next_id = 1
        self.words: list[PromptWord] = []

    def read(self, piece: str) -> bool:
        if piece.startswith(EMBEDDING_PREFIX):
            return self._read_embedding(piece)
        return self._read_text(piece)

    def used_every_word_id(self) -> bool:
        return all(word_id < self.next_id for word_id in self.groups)

    def _read_text(self, piece: str) -> bool:
        piece_words = _split_piece(piece, self.groups.get(self.next_id, []))
        if piece_words is None:
            return False
        self.words += piece_words
        self.next_id += 1
        return True

    def _read_embedding(self, piece: str) -> bool:
        group = self.groups.get(self.next_id, [])
        found = bool(group) and not any(isinstance(token, numbers.Integral) for _column, token in group)
        if not found and self._read_text(piece):
            return True  # the CLIP has no embeddings folder: ComfyUI reads "embedding:x" as text
        name, leftovers = _embedding_name_and_leftovers(piece)
        if found:
            self.next_id += 1
            leftover = leftovers[-1]
            after = self.groups.get(self.next_id, [])
            if len(leftovers) == 2 and _split_piece(leftovers[0], after) is not None:
                name, leftover = name.strip(","), leftovers[0]  # found only without its commas
            self.words.append(PromptWord(EMBEDDING_PREFIX + name, tuple(c for c, _t in group), True))
        else:
            # ComfyUI warned "embedding:... does not exist, ignoring" and gave the name no tokens.
            leftover = leftovers[0]
            self.words.append(PromptWord(EMBEDDING_PREFIX + name.strip(","), (), True))
        return leftover == "" or self._read_text(leftover)


def find_word_columns(
    tokens: dict, prompt: str, words: list[str], prompt_label: str = "prompt"
) -> dict[str, list[int]]:
    """Token columns of each requested word of a prompt.

    ``tokens`` is what ``clip.tokenize(prompt, return_word_ids=True)`` returned; ``words`` are
    what the user typed. Returns ``{requested word: sorted columns}``, keyed by the words as given
    (blank entries are skipped). Matching ignores case and punctuation around a word; a phrase
    ("red hair") matches consecutive words; every occurrence counts; a word of several CLIP
    tokens gives all of them. An embedding matches as "embedding:myemb" or "myemb". ``"<start>"``
    and ``"<end>"`` give the columns of ``special_columns`` for any prompt, even the empty one.

    Raises ``ValueError`` naming ``prompt_label`` when a word is not in the prompt (listing the
    words that are) or has no tokens.
    """
    columns_by_word: dict[str, list[int]] = {}
    specials = None
    known_words = None
    for requested in words:
        wanted = requested.strip()
        if not wanted:
            continue
        if wanted.lower() in (START, END):
            specials = specials or special_columns(tokens)
            columns_by_word[requested] = specials[wanted.lower()]
            continue
        if known_words is None:
            known_words = prompt_words(tokens, prompt, prompt_label)
        columns_by_word[requested] = _phrase_columns(wanted, known_words, prompt_label)
    return columns_by_word


def _phrase_columns(phrase: str, known_words: list[PromptWord], prompt_label: str) -> list[int]:
    parts = phrase.split()
    found = False
    columns: set[int] = set()
    for first in range(len(known_words) - len(parts) + 1):
        window = known_words[first:first + len(parts)]
        if all(word.matches(part) for word, part in zip(window, parts)):
            found = True
            columns.update(column for word in window for column in word.columns)
    if not found:
        listed = list(dict.fromkeys(w.text for w in known_words if any(ch.isalnum() for ch in w.text)))
        if not listed:
            raise ValueError(
                f"'{phrase}' is not in the {prompt_label}. The {prompt_label} has no words; "
                f"only {START} and {END} can be inspected."
            )
        raise ValueError(f"'{phrase}' is not in the {prompt_label}. Words in it: {', '.join(listed)}")
    if not columns:
        raise ValueError(
            f"'{phrase}' is in the {prompt_label} but ComfyUI gave it no tokens: it could not find "
            f"that embedding file and ignored it. Check the name against your embeddings folder."
        )
    return sorted(columns)


def _word_id_chunks(tokens: dict) -> list[list[tuple]]:
    # SDXL gives "g" and "l" with the same 77-token layout and the same word ids (only the padding
    # token differs), and its cross-attention reads their features joined per token, so either
    # names the same columns; we take the first key in sorted order, "g" for SDXL.
    for key in sorted(tokens):
        chunks = tokens[key]
        if chunks and all(len(token) == 3 for chunk in chunks for token in chunk):
            return chunks
    raise ValueError(
        "The prompt was tokenized without word ids; use clip.tokenize(text, return_word_ids=True)."
    )


def _tokens_by_word_id(chunks: list[list[tuple]]) -> dict[int, list[tuple[int, object]]]:
    groups: dict[int, list[tuple[int, object]]] = {}
    offset = 0
    for chunk in chunks:
        for position, (token, _weight, word_id) in enumerate(chunk):
            if word_id != 0:
                groups.setdefault(word_id, []).append((offset + position, token))
        offset += len(chunk)
    return groups


def _pieces(prompt: str, sd1_clip) -> list[str]:
    """The prompt cut the way SDTokenizer.tokenize_with_weights cuts it, one piece per word id."""
    pieces = []
    for segment, _weight in sd1_clip.token_weights(sd1_clip.escape_important(prompt), 1.0):
        text = sd1_clip.unescape_important(segment)
        split = re.split(" {0}|\n{0}".format(EMBEDDING_PREFIX), text)
        pieces += [piece for piece in [split[0]] + [EMBEDDING_PREFIX + s for s in split[1:]] if piece != ""]
    return pieces


def _embedding_name_and_leftovers(piece: str) -> tuple[str, list[str]]:
    """The embedding name and the text ComfyUI tokenizes after it, as in SDTokenizer._try_get_embedding.

    When the name ends in commas ("embedding:myemb,") ComfyUI first looks for the name as written;
    if that file is missing it looks for it without the commas and tokenizes the commas as text.
    The leftovers are listed in that order of preference: [commas + rest, rest] or [rest].
    """
    fields = piece[len(EMBEDDING_PREFIX):].strip("\n").split()
    name, rest = (fields[0] if fields else ""), " ".join(fields[1:])
    stripped = name.strip(",")
    if len(stripped) < len(name):
        return name, ["{} {}".format(name[len(stripped):], rest), rest]
    return name, [rest]


def _split_piece(piece: str, group: list[tuple[int, object]]) -> list[PromptWord] | None:
    """The piece's words with their columns, or None when its tokens are not these."""
    columns = [column for column, _token in group]
    token_ids = [token for _column, token in group]
    words = []
    position = 0
    for typed in piece.split():
        word_ids = _token_ids(typed)
        if token_ids[position:position + len(word_ids)] != word_ids:
            return None
        core_start, core_end = _core_token_span(typed, word_ids)
        words.append(PromptWord(_bare(typed), tuple(columns[position + core_start:position + core_end])))
        position += len(word_ids)
    return words if position == len(token_ids) else None


def _core_token_span(typed: str, word_ids: list[int]) -> tuple[int, int]:
    """Which of a word's tokens are the word itself and not the punctuation around it ("man," -> man)."""
    alnum = [i for i, ch in enumerate(typed) if ch.isalnum()]
    if not alnum:
        return 0, len(word_ids)
    head, core, tail = typed[:alnum[0]], typed[alnum[0]:alnum[-1] + 1], typed[alnum[-1] + 1:]
    head_ids, core_ids, tail_ids = (_token_ids(part) if part else [] for part in (head, core, tail))
    if head_ids + core_ids + tail_ids != word_ids:
        # CLIP read the punctuation together with letters ("'twas" is "'t" "was"): keep them all.
        return 0, len(word_ids)
    return len(head_ids), len(head_ids) + len(core_ids)


def _bare(word: str) -> str:
    """The word without punctuation around it, or the word itself when it is all punctuation."""
    alnum = [i for i, ch in enumerate(word) if ch.isalnum()]
    return word[alnum[0]:alnum[-1] + 1] if alnum else word


@functools.lru_cache(maxsize=4096)
def _token_ids_cached(word: str) -> tuple[int, ...]:
    # SDTokenizer drops the start and end token the Hugging Face tokenizer adds to every call.
    return tuple(_clip_text_tokenizer()(word)["input_ids"][1:-1])


def _token_ids(word: str) -> list[int]:
    return list(_token_ids_cached(word))


@functools.lru_cache(maxsize=1)
def _clip_text_tokenizer():
    # SD1.x, SD2.x and both SDXL encoders all read ComfyUI's bundled sd1_tokenizer vocabulary.
    from comfy import sd1_clip

    return sd1_clip.SDTokenizer().tokenizer


def _mismatch(prompt_label: str) -> ValueError:
    return ValueError(
        f"Could not tell which tokens of the {prompt_label} belong to which word: its tokens are not "
        f"what ComfyUI's CLIP tokenizer makes of this text. Word maps work with CLIP text encoders "
        f"(SD1.x, SD2.x, SDXL) and need the same text that was encoded."
    )
