"""`anygpt bundle import` on random-weight, official-format folders (tests/official_tiny.py), then
`anygpt chat` through them: text -> image (SEED-2 + unCLIP), text -> speech with a voice prompt
(SpeechTokenizer + SoundStorm), text -> music (Encodec)."""

import json

import numpy as np
import pytest
import soundfile as sf
from official_tiny import write_llm, write_models
from PIL import Image

from anygpt.bundles import load_bundle
from anygpt.cli import main

pytestmark = pytest.mark.usefixtures("no_network", "one_thread")
TINY_CODECS = ["--codec-config", 'image={"config": "tiny", "num_inference_steps": 2}',
               "--codec-config", 'speech={"soundstorm_config": "tiny"}']


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return write_models(tmp_path_factory.mktemp("release") / "models", chat=True)


@pytest.fixture(scope="module")
def bundle_dir(models, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles") / "chat"
    assert main(["bundle", "import", "--official", str(models), "--out", str(out), *TINY_CODECS]) == 0
    return out


def chat(capsys, bundle_dir, tmp_path, *args):
    code = main(["chat", "--bundle", str(bundle_dir), "--out", str(tmp_path), "--json", "--seed", "0",
                 "--max-new-tokens", "60", *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)["segments"]


def test_import_writes_a_manifest_of_the_release_folders(bundle_dir, models, capsys):
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    assert manifest["prompt_format"] == "mmgpt" and manifest["name"] == "anygpt-chat"
    assert manifest["layout"]["tokens_after"] == ["<-Ins->", "<-Res->"]
    assert {m: c["name"] for m, c in manifest["codecs"].items()} == {
        "image": "seed2", "speech": "speechtokenizer", "music": "encodec-32khz"}
    assert manifest["codecs"]["music"]["config"]["max_seconds"] == 5.0
    assert any(k.endswith("speechtokenizer_soundstorm_mls.pt") for k in manifest["external_files"])
    info_code = main(["info", "--bundle", str(bundle_dir), "--json"])
    info = json.loads(capsys.readouterr().out)
    assert info_code == 0 and info["layout"]["music"]["size"] == 8192
    assert info["vocab_size"] == info["text_vocab_size"] + 49420 - 32000
    assert info["memory"]["speech"]["weights_on_disk_gib"] >= 0 and "fp32_gib" in info["memory"]["llm"]


def test_text_to_image(bundle_dir, capsys, tmp_path):
    image = chat(capsys, bundle_dir, tmp_path, "--text", "a red circle", "--want", "image")[0]
    assert image["modality"] == "image" and image["num_codes"] == 32
    assert Image.open(image["path"]).size == (16, 16)  # the tiny unCLIP pipeline's output


def test_text_to_speech_with_a_voice_prompt(bundle_dir, capsys, tmp_path):
    voice = tmp_path / "voice.wav"
    sf.write(voice, 0.3 * np.sin(2 * np.pi * 160 * np.arange(22050 * 4) / 22050), 22050)
    speech = chat(capsys, bundle_dir, tmp_path, "--text", "hello", "--want", "speech", "--voice", str(voice))[0]
    assert speech["modality"] == "speech" and speech["num_codes"] > 0
    info = sf.info(speech["path"])
    assert info.samplerate == 16000 and info.frames == speech["num_codes"] * 320


def test_text_to_music(bundle_dir, capsys, tmp_path):
    music = chat(capsys, bundle_dir, tmp_path, "--text", "calm piano", "--want", "music")[0]
    assert music["modality"] == "music" and music["num_codes"] % 4 == 0
    assert sf.info(music["path"]).frames == music["num_codes"] // 4 * 640


def test_music_and_image_inputs_to_text(bundle_dir, capsys, tmp_path):
    sf.write(tmp_path / "m.wav", 0.2 * np.sin(np.arange(32000 * 7) / 9), 32000)  # 7 s: cropped to 5 s
    Image.new("RGB", (50, 30), (10, 200, 10)).save(tmp_path / "i.png")
    segs = chat(capsys, bundle_dir, tmp_path, "--music", str(tmp_path / "m.wav"), "--image", str(tmp_path / "i.png"),
                "--text", "Describe both.", "--want", "text", "--max-new-tokens", "8")
    assert all(s["modality"] == "text" for s in segs)
    bundle = load_bundle(bundle_dir)
    assert bundle.codec("music").encode(str(tmp_path / "m.wav")).shape == (4, 250)


def test_base_model_uses_the_pretraining_template(models, tmp_path):
    write_llm(tmp_path / "base", chat=False)
    out = tmp_path / "bundle"
    assert main(["bundle", "import", "--official", str(models), "--llm", str(tmp_path / "base"),
                 "--out", str(out), *TINY_CODECS]) == 0
    assert json.loads((out / "manifest.json").read_text())["prompt_format"] == "base"


def test_tokenizer_that_is_not_the_official_layout_is_refused(models, tmp_path, capsys):
    from transformers import LlamaConfig, LlamaForCausalLM

    from anygpt.bundles.debug import build_text_tokenizer
    from anygpt.layout import official_layout_config, VocabLayout

    tok = build_text_tokenizer()
    layout = VocabLayout(official_layout_config(), len(tok))
    tokens = layout.tokens_to_add()
    speech_first = tokens[:4] + tokens[4 + 8194: 4 + 8194 + 1026] + tokens[4: 4 + 8194] + tokens[4 + 8194 + 1026:]
    tok.add_tokens(speech_first)  # the right tokens in the wrong order
    folder = tmp_path / "wrong"
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2)).save_pretrained(folder)
    tok.save_pretrained(folder)
    code = main(["bundle", "import", "--llm", str(folder), "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 2 and "does not hold the official AnyGPT tokens" in err and "mismatches" in err


def test_changed_weights_are_noticed(bundle_dir, models, tmp_path):
    import shutil

    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    out = tmp_path / "b"
    assert main(["bundle", "import", "--official", str(copy), "--out", str(out), *TINY_CODECS]) == 0
    with open(copy / "soundstorm" / "speechtokenizer_soundstorm_mls.pt", "ab") as f:
        f.write(b"\0")
    from anygpt.errors import BundleError

    with pytest.raises(BundleError, match="changed size"):
        load_bundle(out)


def test_missing_parts_are_reported(tmp_path, capsys):
    write_llm(tmp_path / "models" / "anygpt" / "chat", chat=True)
    assert main(["bundle", "import", "--official", str(tmp_path / "models"), "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "no image codec" in out and "no speech codec" in out and "no music codec" in out
    code = main(["chat", "--bundle", str(tmp_path / "b"), "--text", "x", "--want", "image"])
    assert code == 2 and "no image codec" in capsys.readouterr().err
