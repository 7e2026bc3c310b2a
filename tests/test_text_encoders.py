"""Words to conditioning columns for the DiT families' text encoders, with ComfyUI's own tokenizers.

The tokenizers are ComfyUI's real classes and vocabularies (SD3's CLIP-L + CLIP-G + T5-XXL, Flux's
CLIP-L + T5-XXL, Qwen-Image's Qwen2.5-VL with its chat template, Z-Image's and Flux.2 Klein's Qwen3
with theirs, Wan's UMT5-XXL sentencepiece and Flux.2 dev's Mistral Small 3 tekken vocabulary, here
small ones made for the test, as both come inside the text-encoder file). The encoders
themselves (T5-XXL, UMT5-XXL, Qwen2.5-VL 7B, Qwen3, Mistral Small 3) are fixed-size models of
billions of weights that ComfyUI will not load smaller, so the CLIP here is ComfyUI's tokenizer
with a record of which encoders are loaded; where the conditioning puts each part is checked
against ComfyUI's own encode code by reading it (SD3ClipModel.encode_token_weights,
QwenImageTEModel's template cut; ZImageTEModel and Flux2TEModel keep every token).

The reference for a word's columns: the tokens at those columns, decoded by the same tokenizer,
spell the word; and no other column does.
"""

import base64
import io
import json
from types import SimpleNamespace

import pytest
import sentencepiece
import torch
from comfy.text_encoders import flux, pixart_t5, qwen_image, sd3_clip, wan, z_image

from delayed_negative.attention.prompt_words import CLIP_PART, find_word_columns
from delayed_negative.attention.text_encoders import qwen_template_end, sub_tokenizer, token_parts, word_columns
from delayed_negative.attention.words import columns_for, empty_columns

PROMPT = "a portrait of a man, (red hat:1.2) and a scarf"


class TokenizerOnlyClip:
    """ComfyUI's tokenizer, and which encoders a loaded CLIP of this family would hold."""

    def __init__(self, tokenizer, **loaded):
        self.tokenizer = tokenizer
        self.cond_stage_model = SimpleNamespace(**{name: (object() if on else None) for name, on in loaded.items()})

    def tokenize(self, text, return_word_ids=False, **kwargs):
        return self.tokenizer.tokenize_with_weights(text, return_word_ids, **kwargs)


@pytest.fixture(scope="module")
def umt5_tokenizer():
    words = "a portrait of a man red hat and scarf blue sky photo the with on in dog cat".split()
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter([" ".join(words[i:] + words[:i]) for i in range(len(words))] * 20),
                                             model_writer=model, vocab_size=40, model_type="unigram",
                                             character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2, bos_id=-1)
    return wan.WanT5Tokenizer(tokenizer_data={"spiece_model": torch.ByteTensor(list(model.getvalue()))})


def ids(clip, key, text=PROMPT):
    return [token[0] for chunk in clip.tokenize(text, return_word_ids=True)[key] for token in chunk]


def decoded(sub_tokenizer, token_ids):
    tokenizer = sub_tokenizer.tokenizer
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # ComfyUI's SPieceTokenizer holds sentencepiece's
    return tokenizer.decode(token_ids).replace("</w>", " ").strip().lower()


def spelled(clip, key, sub_tokenizer, columns, offset):
    token_ids = ids(clip, key)
    return decoded(sub_tokenizer, [token_ids[c - offset] for c in columns])


def test_flux_words_are_t5_columns():
    clip = TokenizerOnlyClip(flux.FluxTokenizer(), clip_l=True, t5xxl=True)
    found = word_columns(clip, PROMPT, ["man", "red hat", "scarf"], "positive prompt")
    t5 = clip.tokenizer.t5xxl
    assert spelled(clip, "t5xxl", t5, found["man"], 0) == "man"
    assert spelled(clip, "t5xxl", t5, found["red hat"], 0) == "red hat"
    assert spelled(clip, "t5xxl", t5, found["scarf"], 0) == "scarf"
    end = word_columns(clip, PROMPT, ["<end>"], "positive prompt")["<end>"]
    assert [ids(clip, "t5xxl")[c] for c in end] == [1]  # T5's </s>


def test_sd3_words_are_in_the_clip_part_and_again_in_the_t5_part_after_it():
    tokenizer = sd3_clip.SD3Tokenizer()
    clip = TokenizerOnlyClip(tokenizer, clip_l=True, clip_g=True, t5xxl=True)
    columns = word_columns(clip, PROMPT, ["man"], "positive prompt")["man"]
    clip_length = len(ids(clip, "l"))
    clip_columns = [c for c in columns if c < clip_length]
    t5_columns = [c for c in columns if c >= clip_length]
    assert clip_length == 77 and clip_columns and t5_columns
    assert spelled(clip, "l", tokenizer.clip_l, clip_columns, 0) == "man"
    assert spelled(clip, "t5xxl", tokenizer.t5xxl, t5_columns, clip_length) == "man"
    # the same tokenizer, with only CLIP-L loaded (CLIPLoader type sd3) or only T5 loaded
    assert word_columns(TokenizerOnlyClip(tokenizer, clip_l=True, clip_g=False, t5xxl=False), PROMPT, ["man"],
                        "positive prompt")["man"] == clip_columns
    assert word_columns(TokenizerOnlyClip(tokenizer, clip_l=False, clip_g=False, t5xxl=True), PROMPT, ["man"],
                        "positive prompt")["man"] == [c - clip_length for c in t5_columns]


def test_qwen_image_columns_count_from_where_the_encoder_cuts_its_chat_template():
    tokenizer = qwen_image.QwenImageTokenizer()
    clip = TokenizerOnlyClip(tokenizer)
    token_ids = ids(clip, "qwen25_7b")
    # QwenImageTEModel keeps the tokens from the second <|im_start|> on, past "user\n"
    template_end = [i for i, t in enumerate(token_ids) if t == 151644][1] + 3
    # Qwen-Image's tokenizer reads weights as text ("(red hat:1.2)" is four words' worth of tokens)
    found = word_columns(clip, PROMPT, ["portrait", "man", "red", "<end>"], "positive prompt")
    sub = tokenizer.qwen25_7b
    for word in ("portrait", "man"):
        assert decoded(sub, [token_ids[c + template_end] for c in found[word]]) == word
    assert decoded(sub, [token_ids[c + template_end] for c in found["red"]]) == "red"
    assert token_ids[found["<end>"][0] + template_end] == 151645  # <|im_end|>
    assert found["portrait"][0] == 1  # "a" is column 0: the prompt's first token
    # the template's own words ("describe the image ... the objects") are not the prompt's
    with pytest.raises(ValueError, match="'describe' is not in the positive prompt"):
        word_columns(clip, PROMPT, ["describe"], "positive prompt")


def test_wan_words_are_umt5_columns(umt5_tokenizer):
    clip = TokenizerOnlyClip(umt5_tokenizer)
    found = word_columns(clip, PROMPT, ["man", "scarf", "<end>"], "positive prompt")
    sub = umt5_tokenizer.clip_umt5xxl
    assert spelled(clip, "umt5xxl", sub, found["man"], 0) == "man"
    assert spelled(clip, "umt5xxl", sub, found["scarf"], 0) == "scarf"
    assert [ids(clip, "umt5xxl")[c] for c in found["<end>"]] == [1]


def test_every_word_and_the_empty_prompt_for_each_family(umt5_tokenizer):
    clips = {"flux": TokenizerOnlyClip(flux.FluxTokenizer(), clip_l=True, t5xxl=True),
             "qwen": TokenizerOnlyClip(qwen_image.QwenImageTokenizer()),
             "z_image": TokenizerOnlyClip(z_image.ZImageTokenizer()),
             "wan": TokenizerOnlyClip(umt5_tokenizer)}
    for name, clip in clips.items():
        words = [word for word, _columns in columns_for(clip, PROMPT, "", "positive prompt")]
        hat = "hat:1.2" if name in ("qwen", "z_image") else "hat"  # Qwen-Image and Z-Image read weights as text
        assert words == ["a", "portrait", "of", "man", "red", hat, "and", "scarf"], name  # each word once
        assert [len(columns) for _word, columns in empty_columns(clip)] == [1], name


def test_a_missing_word_names_the_words_there_are():
    clip = TokenizerOnlyClip(flux.FluxTokenizer(), clip_l=True, t5xxl=True)
    with pytest.raises(ValueError, match="'dog' is not in the negative prompt. Words in it: a, portrait, of, man"):
        word_columns(clip, PROMPT, ["dog"], "negative prompt")


def test_an_encoder_not_mapped_is_named():
    clip = SimpleNamespace(cond_stage_model=None)
    with pytest.raises(ValueError, match="Word maps do not know this text encoder"):
        token_parts(clip, {"byt5": []})


def test_the_qwen_template_cut_follows_comfyui_s_rule_on_any_tokens():
    def chunks(ids):
        return [[(token, 1.0, 1) for token in ids]]

    start, user, newline = 151644, 872, 198
    # the second <|im_start|>, then past "user" "\n" when they follow it
    assert qwen_template_end(chunks([start, 5, 6, start, user, newline, 7, 8])) == 6
    assert qwen_template_end(chunks([start, 5, start, 9, newline, 7, 8])) == 2  # no "user\n": cut at <|im_start|>
    assert qwen_template_end(chunks([start, 5, start, user, 9, 7, 8])) == 2
    assert qwen_template_end(chunks([5, start, user, newline, 7])) == 4  # one <|im_start|>: that one
    assert qwen_template_end(chunks([start, 5, start, start, user, newline, 7])) == 2  # only the first two count
    assert qwen_template_end(chunks([5, 6, 7])) == 0


def test_sd1_and_sdxl_words_are_the_clip_columns_of_prompt_words():
    from comfy import sd1_clip, sdxl_clip

    for tokenizer in (sd1_clip.SD1Tokenizer(), sdxl_clip.SDXLTokenizer()):
        clip = TokenizerOnlyClip(tokenizer)
        tokens = clip.tokenize(PROMPT, return_word_ids=True)
        assert token_parts(clip, tokens) == [(CLIP_PART, 0)]
        expected = find_word_columns(tokens, PROMPT, ["man", "red hat"], "positive prompt")
        assert word_columns(clip, PROMPT, ["man", "red hat"], "positive prompt") == expected
        assert expected["man"] == [5]  # <start> a portrait of a man


def test_sd3_with_clip_g_alone_keeps_the_clip_part():
    tokenizer = sd3_clip.SD3Tokenizer()
    both = word_columns(TokenizerOnlyClip(tokenizer, clip_l=True, clip_g=False, t5xxl=False), PROMPT, ["man"], "p")
    assert word_columns(TokenizerOnlyClip(tokenizer, clip_l=False, clip_g=True, t5xxl=False), PROMPT, ["man"],
                        "p") == both == {"man": [5]}


def test_a_tokenizer_without_the_part_asked_is_named():
    with pytest.raises(ValueError, match="This CLIP's tokenizer has no 'umt5xxl' part"):
        sub_tokenizer(flux.FluxTokenizer(), "umt5xxl")


def t5_family_clips(umt5_tokenizer):
    """{family: (clip with only its T5 / UMT5 loaded, key of its tokens, ComfyUI's sub-tokenizer)}."""
    sd3, flux_tokenizer, chroma = sd3_clip.SD3Tokenizer(), flux.FluxTokenizer(), pixart_t5.PixArtTokenizer()
    return {"sd3 t5": (TokenizerOnlyClip(sd3, clip_l=False, clip_g=False, t5xxl=True), "t5xxl", sd3.t5xxl),
            "flux": (TokenizerOnlyClip(flux_tokenizer, clip_l=True, t5xxl=True), "t5xxl", flux_tokenizer.t5xxl),
            "chroma": (TokenizerOnlyClip(chroma), "t5xxl", chroma.clip_t5xxl),
            "wan": (TokenizerOnlyClip(umt5_tokenizer), "umt5xxl", umt5_tokenizer.clip_umt5xxl)}


@pytest.mark.parametrize("text", ["", PROMPT])
def test_t5_and_umt5_end_is_the_column_of_the_end_token_and_there_is_no_start(umt5_tokenizer, text):
    # T5 and UMT5 have no start token: the empty prompt's <end> is column 0, not the first padding
    # (and on Chroma, which does not pad, not missing).
    for name, (clip, key, sub) in t5_family_clips(umt5_tokenizer).items():
        assert sub.start_token is None and sub.tokenizer("")["input_ids"] == [sub.end_token], name
        token_ids = ids(clip, key, text)
        found = word_columns(clip, text, ["<start>", "<end>"], "empty prompt")
        assert found["<end>"] == [token_ids.index(sub.end_token)], name
        assert found["<start>"] == [], name
        if not text:
            assert found["<end>"] == [0] and empty_columns(clip) == [("<end>", [0])], name


def test_sd3_empty_prompt_end_is_the_clip_end_and_the_t5_end_after_it():
    tokenizer = sd3_clip.SD3Tokenizer()
    clip = TokenizerOnlyClip(tokenizer, clip_l=True, clip_g=True, t5xxl=True)
    clip_ids, t5_ids = ids(clip, "l", ""), ids(clip, "t5xxl", "")
    found = word_columns(clip, "", ["<start>", "<end>"], "empty prompt")
    assert found["<start>"] == [clip_ids.index(tokenizer.clip_l.start_token)] == [0]
    assert found["<end>"] == [clip_ids.index(tokenizer.clip_l.end_token),
                              len(clip_ids) + t5_ids.index(tokenizer.t5xxl.end_token)] == [1, 77]


@pytest.mark.parametrize("text", ["", PROMPT])
def test_qwen_image_end_is_the_template_s_first_token_after_the_prompt_and_there_is_no_start(text):
    tokenizer = qwen_image.QwenImageTokenizer()
    clip, sub = TokenizerOnlyClip(tokenizer), tokenizer.qwen25_7b
    token_ids = ids(clip, "qwen25_7b", text)
    template_end = qwen_template_end(clip.tokenize(text, return_word_ids=True)["qwen25_7b"])
    after_prompt = tokenizer.llama_template.split("{}")[1]  # "<|im_end|>\n<|im_start|>assistant\n"
    found = word_columns(clip, text, ["<start>", "<end>"], "prompt")
    assert found["<start>"] == []
    assert [token_ids[c + template_end] for c in found["<end>"]] == sub.tokenizer(after_prompt)["input_ids"][:1]
    if not text:
        # the encoder keeps the template from "user\n" on: the empty prompt's <|im_end|> is its column 0
        assert found["<end>"] == [0] and empty_columns(clip) == [("<end>", [0])]


# --- Z-Image and Flux.2: the prompt inside the tokenizer's template, every token kept ----------------------------

QWEN_IM_END = 151645


def test_z_image_words_are_qwen3_columns_counted_from_the_template_s_first_token():
    tokenizer = z_image.ZImageTokenizer()
    clip, sub = TokenizerOnlyClip(tokenizer), sub_tokenizer(tokenizer, "qwen3_4b")
    token_ids = ids(clip, "qwen3_4b")
    head = len(sub.tokenizer(tokenizer.llama_template.split("{}")[0])["input_ids"])  # <|im_start|> user \n
    found = word_columns(clip, PROMPT, ["a", "portrait", "man", "scarf", "<end>"], "positive prompt")
    assert head == 3 and found["a"][0] == head  # ZImageTEModel keeps the template: the prompt starts after it
    for word in ("portrait", "man", "scarf"):
        assert decoded(sub, [token_ids[c] for c in found[word]]) == word
    assert [token_ids[c] for c in found["<end>"]] == [QWEN_IM_END]
    with pytest.raises(ValueError, match="'user' is not in the positive prompt"):  # the template's, not the prompt's
        word_columns(clip, PROMPT, ["user"], "positive prompt")
    empty = word_columns(clip, "", ["<end>"], "empty prompt")["<end>"]
    assert [ids(clip, "qwen3_4b", "")[c] for c in empty] == [QWEN_IM_END] and empty == [head]


KLEIN = getattr(flux, "KleinTokenizer", None)


@pytest.mark.skipif(KLEIN is None, reason="this ComfyUI (0.3.75) has no Flux.2 Klein tokenizer "
                                          "(comfy.text_encoders.flux.KleinTokenizer came later)")
@pytest.mark.parametrize("key", ["qwen3_4b", "qwen3_8b"])
def test_flux2_klein_words_are_qwen3_columns_and_the_padding_follows_the_template(key):
    tokenizer = flux.KleinTokenizer(name=key)
    clip, sub = TokenizerOnlyClip(tokenizer), sub_tokenizer(tokenizer, key)
    token_ids = ids(clip, key)
    found = word_columns(clip, PROMPT, ["man", "red", "<end>"], "positive prompt")  # weights are read as text
    assert decoded(sub, [token_ids[c] for c in found["man"]]) == "man"
    assert decoded(sub, [token_ids[c] for c in found["red"]]) == "red"
    assert [token_ids[c] for c in found["<end>"]] == [QWEN_IM_END]
    assert len(token_ids) == 512 and found["<end>"][0] < token_ids.index(sub.pad_token)  # padded after the template


def tekken_vocabulary(words: list[str]) -> bytes:
    """A Mistral tekken.json (the layout Flux.2 dev's text-encoder file carries as "tekken_model"): every
    byte, the words' prefixes with and without a leading space, and the special tokens Flux.2's template uses."""
    vocabulary = [bytes([value]) for value in range(256)]
    for word in words:
        for text in (word, " " + word):
            encoded = text.encode()
            vocabulary += [encoded[:end] for end in range(2, len(encoded) + 1) if encoded[:end] not in vocabulary]
    specials = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"]
    return json.dumps({
        "config": {"pattern": r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
                   "num_vocab_tokens": len(vocabulary) + len(specials),
                   "default_vocab_size": len(vocabulary) + len(specials),
                   "default_num_special_tokens": len(specials), "version": "v7"},
        "vocab": [{"rank": rank, "token_bytes": base64.b64encode(token).decode(), "token_str": None}
                  for rank, token in enumerate(vocabulary)],
        "special_tokens": [{"rank": rank, "token_str": text, "is_control": True} for rank, text in enumerate(specials)],
    }).encode()


@pytest.fixture(scope="module")
def mistral_tokenizer():
    data = tekken_vocabulary(["a", "portrait", "of", "man", "red", "hat", "and", "scarf"])
    try:
        return flux.Flux2Tokenizer(tokenizer_data={"tekken_model": torch.ByteTensor(list(data))})
    except TypeError as error:  # 0.3.75 builds it with transformers' MistralConverter(vocab=...)
        import transformers
        pytest.skip(f"this ComfyUI cannot build Flux.2 dev's Mistral tokenizer with transformers "
                    f"{transformers.__version__} ({error}): its prompts cannot be encoded here at all")


def test_flux2_dev_words_are_mistral_columns_after_its_start_token_and_system_prompt(mistral_tokenizer):
    clip, sub = TokenizerOnlyClip(mistral_tokenizer), sub_tokenizer(mistral_tokenizer, "mistral3_24b")
    token_ids = ids(clip, "mistral3_24b")
    found = word_columns(clip, PROMPT, ["<start>", "man", "red", "scarf", "<end>"], "positive prompt")
    assert [token_ids[c] for c in found["<start>"]] == [1] == [sub.start_token]  # <s>, column 0
    for word in ("man", "red", "scarf"):  # Flux.2's tokenizer reads weights as text
        assert decoded(sub, [token_ids[c] for c in found[word]]) == word
    assert [token_ids[c] for c in found["<end>"]] == [4]  # [/INST], right after the prompt
    with pytest.raises(ValueError, match="'reasons' is not in the positive prompt"):  # the system prompt's
        word_columns(clip, PROMPT, ["reasons"], "positive prompt")
    empty = word_columns(clip, "", ["<end>"], "empty prompt")["<end>"]
    assert [ids(clip, "mistral3_24b", "")[c] for c in empty] == [4]
