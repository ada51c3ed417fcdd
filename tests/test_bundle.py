import json

import pytest
import torch

from anygpt.bundles import MANIFEST, load_bundle, read_manifest, save_bundle, verify_files
from anygpt.bundles.debug import build_text_tokenizer
from anygpt.errors import AnyGPTError, BundleError
from anygpt.generate.config import PRESETS
from anygpt.generate.engine import GenerationRequest, generate_ids


@pytest.fixture(scope="module")
def saved(debug_bundle, tmp_path_factory):
    return save_bundle(debug_bundle, tmp_path_factory.mktemp("b") / "debug")


def test_debug_bundle_is_the_official_layout(debug_bundle):
    b = debug_bundle
    assert b.layout.describe()["image"]["size"] == 8192 and b.layout["image"].spec.tokens_per_item == 32
    assert b.layout["speech"].spec.vocab_size == 1024
    assert b.layout["music"].spec.vocab_size == 8192 and b.layout["music"].spec.num_codebooks == 4
    assert b.prompt_format.name == "mmgpt"
    assert b.model.get_input_embeddings().weight.shape[0] == b.layout.vocab_size == len(b.tokenizer)


def test_debug_bundle_is_deterministic(debug_bundle):
    other = load_bundle("debug")
    assert other.tokenizer.get_vocab() == debug_bundle.tokenizer.get_vocab()
    for (k, v), (k2, v2) in zip(debug_bundle.model.state_dict().items(), other.model.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    assert build_text_tokenizer().get_vocab() == build_text_tokenizer().get_vocab()


def test_save_and_load_round_trip(debug_bundle, saved):
    manifest = read_manifest(saved)
    assert set(manifest["codecs"]) == {"image", "speech", "music"}
    assert "llm/model.safetensors" in manifest["files"] and "codecs/image.safetensors" in manifest["files"]
    assert manifest["layout"]["base_vocab_size"] == debug_bundle.layout.base_vocab_size
    loaded = load_bundle(saved)
    assert loaded.layout == debug_bundle.layout
    assert not loaded.codecs["image"].instance, "codecs load lazily"
    img = torch.randint(0, 255, (64, 64, 3), dtype=torch.uint8).numpy()
    assert torch.equal(loaded.codec("image").encode(img), debug_bundle.codec("image").encode(img))
    prompt = debug_bundle.tokenizer("[Human]: hi<eoh>\n[MMGPT]: <soim>")["input_ids"]
    decoding = PRESETS["greedy"].override(max_new_tokens=40)
    a, b = (generate_ids(x.model, x.layout, [GenerationRequest(prompt)], decoding, stop_ids=x.stop_ids,
                         pad_id=x.pad_id) for x in (debug_bundle, loaded))
    assert a == b


def test_hash_mismatch_and_missing_files(saved, tmp_path):
    import shutil

    copy = shutil.copytree(saved, tmp_path / "copy")
    verify_files(copy, read_manifest(copy))
    weights = copy / "codecs" / "music.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="music.safetensors does not match"):
        load_bundle(copy)
    weights.unlink()
    with pytest.raises(BundleError, match="missing file codecs/music.safetensors"):
        load_bundle(copy)


def test_corrupt_codec_weights_give_a_clear_error(saved, tmp_path):
    import shutil

    copy = shutil.copytree(saved, tmp_path / "copy")
    (copy / "codecs" / "image.safetensors").write_bytes(b"not a safetensors file")
    bundle = load_bundle(copy, verify=False)  # loads: codecs are lazy
    with pytest.raises(BundleError, match="cannot read codec weights"):
        bundle.codec("image")


def test_bad_bundle_names_and_manifests(tmp_path):
    with pytest.raises(BundleError, match=r"unknown bundle 'no-such-bundle': .*\(debug, tiny\)"):
        load_bundle("no-such-bundle")
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(BundleError, match="unreadable manifest"):
        load_bundle(tmp_path)
    (tmp_path / MANIFEST).write_text(json.dumps({"anygpt_bundle": 99}))
    with pytest.raises(BundleError, match="not an anygpt bundle"):
        load_bundle(tmp_path)


def test_save_refuses_a_non_empty_directory(debug_bundle, saved):
    with pytest.raises(AnyGPTError, match="not empty"):
        save_bundle(debug_bundle, saved)


def test_missing_codec_is_a_clear_error(debug_bundle):
    b = load_bundle("debug")
    del b.codecs["music"]
    with pytest.raises(AnyGPTError, match="no music codec"):
        b.codec("music")


def test_ship_writes_a_half_precision_llm_over_shipped_codecs(debug_bundle, saved, tmp_path):
    import shutil

    from safetensors import safe_open

    from anygpt.bundles import CODECS_ONLY
    from anygpt.bundles.tiny_init import ship

    out = tmp_path / "shipped"
    shutil.copytree(saved / "codecs", out / "codecs")
    (out / CODECS_ONLY).write_text(json.dumps(read_manifest(saved)["codecs"]), encoding="utf-8")
    (out / "llm").mkdir()
    (out / "llm" / "stale.bin").write_bytes(b"from an earlier shipping")
    for _ in range(2):  # shipping again over the result replaces the LLM and tokenizer
        ship(saved, out)
    assert not (out / "llm" / "stale.bin").exists()
    with safe_open(str(out / "llm" / "model.safetensors"), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16"}
    manifest = read_manifest(out)
    assert manifest["name"] == "tiny" and manifest["llm"]["load_dtype"] == "fp32"
    assert manifest["codecs"] == read_manifest(saved)["codecs"]
    verify_files(out, manifest)
    loaded = load_bundle(out)
    assert loaded.model.dtype == torch.float32
    assert loaded.tokenizer.get_vocab() == debug_bundle.tokenizer.get_vocab()
    ids = torch.tensor([[1, 5, 9, 200, loaded.layout.vocab_size - 1]])
    with torch.no_grad():
        want, got = debug_bundle.model(ids).logits, loaded.model(ids).logits
    assert not torch.equal(want, got)  # the weights went through float16
    torch.testing.assert_close(got, want, atol=2e-2, rtol=2e-2)
