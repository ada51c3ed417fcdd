"""Training the small codecs: an interrupted run resumes to the same losses, the artefacts are
written (atomically), the export loads through the registry, losses fall, and the commands run."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from anygpt.train.codecs import recipes as train
from anygpt.train.codecs import export, loop
from anygpt.codecs.small.audio import SmallSpeechCodec

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {
    "image": {"codebook_size": 64, "channels": [8, 8, 16], "code_dim": 8},
    "speech": {"n_fft": 256, "width": 16, "depth": 1, "codebook_size": 32, "code_dim": 8,
               "soundstorm": {"dim": 16, "depth": 1, "heads": 2, "head_dim": 8, "conv_kernel": 3}},
    "music": {"n_fft": 512, "width": 16, "depth": 1, "codebook_size": 32, "code_dim": 8},
    "phones": {"n_fft": 256, "width": 16, "depth": 1, "codebook_size": 64, "code_dim": 8, "units": "phones",
               "acoustic_codebook_size": 16, "renderer": {"width": 16, "depth": 1, "speaker_dim": 8, "speaker_depth": 1}},
}


def tones(n: int, seconds: float, rate: int) -> list[dict]:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    words = ["a cat", "big dog", "the sun"]
    frames = -(-len(t) * 50 // rate)  # phone labels at 50 Hz (speech)
    return [{"wav": (0.3 * np.sin(2 * np.pi * rng.uniform(100, 900) * t)).astype(np.float32),
             "text": words[i % 3], "speaker": "x", "phones": torch.arange(frames) % 5} for i in range(n)]


def images(n: int) -> torch.Tensor:
    small = torch.randint(0, 256, (n, 3, 4, 4), generator=torch.Generator().manual_seed(0)).float()
    return torch.nn.functional.interpolate(small, size=64, mode="bilinear").to(torch.uint8)


def phone_runs(codec: SmallSpeechCodec) -> list[dict]:
    """voice_data of tones whose layer 1 is replaced by phone runs of known lengths (1..6 frames)."""
    data = train.voice_data(codec, tones(4, 0.5, 16000))
    gen = torch.Generator().manual_seed(1)
    for d in data:
        frames = d["phones"].shape[0]
        runs = torch.randint(1, 7, (frames,), generator=gen)
        d["phones"] = torch.repeat_interleave(torch.arange(frames) % 7 + 1, runs)[:frames]
    return data


def run(kind: str, out: Path, steps: int, stop_after=None, resume=True, batch=2, lr=None):
    cfg = train.default_config(kind, out, steps=steps, batch=batch, lr=lr, warmup=2, save_every=2,
                               crop_seconds=0.2, max_frames=20, export_dtype="float32",
                               vq_warmup=2,  # audio: steps 0-1 unquantized, then codebooks seeded and updated
                               codec=TINY.get(kind, {}))
    if kind == "image":
        return train.train_image(None, cfg, stop_after=stop_after, progress=False, resume=resume, images=images(6))
    if kind == "speech":
        return train.train_speech(None, cfg, stop_after=stop_after, progress=False, resume=resume,
                                  items=tones(4, 0.5, 16000))
    if kind == "music":
        return train.train_music(None, cfg, stop_after=stop_after, progress=False, resume=resume,
                                 items=tones(3, 0.5, 32000))
    if kind == "voice":
        codec = SmallSpeechCodec(**TINY["phones"])
        return train.train_voice(None, cfg, stop_after=stop_after, progress=False, resume=resume,
                                 data=train.voice_data(codec, tones(4, 0.5, 16000)), codec=codec)
    if kind == "durations":
        codec = SmallSpeechCodec(**TINY["phones"])
        return train.train_durations(None, cfg, stop_after=stop_after, progress=False, resume=resume,
                                     data=phone_runs(codec), codec=codec)
    codec = SmallSpeechCodec(**TINY["speech"])
    gen = torch.Generator().manual_seed(0)
    codes = [torch.randint(32, (30, 8), generator=gen) for _ in range(5)]
    return train.train_soundstorm(None, cfg, stop_after=stop_after, progress=False, resume=resume,
                                  codes=codes, codec=codec)


@pytest.mark.parametrize("kind", ["image", "speech", "music", "soundstorm", "voice", "durations"])
def test_resumed_run_matches_an_uninterrupted_one(kind, tmp_path):
    whole = [r["loss"] for r in run(kind, tmp_path / "a", 5)]
    first = run(kind, tmp_path / "b", 5, stop_after=3)  # "interrupted" after 3 steps (checkpoint at 3)
    assert len(first) == 3
    rest = run(kind, tmp_path / "b", 5)
    assert [r["step"] for r in rest] == [3, 4]
    assert [r["loss"] for r in first + rest] == whole
    logged = loop.read_metrics(tmp_path / "b")
    assert [r["step"] for r in logged] == list(range(5))
    for d in (tmp_path / "a", tmp_path / "b"):
        assert (d / loop.CHECKPOINT).is_file() and (d / loop.PLOT).is_file() and (d / "config.json").is_file()
        assert not list(d.rglob("*.tmp*"))  # atomic writes leave no temporary files
        codec = export.load_codec_dir(d / export.EXPORT)
        assert json.loads((d / export.EXPORT / export.CODEC_JSON).read_text())["name"] == train.CODEC_NAMES[kind]
    # both runs end with identical weights
    a = export.load_codec_dir(tmp_path / "a" / export.EXPORT).state_dict()
    b = export.load_codec_dir(tmp_path / "b" / export.EXPORT).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert codec.modality in ("image", "speech", "music")


def test_no_resume_starts_over(tmp_path):
    run("image", tmp_path, 3)
    again = run("image", tmp_path, 3, resume=False)
    assert [r["step"] for r in again] == [0, 1, 2]
    assert [r["step"] for r in loop.read_metrics(tmp_path)] == [0, 1, 2]


def test_soundstorm_masks_as_generate_sees_them():
    gen = torch.Generator().manual_seed(0)
    codes = [torch.randint(32, (40, 8), generator=gen) for _ in range(4)]
    for s in range(20):
        semantic, acoustic, target, masked, q = train.soundstorm_batch(
            codes, loop.step_rng(0, s), loop.step_generator(0, s), 3, 30, 7, 32)
        assert semantic.shape == (3, 30) and acoustic.shape == (3, 30, 7) and masked.any(1).all()
        assert (acoustic[..., :q] < 32).all()  # levels below q are given
        assert torch.equal(acoustic[..., q][masked], torch.full((int(masked.sum()),), 32))
        assert torch.equal(acoustic[..., q][~masked], target[~masked])
        # masks cover a suffix of frames (what is generated); the prefix (the prompt) keeps every level
        if q < 6:
            for b in range(3):
                after = (acoustic[b] == 32).any(-1)  # (N,)
                first = int(after.nonzero()[0])
                assert after[first:].all() and (acoustic[b, first:, q + 1:] == 32).all()
                assert not masked[b, :first].any()


def test_voice_batches_take_the_voice_from_another_utterance_of_the_speaker():
    codec = SmallSpeechCodec(**TINY["phones"])
    items = tones(6, 0.5, 16000)
    for i, item in enumerate(items):
        item["speaker"] = "ab"[i % 2]
    data = train.voice_data(codec, items)
    by_speaker = {"a": [0, 2, 4], "b": [1, 3, 5]}

    def source(crop: torch.Tensor, key: str) -> int:  # the utterance a crop (..., N) was cut from
        n = crop.shape[-1]
        return next(i for i, d in enumerate(data) for s in range(d[key].shape[-1] - n + 1)
                    if torch.equal(d[key][..., s : s + n].float(), crop.float()))

    for s in range(10):
        phones, latent, feats, voices, lengths = train.voice_batch(data, by_speaker, loop.step_rng(0, s), 4, 20, 30,
                                                                   no_voice=0.0)
        assert phones.shape == (4, 20) and latent.shape == (4, 20, 8) and feats.shape[::2] == (4, 20)
        assert voices.shape[::2] == (4, 30) and (lengths == 25).all()  # 0.5 s at 50 Hz, zero-padded
        assert (voices[..., 25:] == 0).all()
        for b in range(4):
            row, voice = source(feats[b].half(), "feats"), source(voices[b, :, :25].half(), "feats")
            assert voice != row and voice % 2 == row % 2


def test_phone_units_fill_every_layer_from_the_renderer():
    codec = SmallSpeechCodec(**TINY["phones"])
    wav = tones(1, 0.5, 16000)[0]["wav"]
    codes = codec.encode_rvq(wav)
    assert codes.shape == (8, 25) and int(codes[0].max()) < 45  # layer 1: phone classes
    full = codec.fill(torch.cat([codes[:1, :10], torch.tensor([[63, 50]])], 1), voice=(wav, 16000))
    assert full.shape == (8, 12) and int(full[1:].max()) < 16
    assert torch.equal(full[0, -2:], torch.tensor([63, 50]))  # ids past the phones are kept, read as pauses
    assert len(codec.decode(codes[:1])) == 25 * 320


def test_image_loss_falls(tmp_path):
    rows = run("image", tmp_path, 60, batch=6, lr=5e-3)
    losses = [r["loss"] for r in rows]
    assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5])


# ---------------------------------------------------------------------------------------------
# The commands, on a tiny world


@pytest.fixture(scope="module")
def world(small_world):
    return small_world(6, ("images", "speech", "music"))


def _sets(kind: str) -> list[str]:
    out = []
    for k, v in TINY[kind].items():
        out += ["--set", f"{k}={json.dumps(v)}"]
    return out


def test_commands_train_and_eval(world, tmp_path, capsys):
    from anygpt.cli import main

    common = ["--world", str(world), "--steps", "2", "--batch", "2", "--save-every", "1", "--no-progress"]
    for kind in ("image", "speech", "music"):
        assert main(["codecs", "train", kind, "--out", str(tmp_path / kind), *common, *_sets(kind)]) == 0
        printed = capsys.readouterr().out
        assert json.loads(printed[: printed.index("\n}\n") + 2])["kind"] == kind  # resolved config first
    assert main(["codecs", "train", "soundstorm", "--codec", str(tmp_path / "speech" / "export"),
                 "--out", str(tmp_path / "ss"), "--max-frames", "20", *common]) == 0
    for kind, export in (("image", "image"), ("speech", "ss"), ("music", "music")):
        capsys.readouterr()
        assert main(["eval", "codecs", "--codec", str(tmp_path / export / "export"), "--kind", kind,
                     "--world", str(world), "--n", "2", "--out", str(tmp_path / "eval")]) == 0
        metrics = json.loads((tmp_path / "eval" / f"eval_{kind}.json").read_text())
        assert metrics["items"] == 2 and metrics["kind"] == kind
    speech = json.loads((tmp_path / "eval" / "eval_speech.json").read_text())
    assert 0 <= speech["reconstruction"]["layer1_phone_acc"] <= 1


def test_duration_batches_hold_the_runs_and_mask_the_cut_ones():
    phones = torch.tensor([[3, 3, 5, 5, 5, 0, 7, 7], [4, 4, 4, 4, 4, 4, 9, 9]])
    ids, log_frames, mask = train.duration_batch(phones)
    assert ids.tolist() == [[3, 5, 0, 7], [4, 9, 0, 0]]  # the second row padded with pauses
    assert torch.allclose(log_frames.exp(), torch.tensor([[2.0, 3, 1, 2], [6, 2, 1, 1]]))
    assert mask.tolist() == [[0, 1, 1, 0], [0, 0, 0, 0]]  # a crop's first and last runs may be cut


def test_merged_runs_encode_one_code_per_phone_and_decode_to_the_predicted_frames():
    frames = SmallSpeechCodec(**TINY["phones"])
    merged = train.with_durations(frames)
    assert merged.config()["runs"] == "merged" and "runs" not in frames.config()
    state = merged.state_dict()
    assert all(torch.equal(state[k], v) for k, v in frames.state_dict().items())  # the codec itself is unchanged
    wav = tones(1, 0.5, 16000)[0]["wav"]
    per_frame = frames.encode(wav)
    codes = merged.encode(wav)
    assert torch.equal(codes[0], torch.unique_consecutive(per_frame[0]))
    with torch.no_grad():  # every phone lasts exp(log 3) = 3 frames
        merged.durations.body[-1].weight.zero_()
        merged.durations.body[-1].bias.fill_(float(np.log(3.0)))
    full = merged.fill(torch.tensor([[5, 9, 63]]))  # an id past the phones: a pause, kept as written
    assert full.shape == (8, 9) and full[0].tolist() == [5, 5, 5, 9, 9, 9, 63, 63, 63]
    assert len(merged.decode(codes)) == 3 * codes.shape[1] * 320
    assert train.with_durations(merged) is merged
    with pytest.raises(Exception, match="phone units"):
        SmallSpeechCodec(**{**TINY["speech"], "runs": "merged"})
