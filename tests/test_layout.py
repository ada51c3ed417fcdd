import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from anygpt.errors import LayoutError
from anygpt.layout import (
    OFFICIAL_MUSIC,
    LayoutConfig,
    ModalitySpec,
    VocabLayout,
    official_layout_config,
)


def test_official_layout_sizes_and_ids():
    layout = VocabLayout(official_layout_config(), 32000)
    # 32000 + 4 role tokens + (8192 + 2) + (1024 + 2) + (8192 + 2)
    assert layout.vocab_size == 49418
    assert layout.extra_ids == {"[Human]": 32000, "[MMGPT]": 32001, "<eoh>": 32002, "<eos>": 32003}
    assert layout["image"].first_id == 32004
    assert layout["image"].start_id == 32004 + 8192 and layout["image"].end_id == 32004 + 8193
    assert layout["speech"].first_id == 40198
    assert layout["music"].first_id == 41224
    assert layout["music"].end_id == 49417
    chat = VocabLayout(official_layout_config(chat_extras=True), 32000)
    assert chat.vocab_size == 49420 and chat.extra_ids["<-Res->"] == 49419


def test_official_token_names():
    layout = VocabLayout(official_layout_config(), 0)
    tokens = layout.tokens_to_add()
    assert tokens[:4] == ["[Human]", "[MMGPT]", "<eoh>", "<eos>"]
    assert tokens[4] == "<\U0001f4400>" and tokens[4 + 8191] == "<\U0001f4408191>"
    assert tokens[4 + 8192 : 4 + 8194] == ["<soim>", "<eoim>"]
    # the speech prefix is U+1F5E3 followed by the variation selector U+FE0F
    assert tokens[4 + 8194] == "<\U0001f5e3\ufe0f0>"
    assert tokens[-2:] == ["<somu>", "<eomu>"] and tokens[-3] == "<\U0001f3b68191>"
    assert len(tokens) == len(set(tokens)) == layout.vocab_size


def test_layout_ids_match_the_tokenizer(debug_bundle):
    b = debug_bundle
    tokens = b.layout.tokens_to_add()
    ids = b.tokenizer.convert_tokens_to_ids(tokens)
    assert ids == list(range(b.layout.base_vocab_size, b.layout.vocab_size))
    b.layout.verify(b.tokenizer)
    # and the tokenizer's own encoding of a rendered span agrees with the arithmetic
    codes = torch.tensor([[5, 0, 8191]])
    rendered = "<soim><\U0001f4405><\U0001f4400><\U0001f4408191><eoim>"
    assert b.tokenizer(rendered, add_special_tokens=False)["input_ids"] == b.layout.span_ids("image", codes).tolist()


def test_from_tokenizer_and_verify_mismatch(debug_bundle):
    b = debug_bundle
    again = VocabLayout.from_tokenizer(b.layout.config, b.tokenizer)
    assert again.vocab_size == b.layout.vocab_size
    shifted = VocabLayout(b.layout.config, b.layout.base_vocab_size + 1)
    with pytest.raises(LayoutError, match="mismatches"):
        shifted.verify(b.tokenizer)


def test_music_flatten_is_frame_major_with_offsets():
    codes = torch.tensor([[1, 2], [3, 4], [5, 6], [7, 8]])  # (4 codebooks, 2 frames)
    assert OFFICIAL_MUSIC.flatten(codes).tolist() == [1, 2051, 4101, 6151, 2, 2052, 4102, 6152]


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 4), st.integers(1, 64), st.integers(0, 60), st.integers(0, 2**31 - 1))
def test_flatten_unflatten_round_trip(k, size, frames, seed):
    spec = ModalitySpec("m", "x", "<a>", "<b>", size, k, frame_rate=50.0)
    codes = torch.randint(0, size, (k, frames), generator=torch.Generator().manual_seed(seed))
    stream = spec.flatten(codes)
    assert stream.shape == (k * frames,)
    assert bool(((stream // size) == torch.arange(k).repeat(frames)).all())
    assert torch.equal(spec.unflatten(stream, strict=True), codes)


def test_unflatten_drops_partial_frame_with_warning():
    stream = OFFICIAL_MUSIC.flatten(torch.zeros(4, 3, dtype=torch.long))[:-2]  # 10 tokens: 2.5 frames
    with pytest.warns(UserWarning, match="partial frame"):
        codes = OFFICIAL_MUSIC.unflatten(stream)
    assert codes.shape == (4, 2)
    with pytest.raises(LayoutError):
        OFFICIAL_MUSIC.unflatten(stream, strict=True)


def test_unflatten_remaps_wrong_layer_like_the_release():
    stream = torch.tensor([2048 + 7, 2048 + 1, 4096 + 2, 6144 + 3])  # first code sits in layer 1's range
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        codes = OFFICIAL_MUSIC.unflatten(stream)
    assert codes[:, 0].tolist() == [7, 1, 2, 3]
    assert any("wrong codebook" in str(w.message) for w in caught)


def test_flatten_rejects_bad_codes():
    with pytest.raises(LayoutError, match="outside"):
        OFFICIAL_MUSIC.flatten(torch.tensor([[2048], [0], [0], [0]]))
    with pytest.raises(LayoutError, match="shape"):
        OFFICIAL_MUSIC.flatten(torch.zeros(3, 5, dtype=torch.long))


def test_span_limits_and_seconds():
    spec = official_layout_config().modalities
    image, speech, music = spec
    assert image.max_span_tokens(10.0) == 32
    assert speech.max_span_tokens(30.0) == 1500
    assert music.max_span_tokens(10.0) == 2000 and music.max_span_tokens(5.0) == 1000
    assert music.seconds(250) == 5.0


def test_layout_config_round_trips_through_json():
    import json

    config = official_layout_config(chat_extras=True)
    assert LayoutConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_smaller_codecs_use_the_same_machinery():
    small = LayoutConfig(
        modalities=(ModalitySpec("image", "i", "<si>", "<ei>", 256, 1, tokens_per_item=16),
                    ModalitySpec("music", "m", "<sm>", "<em>", 64, 4, frame_rate=25.0)),
        tokens_before=("<|user|>",),
    )
    layout = VocabLayout(small, 100)
    assert layout["image"].first_id == 101 and layout["music"].first_id == 101 + 258
    assert layout.vocab_size == 101 + 258 + 258
    ids = layout.span_ids("music", torch.tensor([[1], [2], [3], [4]]))
    assert ids.tolist() == [layout["music"].start_id, 360, 359 + 2 + 64, 359 + 3 + 128, 359 + 4 + 192, layout["music"].end_id]
    assert layout.ids_to_codes("music", ids[1:-1]).flatten().tolist() == [1, 2, 3, 4]
    with pytest.raises(LayoutError, match="unknown modality"):
        layout["speech"]
