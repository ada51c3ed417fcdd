"""Media I/O: what goes in comes out as RGB / float32 mono at the asked rate; bad files fail clearly."""

import struct
import zlib

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from anygpt.errors import MediaError
from anygpt.media import as_waveform, load_audio, load_image, save_audio, save_image


def sine(seconds: float, sample_rate: int, freq: float = 220.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Images


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P"])
def test_load_image_returns_rgb(tmp_path, mode):
    path = tmp_path / f"{mode}.png"
    Image.new(mode, (40, 30), 100).save(path)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (40, 30)


def test_transparent_pixels_become_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(path)
    assert load_image(path).getpixel((0, 0)) == (255, 255, 255)


def test_save_image_creates_folders_and_round_trips(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    path = save_image(Image.fromarray(array), tmp_path / "a" / "b" / "x.png")
    assert path.exists()
    np.testing.assert_array_equal(np.asarray(load_image(path)), array)


def test_missing_image(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        load_image(tmp_path / "nope.png")


def test_text_file_is_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("hello, not a picture")
    with pytest.raises(MediaError, match=r"notes\.png: not an image"):
        load_image(path)


def test_truncated_png(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:400])
    with pytest.raises(MediaError, match=r"cut\.png: not a readable image"):
        load_image(path)


def test_zero_size_png(tmp_path):
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)  # 0 x 0, 8-bit RGB
    path = tmp_path / "empty.png"
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    with pytest.raises(MediaError, match=r"empty\.png"):
        load_image(path)


# ---------------------------------------------------------------------------------------------
# Audio


def test_load_audio_mono_float32(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, sine(0.5, 16000), 16000)
    wav = load_audio(path, 16000)
    assert wav.dtype == np.float32 and wav.shape == (8000,)
    np.testing.assert_allclose(wav, sine(0.5, 16000), atol=1e-4)  # 16-bit quantisation


def test_stereo_is_averaged(tmp_path):
    left = sine(0.25, 16000, amp=0.8)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, 0.5 * left], axis=1), 16000)  # (frames, channels)
    np.testing.assert_allclose(load_audio(path, 16000), 0.75 * left, atol=1e-4)


def test_resampled_44k_to_16k(tmp_path):
    path = tmp_path / "cd.flac"
    sf.write(path, sine(1.0, 44100, freq=440), 44100)
    wav = load_audio(path, 16000)
    assert wav.shape == (16000,)
    # Still a 440 Hz tone after resampling (compare away from the filter's edge effects).
    np.testing.assert_allclose(wav[1000:-1000], sine(1.0, 16000, freq=440)[1000:-1000], atol=2e-3)


def test_max_seconds_crops(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, sine(2.0, 22050), 22050)
    assert load_audio(path, 16000, max_seconds=0.5).shape == (8000,)
    assert load_audio(path, 16000, max_seconds=10).shape == (32000,)


def test_missing_audio(tmp_path):
    with pytest.raises(MediaError, match=r"nope\.wav: no such file"):
        load_audio(tmp_path / "nope.wav", 16000)


def test_corrupt_wav(tmp_path):
    path = tmp_path / "bad.wav"
    path.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(200)))
    with pytest.raises(MediaError, match=r"bad\.wav: not a readable audio file"):
        load_audio(path, 16000)


def test_zero_length_wav(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(MediaError, match=r"empty\.wav: audio is empty"):
        load_audio(path, 16000)


def test_silent_wav(tmp_path):
    path = tmp_path / "quiet.wav"
    sf.write(path, np.zeros(16000, np.float32), 16000)
    with pytest.raises(MediaError, match=r"quiet\.wav: audio is silent"):
        load_audio(path, 16000)


def test_nan_samples_in_file(tmp_path):
    wav = sine(0.1, 16000)
    wav[10] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, wav, 16000, subtype="FLOAT")
    with pytest.raises(MediaError, match="NaN"):
        load_audio(path, 16000)


def test_as_waveform_accepts_tensors_channels_and_int16():
    stereo = np.stack([sine(0.1, 16000), np.zeros(1600, np.float32)])  # (channels, samples)
    np.testing.assert_allclose(as_waveform(torch.from_numpy(stereo), 16000), 0.5 * stereo[0])
    pcm = (sine(0.1, 16000) * 32767).astype(np.int16)
    np.testing.assert_allclose(as_waveform(pcm, 16000), sine(0.1, 16000), atol=1e-4)
    assert as_waveform(np.ones(4, np.float64), 16000).dtype == np.float32


@pytest.mark.parametrize(
    "x, message",
    [
        (np.zeros(0), "empty"),
        (np.full(100, 1e-6), "silent"),
        (np.array([0.1, np.inf, 0.2]), "NaN or infinite"),
        (np.zeros((100, 2)), r"expected \(channels, samples\)"),
        (np.zeros((2, 2, 2)), "1-D or"),
    ],
)
def test_as_waveform_rejects(x, message):
    with pytest.raises(MediaError, match=f"^prompt: .*{message}"):
        as_waveform(x, 16000, source="prompt")


def test_save_audio_writes_clipped_pcm16(tmp_path):
    wav = np.array([0.0, 0.5, 2.0, -3.0], np.float32)
    path = save_audio(tmp_path / "out" / "x.wav", wav, 16000)
    info = sf.info(path)
    assert (info.subtype, info.samplerate, info.channels) == ("PCM_16", 16000, 1)
    back, _ = sf.read(path, dtype="float32")
    np.testing.assert_allclose(back, [0.0, 0.5, 1.0, -1.0], atol=1e-4)


def test_save_audio_refuses_nan(tmp_path):
    with pytest.raises(MediaError, match="NaN"):
        save_audio(tmp_path / "x.wav", np.array([0.1, np.nan], np.float32), 16000)
