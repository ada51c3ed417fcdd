"""anygpt.tokenizer.TextTokenizer against transformers' class for the same folder."""

import json
import random
import shutil

import pytest
from transformers import AutoTokenizer

from anygpt.bundles.load import packaged_bundles
from anygpt.tokenizer import TextTokenizer, load_text_tokenizer

TEXTS = ["hello there", " a  red circle.", "[Human]: hi <soim> x<eoh>\n[MMGPT]:", "émoji 🎶 ok", "", "<s>hi</s>",
         "\n\n  tabs\t", "🎶<somu>🎶 <eomu>", "Draw a red circle in the middle."]


@pytest.fixture(scope="module", params=["tiny", "debug"])
def folder(request, tmp_path_factory):
    if request.param == "tiny":
        return packaged_bundles()["tiny"] / "tokenizer"
    from anygpt.bundles import load_bundle

    out = tmp_path_factory.mktemp("debug-tokenizer")
    load_bundle("debug").tokenizer.save_pretrained(out)  # the official layout's tokens, added
    return out


def _pair(folder):
    ours = load_text_tokenizer(folder)
    assert isinstance(ours, TextTokenizer)
    return ours, AutoTokenizer.from_pretrained(folder, local_files_only=True)


def test_the_same_ids_offsets_and_special_tokens(folder):
    ours, hf = _pair(folder)
    for text in TEXTS:
        for kw in ({"add_special_tokens": False}, {"add_special_tokens": True}):
            assert ours(text, **kw)["input_ids"] == list(hf(text, **kw)["input_ids"])
        a = ours(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        b = hf(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        assert [tuple(x) for x in a] == [tuple(x) for x in b]
    for name in ("bos_token_id", "eos_token_id", "unk_token_id", "pad_token_id", "all_special_ids"):
        assert getattr(ours, name) == getattr(hf, name), name
    assert len(ours) == len(hf) and ours.get_vocab() == hf.get_vocab()
    assert ours.get_added_vocab() == hf.get_added_vocab()
    assert ours.convert_tokens_to_ids(["<soim>", "no-such-token", "<s>"]) == hf.convert_tokens_to_ids(
        ["<soim>", "no-such-token", "<s>"])


def test_the_same_text_back(folder):
    ours, hf = _pair(folder)
    rng = random.Random(0)
    for _ in range(200):
        ids = [rng.randrange(len(hf)) for _ in range(rng.randrange(1, 30))]
        for skip in (False, True):
            assert ours.decode(ids, skip_special_tokens=skip) == hf.decode(ids, skip_special_tokens=skip)
        assert ours.convert_ids_to_tokens(ids) == hf.convert_ids_to_tokens(ids)
    assert ours.decode(5) == hf.decode(5)


def test_saved_and_read_back_by_both(folder, tmp_path):
    ours, _ = _pair(folder)
    ours.save_pretrained(tmp_path / "copy")
    again, hf = _pair(tmp_path / "copy")
    for text in TEXTS:
        ids = ours(text, add_special_tokens=False)["input_ids"]
        assert again(text, add_special_tokens=False)["input_ids"] == ids == list(hf(text, add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("change", [{"clean_up_tokenization_spaces": True}, {"tokenizer_class": "LlamaTokenizer"},
                                    {"additional_special_tokens": ["<x>"]}, {"eos_token": 5}, None])
def test_folders_it_does_not_reproduce_are_left_to_transformers(tmp_path, change):
    src = packaged_bundles()["tiny"] / "tokenizer"
    shutil.copytree(src, tmp_path / "t")
    if change is None:
        (tmp_path / "t" / "tokenizer.json").unlink()
    else:
        config = json.loads((src / "tokenizer_config.json").read_text())
        (tmp_path / "t" / "tokenizer_config.json").write_text(json.dumps({**config, **change}))
    assert load_text_tokenizer(tmp_path / "t") is None
