"""small-music with tonal layer 1 (units="tonal"): the pitch-class slots, the instrument held across a
clip, any id decodes, the shipped config is unchanged, training learns the instrument head, and the
layer-1 probe reads what the codes carry."""

import numpy as np
import pytest
import torch

from anygpt.codecs.base import build_codec
from anygpt.train.codecs import probe
from anygpt.train.codecs import recipes as train
from anygpt.train.codecs import export
from anygpt.codecs.small.audio import SmallMusicCodec
from anygpt.codecs.small.tonal import SLOTS, chroma_matrix
from anygpt.errors import BundleError

pytestmark = pytest.mark.usefixtures("one_thread")

RATE = 32000
INSTRUMENTS = ["flute", "cello", "piano"]
SMALL = {"n_fft": 512, "width": 16, "depth": 1, "codebook_size": 64, "code_dim": 8, "units": "tonal",
         "instruments": INSTRUMENTS, "log_floor": 0.002}


def note(freq: float, seconds: float, harmonics: int = 1) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return sum(0.3 / h * np.sin(2 * np.pi * freq * h * t) for h in range(1, harmonics + 1)).astype(np.float32)


@pytest.fixture(scope="module")
def tonal():
    return SmallMusicCodec(**SMALL)


def test_chroma_matrix_folds_bins_onto_pitch_classes():
    m = chroma_matrix(RATE, 4096)
    assert m.shape == (12, 2049) and float(m.sum(0).max()) == 1.0
    a440 = round(440 * 4096 / RATE)  # the bin of A4
    assert int(m[:, a440].argmax()) == 9 and float(m[:, 10].sum()) == 0  # 78 Hz is below the band


def test_slots_follow_the_pitch_and_rest_in_silence(tonal):
    wav = np.concatenate([note(261.63, 0.4, 3), note(392.0, 0.4, 3), np.zeros(int(0.4 * RATE), np.float32)])
    first = tonal.encode(wav)[0]  # (60,): C, then G, then silence
    slots, instrument = first % SLOTS, first // SLOTS
    assert slots[3:17].eq(1).all() and slots[23:37].eq(8).all() and slots[45:].eq(0).all()
    assert instrument.eq(instrument[0]).all()  # one instrument across the clip
    assert int(first.max()) < len(INSTRUMENTS) * SLOTS


def test_any_id_decodes_and_the_export_reloads(tonal, tmp_path):
    codes = torch.randint(64, (4, 10), generator=torch.Generator().manual_seed(0))
    assert tonal.decode(codes).shape == (10 * 640,)  # ids past instruments x 13 read as 0
    export.export_codec(tonal, "small-music", tmp_path, dtype="float32")
    loaded = export.load_codec_dir(tmp_path)
    wav = note(330.0, 0.3, 2)
    assert torch.equal(loaded.encode(wav), tonal.encode(wav))
    assert loaded.config() == tonal.config() and loaded.config()["instruments"] == INSTRUMENTS
    assert loaded.instrument(wav) in INSTRUMENTS


def test_the_default_codec_config_is_unchanged():
    assert sorted(SmallMusicCodec().config()) == ["code_dim", "codebook_size", "decay", "depth", "gl_iters", "hop",
                                                  "n_fft", "num_codebooks", "sample_rate", "seed", "subframes",
                                                  "width"]
    assert SmallMusicCodec().instrument(note(440.0, 0.1)) is None
    with pytest.raises(BundleError):
        build_codec("small-music", {**SMALL, "instruments": []})


def test_training_learns_the_instrument_of_each_clip(tmp_path):
    items = [{"wav": note(f, 0.6, h), "instrument": name}
             for f, h, name in ((220.0, 1, "flute"), (330.0, 6, "cello"), (262.0, 1, "flute"), (392.0, 6, "cello"))]
    cfg = train.default_config("music", tmp_path, steps=40, batch=4, lr=3e-3, warmup=2, save_every=40,
                               crop_seconds=0.3, vq_warmup=2, export_dtype="float32", codec=SMALL)
    rows = train.train_music(None, cfg, progress=False, items=items)
    assert items[0]["labels"].eq(0).all() and items[1]["labels"].eq(1).all()
    assert rows[-1]["instrument_acc"] == 1.0 and rows[-1]["instrument_ce"] < rows[0]["instrument_ce"] / 4
    codec = export.load_codec_dir(tmp_path / export.EXPORT)
    assert [codec.instrument(it["wav"]) for it in items] == [it["instrument"] for it in items]


def test_probe_reads_a_separable_attribute_and_counts_runs():
    assert probe.mean_run(torch.tensor([3, 3, 3, 5, 5, 3])) == 2.0
    assert probe.bag(torch.tensor([1, 1, 2, 9]), 4).tolist() == [0.0, 0.5, 0.25, 0.0]  # 9: past the book
    gen = torch.Generator().manual_seed(0)
    labels = ["a", "b", "c"] * 10
    bags = torch.stack([probe.bag(torch.randint(4, (50,), generator=gen) + 4 * "abc".index(v), 12) for v in labels])
    acc, majority = probe.probe_accuracy(bags[:21], labels[:21], bags[21:], labels[21:])
    assert acc == 1.0 and majority == pytest.approx(1 / 3)
    noise = torch.rand(30, 12, generator=gen)  # bags that say nothing: no better than chance
    acc, _ = probe.probe_accuracy(noise[:21], labels[:21], noise[21:], labels[21:])
    assert acc < 0.8
    assert probe.label({"key": "D-flat", "mode": "major"}, "key") == probe.label({"key": "C-sharp", "mode": "major"}, "key")


def test_ship_with_a_base_bundle_replaces_only_the_music_codec(tonal, tmp_path):
    import json

    from anygpt.bundles import load_codec_slots
    from anygpt.codecs.small.image import SmallImageCodec

    base = tmp_path / "base"
    image = SmallImageCodec(codebook_size=64, channels=[8, 8, 16], code_dim=8)
    export.export_codec(image, "small-image", tmp_path / "image")
    export.export_codec(SmallMusicCodec(n_fft=512, width=16, depth=1, codebook_size=64, code_dim=8), "small-music",
                    tmp_path / "old")
    export.ship_codecs({"image": tmp_path / "image", "music": tmp_path / "old"}, base)
    export.export_codec(tonal, "small-music", tmp_path / "new")
    export.ship_codecs({"music": tmp_path / "new"}, tmp_path / "out", base=base)
    before = json.loads((base / "codecs" / "codecs.json").read_text())
    after = json.loads((tmp_path / "out" / "codecs" / "codecs.json").read_text())
    assert after["image"] == before["image"] and after["music"]["config"]["units"] == "tonal"
    slots = load_codec_slots(tmp_path / "out")
    assert slots["music"].get().config() == tonal.config()
    assert slots["image"].get().config() == image.config()
    export.ship_codecs({"music": tmp_path / "old"}, base, base=base)  # in place: the base is the bundle itself
    again = json.loads((base / "codecs" / "codecs.json").read_text())
    assert again == before and load_codec_slots(base)["image"].get().config() == image.config()


def test_mel_power_loss_is_zero_on_the_target_and_catches_lost_energy(tonal):
    from anygpt.codecs.small.audio import mel_power_loss

    feats = tonal.net.features(torch.from_numpy(note(440.0, 0.2, 4))[None])  # (1, dims, 10)
    assert float(mel_power_loss(tonal.net, feats, feats)) == 0.0
    assert float(mel_power_loss(tonal.net, feats - 0.5, feats)) > 0.1
    assert float(mel_power_loss(tonal.net, feats - 0.5, feats, frames=torch.tensor([0]))) == 0.0


def test_init_from_trains_the_decoder_and_keeps_every_code(tmp_path):
    items = [{"wav": note(f, 0.6, 3), "instrument": "flute"} for f in (220.0, 330.0)]
    first = train.default_config("music", tmp_path / "a", steps=6, batch=2, warmup=2, save_every=6,
                                 crop_seconds=0.3, vq_warmup=2, export_dtype="float32", codec=SMALL)
    train.train_music(None, first, progress=False, items=items)
    again = train.default_config("music", tmp_path / "b", steps=4, batch=2, warmup=2, save_every=4, crop_seconds=0.3,
                                 vq_warmup=0, export_dtype="float32", codec={}, mel_weight=1.0,
                                 init_from=str(tmp_path / "a" / export.EXPORT))
    rows = train.train_music(None, again, progress=False, items=items)
    assert rows[0]["mel"] > 0
    a, b = (export.load_codec_dir(tmp_path / d / export.EXPORT) for d in "ab")
    assert torch.equal(a.encode(items[0]["wav"]), b.encode(items[0]["wav"]))
    sa, sb = a.state_dict(), b.state_dict()
    changed = {k for k in sa if not torch.equal(sa[k], sb[k])}
    assert changed and all(k.startswith("net.decoder.") for k in changed)
