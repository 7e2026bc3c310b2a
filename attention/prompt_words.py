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


@dataclass(frozen=True)
class TokenizerPart:
    """How to read one tokenizer's part of what ``clip.tokenize`` returns.

    ``key`` is its key in the tokens ("l", "g", "t5xxl", "umt5xxl", "qwen25_7b"; None: the first
    CLIP key); ``encode`` gives the ids that tokenizer makes of a piece of text; ``template`` is
    the text it really reads around the prompt (Qwen-Image's chat template); ``weights`` is False
    when it reads the text whole, without ComfyUI's (word:1.2) weights cutting it into pieces;
    ``has_start_token`` / ``has_end_token`` say whether ComfyUI puts a start / end token in every
    chunk (its SDTokenizer's ``start_token`` / ``end_token`` is set): CLIP has both, T5 and UMT5
    only the end token, Qwen2.5-VL neither (its chat template ends the prompt).
    """

    key: str | None = None
    encode: object = None
    template: str = "{}"
    weights: bool = True
    has_start_token: bool = True
    has_end_token: bool = True

    def read_text(self, prompt: str) -> tuple[str, tuple[int, int]]:
        """The text the tokenizer reads, and where the prompt sits in it."""
        head = self.template.split("{}")[0]
        return self.template.format(prompt), (len(head), len(head) + len(prompt))


CLIP_PART = TokenizerPart()


def special_columns(tokens: dict, part: TokenizerPart = CLIP_PART) -> dict[str, list[int]]:
    """Columns of the ``<start>`` and ``<end>`` token of every chunk of ``part``'s tokens.

    ``tokens`` is what ``clip.tokenize(text, return_word_ids=True)`` returns. For CLIP it is
    ``{"<start>": [0, 77, ...], "<end>": [6, 153, ...]}``, one column per chunk, and for the empty
    prompt ``{"<start>": [0], "<end>": [1]}``. T5 and UMT5 have no start token, so there the empty
    prompt's ``<end>`` is column 0 and ``<start>`` is empty. Whether there is a start (end) token is
    the tokenizer's to say, not the tokens': word ids mark the prompt's tokens only, and the empty
    prompt has none, so ``[<start>, <end>, pad]`` and ``[<end>, pad, pad]`` look alike. Padding is
    in neither list. They exist for every prompt, which is why ``find_word_columns`` accepts them.
    """
    starts, ends = [], []
    offset = 0
    for chunk in _word_id_chunks(tokens, part.key):
        content = [position for position, (_token, _weight, word_id) in enumerate(chunk) if word_id != 0]
        has_start = part.has_start_token and bool(chunk)
        if has_start:
            starts.append(offset)
        # ComfyUI puts the end token right after the chunk's last prompt token (or its start token)
        end = content[-1] + 1 if content else int(has_start)
        if part.has_end_token and end < len(chunk):
            ends.append(offset + end)
        offset += len(chunk)
    return {START: starts, END: ends}


def prompt_words(tokens: dict, prompt: str, prompt_label: str = "prompt",
                 part: TokenizerPart = CLIP_PART) -> list[PromptWord]:
    """The words of ``prompt`` in order, each with its token columns in ``part``'s tokens.

    ``tokens`` must be what ``clip.tokenize(prompt, return_word_ids=True)`` returned for this very
    text. ``prompt_label`` ("positive prompt", ...) names the prompt in error messages. Raises
    ``ValueError`` when the tokens do not come from the part's tokenizer reading this text.
    """
    from comfy import sd1_clip  # imported late: importing it sets up ComfyUI's devices

    text, span = part.read_text(prompt)
    reader = _PieceReader(_tokens_by_word_id(_word_id_chunks(tokens, part.key)), part.encode or clip_encode)
    pieces = _pieces(text, sd1_clip, part.weights)
    for piece in pieces:
        if not reader.read(piece, span if part.template != "{}" else None):
            raise _mismatch(prompt_label)
    if not reader.used_every_word_id():
        raise _mismatch(prompt_label)
    return reader.words


class _PieceReader:
    """Walks ComfyUI's pieces of a prompt alongside its word ids (1, 2, ...), collecting words.

    Each ``read`` returns False when the piece's tokens are not the ones under the next word id.
    """

    def __init__(self, groups: dict[int, list[tuple[int, object]]], encode):
        self.groups = groups
        self.encode = encode
        self.next_id = 1
        self.words: list[PromptWord] = []

    def read(self, piece: str, span=None) -> bool:
        if piece.startswith(EMBEDDING_PREFIX):
            return self._read_embedding(piece)
        return self._read_text(piece, span)

    def used_every_word_id(self) -> bool:
        return all(word_id < self.next_id for word_id in self.groups)

    def _read_text(self, piece: str, span=None) -> bool:
        piece_words = _split_piece(piece, self.groups.get(self.next_id, []), self.encode, span)
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
            if len(leftovers) == 2 and _split_piece(leftovers[0], after, self.encode) is not None:
                name, leftover = name.strip(","), leftovers[0]  # found only without its commas
            self.words.append(PromptWord(EMBEDDING_PREFIX + name, tuple(c for c, _t in group), True))
        else:
            # ComfyUI warned "embedding:... does not exist, ignoring" and gave the name no tokens.
            leftover = leftovers[0]
            self.words.append(PromptWord(EMBEDDING_PREFIX + name.strip(","), (), True))
        return leftover == "" or self._read_text(leftover)


def find_word_columns(
    tokens: dict, prompt: str, words: list[str], prompt_label: str = "prompt", part: TokenizerPart = CLIP_PART
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
            specials = specials or special_columns(tokens, part)
            columns_by_word[requested] = specials[wanted.lower()]
            continue
        if known_words is None:
            known_words = prompt_words(tokens, prompt, prompt_label, part)
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


def _word_id_chunks(tokens: dict, key: str | None = None) -> list[list[tuple]]:
    # SDXL gives "g" and "l" with the same 77-token layout and the same word ids (only the padding
    # token differs), and its cross-attention reads their features joined per token, so either
    # names the same columns; we take the first key in sorted order, "g" for SDXL.
    for key in [key] if key else sorted(tokens):
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


def _pieces(prompt: str, sd1_clip, weights: bool = True) -> list[str]:
    """The prompt cut the way SDTokenizer.tokenize_with_weights cuts it, one piece per word id."""
    pieces = []
    escaped = sd1_clip.escape_important(prompt)
    for segment, _weight in sd1_clip.token_weights(escaped, 1.0) if weights else [(escaped, 1.0)]:
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


def _split_piece(piece: str, group: list[tuple[int, object]], encode, span=None) -> list[PromptWord] | None:
    """The piece's words with their columns, or None when its tokens are not these.

    Tokenizers read a piece whole; a word's tokens are those the piece gains when it is read up to
    the word's end (CLIP and sentencepiece never join characters across whitespace, and byte-level
    BPE only joins a space to the word after it), checked to be a prefix of the piece's tokens.
    `span` (start, end) limits the words to the part of the piece the user typed (a chat template
    around a prompt); tokens after the last word (a trailing space) belong to no word.
    """
    columns = [column for column, _token in group]
    token_ids = [token for _column, token in group]
    if encode(piece) != token_ids:
        return None
    low, high = span or (0, len(piece))
    read = _prefix_length(piece, low, encode, token_ids) if low else 0
    words = []
    for match in re.finditer(r"\S+", piece[low:high]):
        start, end = low + match.start(), low + match.end()
        done = _prefix_length(piece, end, encode, token_ids)
        if read is None or done is None or done < read:
            return None
        first, last = _core_token_span(piece, start, match.group(), encode, token_ids, read, done)
        words.append(PromptWord(_bare(match.group()), tuple(columns[first:last])))
        read = done
    return words


def _prefix_length(piece: str, end: int, encode, token_ids: list) -> int | None:
    """How many of the piece's tokens the text up to `end` reads, or None when they are not a prefix."""
    prefix = encode(piece[:end])
    return len(prefix) if token_ids[:len(prefix)] == prefix else None


def _core_token_span(piece: str, start: int, typed: str, encode, token_ids: list, first: int, last: int):
    """Which of a word's tokens are the word itself and not the punctuation around it ("man," -> man)."""
    alnum = [i for i, ch in enumerate(typed) if ch.isalnum()]
    if not alnum:
        return first, last
    core_start = _prefix_length(piece, start + alnum[0], encode, token_ids) if alnum[0] else first
    core_end = _prefix_length(piece, start + alnum[-1] + 1, encode, token_ids)
    if core_start is None or core_end is None or not first <= core_start < core_end <= last:
        # the tokenizer read the punctuation together with letters ("'twas" is "'t" "was"): keep them all
        return first, last
    return core_start, core_end


def _bare(word: str) -> str:
    """The word without punctuation around it, or the word itself when it is all punctuation."""
    alnum = [i for i, ch in enumerate(word) if ch.isalnum()]
    return word[alnum[0]:alnum[-1] + 1] if alnum else word


def clip_encode(text: str) -> list[int]:
    """The ids ComfyUI's CLIP tokenizer gives a piece of text (without the start and end token
    the Hugging Face tokenizer adds to every call, as SDTokenizer drops them)."""
    return list(_clip_encode_cached(text))


@functools.lru_cache(maxsize=4096)
def _clip_encode_cached(text: str) -> tuple[int, ...]:
    return tuple(_clip_text_tokenizer()(text)["input_ids"][1:-1])


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
