"""Bundles cannot reach outside their folder, run shipped code, unpickle weights or skip their hashes."""

import json
import os
import shutil

import pytest

from anygpt.bundles import MANIFEST, load_bundle, read_manifest, save_bundle, sha256, verify_files
from anygpt.cli import main
from anygpt.errors import BundleError


@pytest.fixture(scope="module")
def saved(debug_bundle, tmp_path_factory):
    return save_bundle(debug_bundle, tmp_path_factory.mktemp("b") / "debug")


@pytest.fixture
def copy(saved, tmp_path):
    return shutil.copytree(saved, tmp_path / "bundle")


def edit(folder, change, *, rehash=True):
    """Change the manifest with `change(manifest)`; rehash every file so only the change matters."""
    manifest = json.loads((folder / MANIFEST).read_text())
    change(manifest)
    if rehash:
        manifest["files"] = {str(f.relative_to(folder)): sha256(f) for f in sorted(folder.rglob("*"))
                             if f.is_file() and f.name != MANIFEST}
    (folder / MANIFEST).write_text(json.dumps(manifest))


def one_error_line(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("anygpt: error:"), (code, err)
    return err[0]


def test_shipped_model_code_never_runs(copy, tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    config = json.loads((copy / "llm" / "config.json").read_text())
    config.update(model_type="evil", auto_map={"AutoConfig": "evil.EvilConfig",
                                               "AutoModelForCausalLM": "evil.EvilModel"})
    (copy / "llm" / "config.json").write_text(json.dumps(config))
    (copy / "llm" / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n"
                                          "from transformers import LlamaConfig as EvilConfig\n"
                                          "from transformers import LlamaForCausalLM as EvilModel\n")
    edit(copy, lambda m: None)
    monkeypatch.setattr("builtins.input", lambda *a, **k: "y")  # a user who would answer yes
    with pytest.raises(BundleError):
        load_bundle(copy)
    assert not marker.exists()


def test_loaders_pass_trust_remote_code_false(monkeypatch, saved):
    import transformers

    seen = []
    real = transformers.AutoModelForCausalLM.from_pretrained
    real_tok = transformers.AutoTokenizer.from_pretrained

    def spy(real_fn):
        def call(*a, **k):
            seen.append(k.get("trust_remote_code", "unset"))
            return real_fn(*a, **k)
        return call

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy(real))
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", spy(real_tok))
    b = load_bundle(saved)
    assert seen == []  # a plain Llama and a fast tokenizer load without transformers: nothing to run
    assert b.model is not None and seen == [False]  # transformers' model, built on first use
    import anygpt.bundles.load as load
    import anygpt.model

    monkeypatch.setattr(anygpt.model, "load_text_tokenizer", lambda path: None)
    monkeypatch.setattr(load, "load_llama", lambda *a, **k: None)
    seen.clear()
    load_bundle(saved)
    assert seen == [False, False]


@pytest.mark.parametrize("change, message", [
    (lambda m: m["files"].update({"../../etc/passwd": "0" * 64}), "leaves the bundle folder"),
    (lambda m: m["llm"].update(path="../elsewhere"), "leaves the bundle folder"),
    (lambda m: m["llm"].update(path="/usr/lib"), "outside the bundle folder"),
    (lambda m: m["tokenizer"].update(path="/etc"), "outside the bundle folder"),
    (lambda m: m["codecs"]["image"].update(weights="/etc/passwd"), "outside the bundle folder"),
    (lambda m: m["codecs"]["image"].update(weights="../../x.safetensors"), "leaves the bundle folder"),
])
def test_paths_stay_inside_the_bundle(copy, change, message):
    edit(copy, change, rehash=False)
    with pytest.raises(BundleError, match=message):
        load_bundle(copy)
    with pytest.raises(BundleError, match=message):
        verify_files(copy, read_manifest(copy))


def test_a_symlink_out_of_the_bundle_is_refused(copy, tmp_path):
    outside = tmp_path / "outside.safetensors"
    shutil.copy(copy / "codecs" / "image.safetensors", outside)
    (copy / "codecs" / "image.safetensors").unlink()
    os.symlink(outside, copy / "codecs" / "image.safetensors")
    with pytest.raises(BundleError, match="leaves the bundle folder"):
        load_bundle(copy)


def test_every_named_file_needs_a_hash(copy, capsys):
    edit(copy, lambda m: m.update(files={}), rehash=False)
    with pytest.raises(BundleError, match="has no hash"):
        load_bundle(copy)
    assert "has no hash" in one_error_line(capsys, ["bundle", "verify", str(copy)])


def test_an_unhashed_extra_file_fails_verify(copy, capsys):
    (copy / "llm" / "extra.json").write_text("{}")
    assert "llm/extra.json has no hash" in one_error_line(capsys, ["bundle", "verify", str(copy)])


def test_pickle_weights_are_refused(copy):
    (copy / "llm" / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    (copy / "llm" / "model.safetensors").unlink()
    edit(copy, lambda m: None)
    with pytest.raises(BundleError, match="pickle"):
        load_bundle(copy)


def test_codec_weights_must_be_safetensors(copy):
    shutil.copy(copy / "codecs" / "image.safetensors", copy / "codecs" / "image.pt2")
    edit(copy, lambda m: m["codecs"]["image"].update(weights="codecs/image.pt2"))
    with pytest.raises(BundleError, match="not safetensors"):
        load_bundle(copy)


def test_verify_passes_a_good_bundle(saved, capsys):
    assert main(["bundle", "verify", str(saved)]) == 0
    assert "files match their hashes" in capsys.readouterr().out


WRONG_TYPES = [
    lambda m: m.update(name=5),
    lambda m: m.update(llm="llm"),
    lambda m: m["llm"].update(path=5),
    lambda m: m.update(tokenizer=[]),
    lambda m: m["tokenizer"].update(path=None),
    lambda m: m.update(layout="x"),
    lambda m: m["layout"].update(base_vocab_size="512"),
    lambda m: m["layout"].update(modalities=5),
    lambda m: m["layout"].update(modalities=[{"name": "image"}]),
    lambda m: m.update(prompt_format=3),
    lambda m: m.update(prompt_format="nope"),
    lambda m: m.update(decoding=[]),
    lambda m: m.update(decoding={"text": {"top_p": "high"}}),
    lambda m: m.update(decoding={"bogus": 1}),
    lambda m: m.update(decoding={"max_new_tokens": "many"}),
    lambda m: m.update(codecs=[]),
    lambda m: m["codecs"].update(image=5),
    lambda m: m["codecs"]["image"].update(name=5),
    lambda m: m["codecs"]["image"].update(config="x"),
    lambda m: m["codecs"]["image"].update(weights=5),
    lambda m: m.update(files=[]),
    lambda m: m["files"].update({"llm/config.json": 5}),
    lambda m: m.update(external_files={"/etc/passwd": "big"}),
    lambda m: m.update(extra=1),
    lambda m: m.update(description=["x"]),
]


@pytest.mark.parametrize("change", WRONG_TYPES)
def test_wrong_typed_manifest_fields_are_one_error_line(copy, capsys, change):
    edit(copy, change, rehash=False)
    one_error_line(capsys, ["info", "--bundle", str(copy)])
