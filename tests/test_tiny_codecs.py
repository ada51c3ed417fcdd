"""The trained codecs shipped in the tiny bundle: they load through the bundle, keep AnyGPT's token
geometry, give pinned codes on fixed inputs, reconstruct what they were trained on, and layer 1 of
speech carries the phones."""

import shutil

import numpy as np
import pytest
import torch

from anygpt.bundles import load_codec_slots
from anygpt.codecs.small.audio import PHONES

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def codecs():
    slots = load_codec_slots("tiny")
    assert sorted(slots) == ["image", "music", "speech"]
    return {m: s.get() for m, s in slots.items()}


def scene():
    from anygpt.world.scenes import render_scene

    return render_scene({"background": {"colour": "light blue", "pattern": "plain"},
                         "objects": [{"shape": "circle", "colour": "red", "size": "large", "position": "centre",
                                      "pattern": "solid"}]}, 64)


def tone(seconds: float, rate: int, freqs=(220.0, 440.0)) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.3 * sum(np.sin(2 * np.pi * f * t) for f in freqs)).astype(np.float32)


def test_geometry(codecs):
    image, speech, music = codecs["image"], codecs["speech"], codecs["music"]
    assert (image.name, image.tokens_per_item, image.codebook_size) == ("small-scene", 38, 1024)
    assert (speech.name, speech.n_q, speech.codebook_size, speech.frame_rate) == ("small-speech", 8, 1024, 50.0)
    assert (music.name, music.num_codebooks, music.codebook_size, music.frame_rate) == ("small-music", 4, 2048, 50.0)


def test_image_codes_are_the_scene_and_draw_it_back(codecs):
    from anygpt.train.codecs.scene import scene_codes

    codec = codecs["image"]
    img = scene()
    codes = codec.encode(img)
    assert codes.shape == (1, 38)
    truth = {"background": {"colour": "light blue", "pattern": "plain"},
             "objects": [{"shape": "circle", "colour": "red", "size": "large", "position": "centre", "pattern": "solid"}]}
    assert codes[0].tolist() == scene_codes(truth, codec).tolist()  # every code is one attribute, read right
    out = np.asarray(codec.decode(codes), dtype=np.float32)
    x = np.asarray(img.convert("RGB"), dtype=np.float32)
    psnr = 10 * np.log10(255.0**2 / np.mean((out - x) ** 2))
    assert psnr > 28, psnr  # the renderer draws the world's scene almost exactly


def test_image_codes_round_trip_on_random_scenes(codecs):
    """encode(decode(codes)) ~ codes on scenes of the world's grammar, held-out colour-shape pairs
    included (the renderer draws them from separate colour and shape codes), and the image judge
    reads the drawings as the scenes they say."""
    import random

    from anygpt.train.codecs.scene import scene_codes
    from anygpt.world.scenes import sample_scene, scene_tables
    from anygpt.eval.judges.image import ImageJudge, attribute_accuracy

    codec = codecs["image"]
    held_out = {tuple(p) for p in scene_tables()["held_out_colour_shape"]}
    rng = random.Random(7)
    scenes = [sample_scene(rng, held_out, novel=i % 2 == 1) for i in range(24)]
    codes = torch.stack([scene_codes(s, codec) for s in scenes])
    drawn = [codec.decode(c[None]) for c in codes]
    again = torch.cat([codec.encode(im) for im in drawn])
    agree = (again == codes).float().mean()  # a misread code is mostly a shape; see README
    assert agree >= 0.97, agree
    assert attribute_accuracy(ImageJudge.load().attributes(drawn), scenes)["mean"] >= 0.95


def _utterance():
    from anygpt.world import speech

    if shutil.which("flite") is None:
        pytest.skip("needs Debian flite")
    text = "the red circle is above a small green square"
    return speech.synthesize(text, "slt"), speech.phone_alignment(text, "slt")


def test_speech_layer_one_carries_the_phones(codecs):
    codec = codecs["speech"]
    wav, alignment = _utterance()
    said = [p for p, _ in alignment if p != "pau"]
    heard = codec.phones(wav).split()
    assert set(heard) <= set(PHONES)
    # edit distance between the phones read from layer 1 alone and flite's phones
    d = np.arange(len(heard) + 1)
    for i, a in enumerate(said, 1):
        prev, d[0] = d.copy(), i
        for j, b in enumerate(heard, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (a != b))
    assert d[-1] / len(said) < 0.35, (said, heard)
    # layer 1 is the phone class itself, held across each phone: few distinct codes, long runs
    first = codec.encode_rvq(wav)[0]
    runs = len(first) / (int((first[1:] != first[:-1]).sum()) + 1)
    assert int(first.max()) < len(PHONES) and runs > 3.0, runs
    # the LLM sees each run once: about one code per phone
    merged = codec.encode(wav)[0]
    assert torch.equal(merged, torch.unique_consecutive(first))
    assert abs(len(merged) - len(alignment)) <= 0.25 * len(alignment), (len(merged), len(alignment))


def test_the_speech_span_limit_counts_phones(codecs):
    """The tiny layout bounds a speech span by the codes it holds (one per phone), not 50 Hz frames."""
    from anygpt.bundles.load import packaged_bundles, read_manifest
    from anygpt.bundles.tiny_init import SPEECH_CODES_PER_SECOND
    from anygpt.layout import LayoutConfig

    layout = LayoutConfig.from_dict(read_manifest(packaged_bundles()["tiny"])["layout"])
    spec = next(m for m in layout.modalities if m.name == "speech")
    assert spec.frame_rate == SPEECH_CODES_PER_SECOND < codecs["speech"].frame_rate
    wav, _ = _utterance()
    seconds = len(wav) / codecs["speech"].sample_rate
    codes = codecs["speech"].encode(wav).shape[1]
    # the utterance fits the span its length allows, with room for faster speech, and 8 s allow 160
    assert codes <= spec.max_span_tokens(seconds) <= 2.5 * codes, (codes, seconds)
    assert spec.max_span_tokens(8.0) == 160
def test_speech_round_trip_and_cloning_are_seeded(codecs):
    codec = codecs["speech"]
    wav, _ = _utterance()
    codes = codec.encode_rvq(wav)
    assert codes.shape == (8, -(-len(wav) // 320))
    rec = codec.decode_rvq(codes)
    assert rec.shape == (codes.shape[1] * 320,)
    n = min(len(wav), len(rec))
    assert np.corrcoef(np.abs(np.fft.rfft(wav[:n])), np.abs(np.fft.rfft(rec[:n])))[0, 1] > 0.8
    voice = tone(2.0, 16000, (140.0, 280.0))
    phones = codec.encode(wav)  # one code per phone
    a = codec.decode(phones, voice=voice, seed=3)
    assert np.array_equal(a, codec.decode(phones, voice=voice, seed=3))
    filled = codec.fill(phones, voice=voice, seed=3)
    # the duration head gives each phone back about its frames: the same phones, about as long
    assert torch.equal(torch.unique_consecutive(filled[0]), phones[0])
    assert abs(filled.shape[1] - codes.shape[1]) < 0.2 * codes.shape[1], (filled.shape, codes.shape)
    # the voice renderer takes the voice from the prompt: two voices give two different fillings
    other = codec.fill(phones, voice=(wav, 16000), seed=3)
    n = min(other.shape[1], filled.shape[1])
    assert (other[1:, :n] != filled[1:, :n]).float().mean() > 0.3
    assert codes[:, 10].tolist() == PINNED["speech"]


def _world_music():
    """Two held-out clips of different pieces, rendered as the evaluation world renders them."""
    from anygpt.world import items, music, pngwav, splits
    from anygpt.world.config import WorldConfig

    if shutil.which("fluidsynth") is None:
        pytest.skip("needs Debian fluidsynth")
    config = WorldConfig(seed=0, n=400)
    groups = [g for g, s in enumerate(splits.assign(0, "music", -(-400 // config.clips_per_render))) if s == "test"]
    font = music.find_soundfont()
    return [pngwav.decode_wav(items.music_rows(config, g, "test", font)[0]["audio"])[0] for g in groups[:2]]


def test_music_round_trip(codecs):
    from anygpt.codecs.small.audio import mel_distance

    codec = codecs["music"]
    codes = codec.encode(tone(1.0, 32000))
    assert codes.shape == (4, 50)
    assert codes[:, 25].tolist() == PINNED["music"]
    # tonal layer 1: instrument x 13 + pitch slot, one instrument held across the clip
    assert int(codes[0].max()) < 13 * len(codec.config()["instruments"]) and len(set((codes[0] // 13).tolist())) == 1
    clip, other = _world_music()
    rec = codec.decode(codec.encode(clip))
    assert rec.shape == (-(-len(clip) // 640) * 640,)
    # the reconstruction is far closer to its clip than another piece is
    assert mel_distance(clip, rec, 32000) < 0.5 * mel_distance(clip, other, 32000)


# Pinned on the shipped weights (torch 2.13 CPU, one thread) and the fixed inputs above.
PINNED = {"speech": [12, 112, 123, 94, 94, 11, 121, 125],
          "music": [62, 1987, 1402, 1853]}


def test_codecs_shipped_after_the_llm_are_the_ones_a_new_bundle_starts_from(tmp_path):
    """`anygpt codecs ship` rewrites codecs/codecs.json before the LLM is retrained; init-tiny must
    start from those codecs, not the ones the old manifest names."""
    import json

    from anygpt.bundles import packaged_bundles

    folder = tmp_path / "tiny"
    shutil.copytree(packaged_bundles()["tiny"], folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["codecs"]["image"] = {"name": "small-image", "config": {}, "weights": "codecs/image.safetensors"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert load_codec_slots(folder)["image"].name == "small-image"  # a bundle is what its manifest says
    assert load_codec_slots(folder, shipped=True)["image"].name == "small-scene"
