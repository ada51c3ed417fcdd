"""Encodec 32 kHz music codec: a tiny random Encodec saved as a Hugging Face folder and loaded back."""

import json

import numpy as np
import pytest
import torch
from official_tiny import ENCODEC_TINY, MUSIC_SR, music, write_encodec

import anygpt.codecs.encodec as encodec_module  # registers "encodec-32khz"
from anygpt.codecs.base import build_codec
from anygpt.errors import BundleError, LayoutError
from anygpt.media import save_audio

pytestmark = pytest.mark.usefixtures("no_network", "one_thread")

SR = MUSIC_SR





@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A local folder in Hugging Face format, as facebook/encodec_32khz but tiny and random."""
    return write_encodec(tmp_path_factory.mktemp("encodec_32khz"))


@pytest.fixture(scope="module")
def codec(hf_dir):
    return build_codec("encodec-32khz", {"path": str(hf_dir)})


def test_encodec_attributes(codec):
    assert (codec.modality, codec.codebook_size, codec.num_codebooks) == ("music", 2048, 4)
    assert (codec.frame_rate, codec.sample_rate, codec.tokens_per_item) == (50.0, SR, None)


def test_encodec_five_seconds_of_music_is_4_by_250_codes_and_back(codec):
    codes = codec.encode(music(5.0))
    assert codes.shape == (4, 250) and codes.dtype == torch.long
    assert ((codes >= 0) & (codes < 2048)).all()
    assert all(len(row.unique()) > 1 for row in codes)  # filled codebooks: codes follow the music
    wav = codec.decode(codes)
    assert wav.dtype == np.float32 and wav.shape == (5 * SR,) and np.isfinite(wav).all()


def test_encodec_reads_files_and_other_rates_and_stereo(codec, tmp_path):
    x = music(1.0)
    path = save_audio(tmp_path / "m.wav", music(1.0, sr=44100), 44100)
    assert codec.encode(path).shape == (4, 50)  # read, resampled to 32 kHz
    assert codec.encode((music(1.0, sr=48000), 48000)).shape == (4, 50)
    stereo = np.stack([x, x])
    assert torch.equal(codec.encode(stereo), codec.encode(x))  # channels averaged


def test_encodec_crops_long_inputs_from_the_start(hf_dir):
    cropped = build_codec("encodec-32khz", {"path": str(hf_dir), "max_seconds": 1.0})
    x = music(1.6, seed=3)
    codes = cropped.encode(x)
    assert codes.shape == (4, 50)
    assert torch.equal(codes, cropped.encode(x[:SR]))
    middle = build_codec("encodec-32khz", {"path": str(hf_dir), "max_seconds": 1.0, "crop": "middle"})
    assert torch.equal(middle.encode(x), middle.encode(x[9600 : 9600 + SR]))


def test_encodec_batches_match_single_items(codec):
    same = [music(1.0, seed=s) for s in (1, 2, 3)]
    batch = codec.encode_batch(same)
    # A batch runs other float kernels than one item (encoder outputs differ by ~1e-7), and nearest-
    # neighour codes can flip where two codebook entries are almost equally near: compare loosely.
    agree = torch.stack([(codes == codec.encode(x)).float().mean() for x, codes in zip(same, batch)])
    print("encodec batch/single code agreement", agree.tolist())
    assert (agree >= 0.9).all()
    mixed = codec.encode_batch([music(1.0, seed=4), music(0.5, seed=5)])
    assert [tuple(c.shape) for c in mixed] == [(4, 50), (4, 25)]
    wavs = codec.decode_batch(batch + mixed[1:])
    assert [w.shape for w in wavs] == [(SR,), (SR,), (SR,), (SR // 2,)]
    assert np.allclose(wavs[0], codec.decode(batch[0]), atol=1e-5)
    assert codec.encode_batch([]) == [] and codec.decode_batch([]) == []


def test_encodec_config_rebuilds_the_codec(codec, hf_dir):
    config = codec.config()
    assert json.loads(json.dumps(config)) == config
    again = build_codec("encodec-32khz", config)
    x = music(0.5, seed=6)
    assert torch.equal(again.encode(x), codec.encode(x))
    from_dict = build_codec("encodec-32khz", {"model_config": ENCODEC_TINY})  # random weights, same shapes
    assert from_dict.encode(x).shape == (4, 25)
    assert build_codec("encodec-32khz", from_dict.config()).config() == from_dict.config()


def test_encodec_rejects_bad_codes_and_folders(codec, tmp_path):
    with pytest.raises(LayoutError):
        codec.decode(torch.tensor([[0, 2048]] * 4))
    with pytest.raises(LayoutError):
        codec.decode(torch.zeros(3, 10, dtype=torch.long))
    with pytest.raises(BundleError, match="no config.json"):
        build_codec("encodec-32khz", {"path": str(tmp_path)})
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "encodec", **ENCODEC_TINY}))
    with pytest.raises(BundleError, match="cannot load Encodec"):  # config without weights
        build_codec("encodec-32khz", {"path": str(tmp_path)})
    with pytest.raises(ValueError):
        encodec_module.EncodecCodec()


def test_encodec_runs_in_bfloat16(hf_dir):
    codec = build_codec("encodec-32khz", {"path": str(hf_dir), "dtype": "bfloat16"})
    assert next(codec.parameters()).dtype == torch.bfloat16
    wav = codec.decode(codec.encode(music(0.5)))
    assert wav.dtype == np.float32 and wav.shape == (SR // 2,)


def test_encodec_inline_config_plus_state_dict_rebuilds_it(codec, tmp_path):
    """What a bundle does: build from a file-free config, then load safetensors weights."""
    from safetensors.torch import load_file, save_file

    config = codec.inline_config()
    assert config["path"] is None and config["model_config"]["codebook_size"] == 2048
    save_file({k: v.contiguous() for k, v in codec.state_dict().items()}, tmp_path / "music.safetensors")
    fresh = build_codec("encodec-32khz", json.loads(json.dumps(config)))
    fresh.load_state_dict(load_file(tmp_path / "music.safetensors"), strict=True)
    x = music(0.5, seed=8)
    assert torch.equal(fresh.encode(x), codec.encode(x))
    assert np.array_equal(fresh.decode(codec.encode(x)), codec.decode(codec.encode(x)))


def test_encodec_refuses_a_folder_with_missing_weights(hf_dir, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(hf_dir, broken)
    weights = load_file(broken / "model.safetensors")
    dropped = min(k for k in weights if "decoder" in k)
    del weights[dropped]
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(BundleError, match="missing keys") as info:
        build_codec("encodec-32khz", {"path": str(broken)})
    assert "\n" not in str(info.value)
