"""SpeechTokenizer codec: a tiny random SpeechTokenizer + SoundStorm saved in the release's layout
(config.json, ckpt.dev, speechtokenizer_soundstorm_mls.pt) and loaded back through the registry."""

import json

import numpy as np
import pytest
import torch
from official_tiny import (
    SPEECH_SR,
    SPEECHTOKENIZER_TINY,
    speech,
    write_soundstorm,
    write_speechtokenizer,
)

from anygpt.codecs.base import build_codec
from anygpt.codecs.soundstorm import PRESETS
from anygpt.errors import BundleError, LayoutError
from anygpt.media import save_audio

pytestmark = pytest.mark.usefixtures("no_network", "one_thread")

SR = SPEECH_SR


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory):
    """A folder laid out like the release's speech modules, with tiny random weights."""
    out = write_speechtokenizer(tmp_path_factory.mktemp("speech_modules"))
    write_soundstorm(out / "soundstorm.pt")
    return out


def codec_config(d, **over):
    return {
        "config_path": str(d / "config.json"),
        "ckpt_path": str(d / "ckpt.dev"),
        "soundstorm_path": str(d / "soundstorm.pt"),
        "soundstorm_config": "tiny",
        **over,
    }


@pytest.fixture(scope="module")
def codec(release_dir):
    return build_codec("speechtokenizer", codec_config(release_dir))





def test_speechtokenizer_attributes(codec):
    assert (codec.modality, codec.codebook_size, codec.num_codebooks) == ("speech", 1024, 1)
    assert (codec.frame_rate, codec.sample_rate, codec.tokens_per_item) == (50.0, SR, None)


def test_speechtokenizer_one_second_gives_50_semantic_codes(codec):
    codes = codec.encode(speech(1.0))
    assert codes.shape == (1, 50) and codes.dtype == torch.long
    assert ((codes >= 0) & (codes < 1024)).all()
    assert len(codes.unique()) > 1  # filled codebooks: codes follow the audio
    rvq = codec.encode_rvq(speech(1.0))
    assert rvq.shape == (8, 50) and torch.equal(rvq[:1], codes)
    assert codec.encode(speech(1.01)).shape == (1, 51)  # a partial frame still counts


def test_speechtokenizer_decode_is_16khz_of_the_right_length(codec):
    codes = codec.encode(speech(1.0))
    wav = codec.decode(codes, seed=0)
    assert wav.dtype == np.float32 and wav.shape == (50 * 320,) and np.isfinite(wav).all()
    rvq = codec.encode_rvq(speech(0.5))
    assert codec.decode_rvq(rvq).shape == (25 * 320,)


def test_speechtokenizer_same_seed_same_voice(codec):
    codes = codec.encode(speech(0.6))
    a, b, c = codec.decode(codes, seed=7), codec.decode(codes, seed=7), codec.decode(codes, seed=8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)  # no voice prompt: a random voice, chosen by the seed
    assert np.array_equal(codec.decode(codes), codec.decode(codes, seed=0))  # None means 0


def test_speechtokenizer_voice_prompt_any_length_stereo_or_file(codec, release_dir, tmp_path):
    codes = codec.encode(speech(0.4))
    long_stereo = np.stack([speech(5.0, seed=1), speech(5.0, seed=2)])  # (2, 80000)
    prompt = codec.voice_prompt(long_stereo)
    assert prompt.shape == (8, 150)  # trimmed to voice_max_seconds = 3.0 s, every layer
    assert torch.equal(prompt, codec.encode_rvq(long_stereo.mean(0)[: 3 * SR]))
    wav = codec.decode(codes, voice=long_stereo, seed=1)
    assert wav.shape == (20 * 320,) and np.isfinite(wav).all()
    # a file at another rate is read, averaged and resampled to 16 kHz
    path = save_audio(tmp_path / "voice.wav", speech(1.0, sr=22050), 22050)
    assert codec.voice_prompt(path).shape == (8, 50)
    assert codec.decode(codes, voice=path, seed=1).shape == (20 * 320,)
    # the prompt reaches SoundStorm unmasked, in front of the codes to voice
    seen = {}
    real = codec.soundstorm.generate

    def spy(semantic, prompt=None, **kw):
        seen["prompt"] = prompt
        out = real(semantic, prompt, return_prompt=True, **kw)
        seen["out"] = out
        return out[:, prompt.shape[1] :]

    codec.soundstorm.generate = spy
    try:
        codec.decode(codes, voice=long_stereo[:, :SR], seed=3)
    finally:
        del codec.soundstorm.generate
    assert seen["prompt"].shape == (1, 50, 8)
    assert torch.equal(seen["out"][:, :50], seen["prompt"])
    assert torch.equal(seen["out"][0, 50:, 0], codes[0])


def test_speechtokenizer_config_rebuilds_the_codec(codec):
    config = codec.config()
    assert json.loads(json.dumps(config)) == config
    again = build_codec("speechtokenizer", config)
    x = speech(0.5, seed=4)
    assert torch.equal(again.encode(x), codec.encode(x))
    assert np.array_equal(again.decode(codec.encode(x), seed=2), codec.decode(codec.encode(x), seed=2))


def test_speechtokenizer_rejects_bad_codes(codec):
    with pytest.raises(LayoutError):
        codec.decode(torch.tensor([[1, 2, 1024]]))
    with pytest.raises(LayoutError):
        codec.decode(torch.zeros(2, 5, dtype=torch.long))


def test_speechtokenizer_bad_files_raise_bundle_error(release_dir, tmp_path):
    data = (release_dir / "ckpt.dev").read_bytes()
    (tmp_path / "truncated.dev").write_bytes(data[: len(data) // 3])
    bigger = {**SPEECHTOKENIZER_TINY, "dimension": 48}
    (tmp_path / "bigger.json").write_text(json.dumps(bigger))
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "partial.json").write_text(json.dumps({"n_q": 8}))
    cases = [
        ({"ckpt_path": str(tmp_path / "truncated.dev")}, "corrupt or truncated"),
        ({"ckpt_path": str(tmp_path / "absent.dev")}, "not found"),
        ({"config_path": str(tmp_path / "bigger.json")}, "shape mismatch"),
        ({"config_path": str(tmp_path / "broken.json")}, "not valid JSON"),
        ({"config_path": str(tmp_path / "partial.json")}, "lacks n_filters"),
        ({"soundstorm_path": str(release_dir / "ckpt.dev")}, "missing keys"),
        ({"soundstorm_config": "official"}, "shape mismatch"),
        ({"soundstorm_config": {**PRESETS["tiny"].to_dict(), "num_quantizers": 3}}, "fills 3 levels"),
    ]
    for over, expected in cases:
        with pytest.raises(BundleError) as info:
            build_codec("speechtokenizer", codec_config(release_dir, **over))
        assert expected in str(info.value) and "\n" not in str(info.value), (over, str(info.value))


def test_speechtokenizer_without_soundstorm_encodes_but_refuses_to_decode(release_dir):
    codec = build_codec("speechtokenizer", codec_config(release_dir, soundstorm_config=None))
    assert codec.soundstorm is None
    codes = codec.encode(speech(0.2))
    with pytest.raises(BundleError, match="needs SoundStorm"):
        codec.decode(codes)


def test_speechtokenizer_inline_config_plus_state_dict_rebuilds_it(codec, tmp_path):
    """What a bundle does: build from a file-free config, then load safetensors weights."""
    from safetensors.torch import load_file, save_file

    config = codec.inline_config()
    assert config["config_path"] is None and config["model_config"]["dimension"] == 32
    save_file({k: v.contiguous() for k, v in codec.state_dict().items()}, tmp_path / "speech.safetensors")
    fresh = build_codec("speechtokenizer", json.loads(json.dumps(config)))
    fresh.load_state_dict(load_file(tmp_path / "speech.safetensors"), strict=True)
    x = speech(0.5, seed=5)
    assert torch.equal(fresh.encode(x), codec.encode(x))
    assert np.array_equal(fresh.decode(codec.encode(x), seed=4), codec.decode(codec.encode(x), seed=4))


def test_speechtokenizer_and_soundstorm_run_in_bfloat16(release_dir):
    codec = build_codec("speechtokenizer", codec_config(release_dir, dtype="bfloat16"))
    assert next(codec.soundstorm.parameters()).dtype == torch.bfloat16
    codes = codec.encode(speech(0.4))
    wav = codec.decode(codes, voice=speech(0.4, seed=1), seed=0)
    assert codes.shape == (1, 20) and wav.dtype == np.float32 and wav.shape == (20 * 320,)
