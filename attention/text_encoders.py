"""Which tokenizer's tokens sit where in the conditioning a CLIP (text encoder) makes.

A word's columns are its tokens' positions along the conditioning's token axis, the axis the
model's attention keys run over. Each text encoder lays that axis out its own way:
- SD1.x, SD2.x, SDXL: CLIP chunks of 77 (prompt_words.py);
- SD3.x: CLIP-L and CLIP-G joined per token (77 per chunk), then the T5-XXL tokens, each part
  present when its encoder is loaded;
- Flux and Chroma: T5-XXL tokens only (Flux's CLIP-L gives the pooled vector, no tokens);
- Wan 2.x: UMT5-XXL tokens;
- Qwen-Image: Qwen2.5-VL tokens of the prompt inside a chat template, whose head the encoder
  drops (ComfyUI's rule: from the second <|im_start|>, past "user\n");
- Z-Image: Qwen3-4B tokens of the prompt inside its chat template, all kept; Flux.2 Klein (0.33):
  Qwen3-4B or -8B the same way, padded after the template to 512 tokens; Flux.2 dev: Mistral
  Small 3 tokens, a start token then its system-prompt template around the prompt, all kept
  (the model pads the conditioning in front to 512 tokens: dit_layout moves the columns).
A word found in two parts (SD3's CLIP and T5) gets the columns of both.
"""

from .prompt_words import CLIP_PART, END, TokenizerPart, find_word_columns, prompt_words

QWEN_IM_START, QWEN_USER, QWEN_NEWLINE = 151644, 872, 198  # as ComfyUI's QwenImageTEModel reads them
# Encoders that read the prompt inside their tokenizer's template (llama_template) and keep every token:
# Qwen3-4B (Z-Image, Flux.2 Klein 4B), Qwen3-8B (Flux.2 Klein 9B), Mistral Small 3 (Flux.2 dev).
WHOLE_TEMPLATE_KEYS = ("qwen3_4b", "qwen3_8b", "mistral3_24b")


def token_parts(clip, tokens: dict) -> list[tuple[TokenizerPart, int]]:
    """[(part, offset)]: each tokenizer part in the conditioning, and the column its token 0 lands on."""
    keys, model = set(tokens), clip.cond_stage_model
    if keys <= {"l", "g"}:
        return [(CLIP_PART, 0)]
    if {"g", "t5xxl"} <= keys:  # SD3.x
        parts = []
        if getattr(model, "clip_l", None) is not None or getattr(model, "clip_g", None) is not None:
            parts.append((CLIP_PART, 0))
        if getattr(model, "t5xxl", None) is not None:
            parts.append((sub_part(clip, "t5xxl"), sum(len(chunk) for chunk in tokens["l"]) if parts else 0))
        return parts
    for key in ("t5xxl", "umt5xxl"):
        if key in keys:
            return [(sub_part(clip, key), 0)]
    if "qwen25_7b" in keys:
        part = sub_part(clip, "qwen25_7b", template=sub_template(clip.tokenizer), weights=False)
        return [(part, -qwen_template_end(tokens["qwen25_7b"]))]
    for key in WHOLE_TEMPLATE_KEYS:
        if key in keys:
            return [(sub_part(clip, key, template=sub_template(clip.tokenizer), weights=False), 0)]
    raise ValueError(f"Word maps do not know this text encoder (its tokens: {', '.join(sorted(keys))}) yet: they "
                     "work with the CLIP, T5-XXL, UMT5-XXL, Qwen2.5-VL, Qwen3 and Mistral Small 3 encoders of "
                     "SD1.x/SDXL, SD3.x, Flux, Chroma, Wan, Qwen-Image, Z-Image and Flux.2.")


def word_columns(clip, prompt: str, words: list[str], prompt_label: str, tokens: dict | None = None
                 ) -> dict[str, list[int]]:
    """{word: sorted columns in the conditioning} for the requested words of `prompt` (`tokens`: what
    `clip.tokenize(prompt, return_word_ids=True)` gave, when the caller has it already)."""
    tokens = tokens or clip.tokenize(prompt, return_word_ids=True)
    found: dict[str, set[int]] = {word: set() for word in words if word.strip()}
    for part, offset in token_parts(clip, tokens):
        for word, columns in find_word_columns(tokens, prompt, words, prompt_label, part).items():
            if part.template != "{}" and word.strip().lower() == END:
                columns = [end_of_prompt(part, prompt)]
            found[word].update(c + offset for c in columns if c + offset >= 0)
    return {word: sorted(columns) for word, columns in found.items()}


def every_word(clip, prompt: str, prompt_label: str, tokens: dict | None = None) -> list[str]:
    """The words of `prompt` that have tokens, in order (read from its first tokenizer part)."""
    tokens = tokens or clip.tokenize(prompt, return_word_ids=True)
    part, _offset = token_parts(clip, tokens)[0]
    return [word.text for word in prompt_words(tokens, prompt, prompt_label, part) if word.columns]


def end_of_prompt(part: TokenizerPart, prompt: str) -> int:
    """A templated prompt's <end>: the template's first token after the prompt (<|im_end|>, Mistral's
    [/INST]), after the start token where the tokenizer puts one (Mistral's <s>)."""
    text, (_start, end) = part.read_text(prompt)
    return int(part.has_start_token) + len(part.encode(text[:end]))


def qwen_template_end(chunks: list[list[tuple]]) -> int:
    """How many leading tokens ComfyUI's Qwen-Image text encoder drops (QwenImageTEModel's rule)."""
    ids = [token[0] for token in chunks[0]]
    starts = [i for i, token in enumerate(ids) if token == QWEN_IM_START][:2]
    end = starts[-1] if starts else -1
    if len(ids) > end + 3 and ids[end + 1:end + 3] == [QWEN_USER, QWEN_NEWLINE]:
        end += 3
    return max(end, 0)


def sub_part(clip, key: str, **reading) -> TokenizerPart:
    """How to read the tokens of `key`'s tokenizer, with the start and end tokens it really puts in:
    T5 and UMT5 have no start token, so their first column is a word or, for the empty prompt, <end>."""
    sub = sub_tokenizer(clip.tokenizer, key)
    return TokenizerPart(key, encoder(sub), has_start_token=sub.start_token is not None,
                         has_end_token=sub.end_token is not None, **reading)


def sub_tokenizer(tokenizer, key: str):
    """The SDTokenizer behind one key of `tokenizer.tokenize_with_weights`'s output: an attribute named
    as the key (SD3's t5xxl, Qwen-Image's qwen25_7b) or "clip_" and the key (clip_l, Wan's clip_umt5xxl)."""
    for name in (key, f"clip_{key}"):
        sub = getattr(tokenizer, name, None)
        if sub is not None and hasattr(sub, "tokenizer"):
            return sub
    raise ValueError(f"This CLIP's tokenizer has no '{key}' part.")


def encoder(sub):
    """The ids an SDTokenizer gives one piece of text, as its tokenize_with_weights slices them."""
    end = -1 if sub.tokenizer_adds_end_token else None

    def encode(text: str) -> list[int]:
        return list(sub.tokenizer(text)["input_ids"][sub.tokens_start:end])

    return encode


def sub_template(tokenizer) -> str:
    return getattr(tokenizer, "llama_template", "{}")
