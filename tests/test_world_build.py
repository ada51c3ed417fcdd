"""A tiny world built twice: determinism, manifest, splits and the invariants of every kind."""

import json
import shutil
from pathlib import Path

import pytest

from anygpt.world import music, reader, splits
from anygpt.world.build import build
from anygpt.world.config import KINDS, WorldConfig


def _tools_missing() -> bool:
    fonts = music.SOUNDFONT_CANDIDATES
    return shutil.which("flite") is None or shutil.which("fluidsynth") is None or not any(
        Path(font).is_file() for font in fonts)


pytestmark = pytest.mark.skipif(
    _tools_missing(), reason="needs Debian flite, fluidsynth and a GM soundfont "
                             "(apt-get install flite fluidsynth timgm6mb-soundfont)")

N = 6
CLIP_SECONDS = 2.0  # not the default, so the test checks that clips follow the setting
CONFIG = WorldConfig(seed=3, n=N, clip_seconds=CLIP_SECONDS, clips_per_render=2)  # 3 renderings: one per split


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world") / "w"
    build(out, CONFIG, workers=2, progress=False)
    return out


def _items(world: Path, kind: str) -> list[dict]:
    return [item for split in splits.SPLITS for item in reader.iter_items(world, kind, split)]


def test_same_seed_same_bytes_whatever_the_workers(world, tmp_path):
    again = tmp_path / "again"
    build(again, CONFIG, workers=1, progress=False)
    shards = sorted(p.relative_to(world) for p in world.rglob("*.parquet"))
    assert shards == sorted(p.relative_to(again) for p in again.rglob("*.parquet"))
    for shard in shards:
        assert (world / shard).read_bytes() == (again / shard).read_bytes(), shard
    assert (world / "manifest.json").read_bytes() == (again / "manifest.json").read_bytes()


def test_manifest_counts_match_the_shards(world):
    manifest = reader.load_manifest(world)
    assert manifest["seed"] == 3 and manifest["n"] == N and manifest["clip_seconds"] == CLIP_SECONDS
    assert manifest["sample_rates"] == {"speech": 16000, "music": 32000}
    for kind in KINDS:
        total = 0
        for split in splits.SPLITS:
            rows = list(reader.iter_rows(world, kind, split))
            assert len(rows) == manifest["counts"][kind][split]
            assert all(row["split"] == split for row in rows)
            assert [row["index"] for row in rows] == sorted(row["index"] for row in rows)
            total += len(rows)
        assert total == N
        assert manifest["counts"][kind]["test"] >= 1


def test_speech_is_16k_with_transcripts(world):
    for item in _items(world, "speech"):
        assert item["sample_rate"] == 16000
        assert item["text"].strip() and item["attributes"]["text"] == item["text"]
        assert item["waveform"].ndim == 1 and 0.5 < len(item["waveform"]) / 16000 < 20
        assert abs(len(item["waveform"]) / 16000 - item["seconds"]) < 1e-3
        assert 0.3 < float(abs(item["waveform"]).max()) <= 1.0


def test_music_clips_have_the_stated_length(world):
    for item in _items(world, "music"):
        assert item["sample_rate"] == 32000
        assert len(item["waveform"]) == round(CLIP_SECONDS * 32000)
        assert item["attributes"]["seconds"] == CLIP_SECONDS
        assert float((item["waveform"] ** 2).mean()) ** 0.5 > 0.01  # not silence
        attributes, caption = item["attributes"], item["captions"][0]
        assert attributes["instrument"] in caption and f"{attributes['key']} {attributes['mode']}" in caption
        assert str(attributes["tempo_bpm"]) in caption


def test_music_pieces_of_validation_and_test_are_never_in_train(world):
    pieces = {split: {i["piece_id"] for i in reader.iter_items(world, "music", split)} for split in splits.SPLITS}
    assert not pieces["train"] & (pieces["validation"] | pieces["test"])
    for split, ids in pieces.items():
        assert all(splits.hashed_split(piece_id) == split for piece_id in ids)


def test_images_decode_and_held_out_pairs_stay_out_of_train(world):
    held = splits.held_out_pairs()
    for split in ("train", "validation"):
        for item in reader.iter_items(world, "images", split):
            assert item["image"].size == (64, 64)
            pairs = {(o["colour"], o["shape"]) for o in item["attributes"]["objects"]}
            assert not pairs & held
            for caption in item["captions"]:
                assert not any(f"{c} {s}" in caption for c, s in held)


def test_conversations_are_well_formed(world):
    for item in _items(world, "conversations"):
        turns, media = item["turns"], item["media"]
        assert 4 <= len(turns) <= 6
        assert [t["role"] for t in turns] == ["user", "assistant"] * (len(turns) // 2)
        referenced = []
        for turn in turns:
            assert turn["content"]
            for segment in turn["content"]:
                if segment["type"] == "text":
                    assert segment["text"].strip()
                else:
                    assert media[segment["ref"]]["kind"] == segment["type"]
                    referenced.append(segment["ref"])
            if turn["role"] == "user":
                spoken = media[turn["spoken"]]
                assert spoken["kind"] == "speech" and spoken["sample_rate"] == 16000
                words = " ".join(s["text"] for s in turn["content"] if s["type"] == "text")
                assert spoken["attributes"]["text"] == words
                referenced.append(turn["spoken"])
        assert sorted(referenced) == sorted(media)  # every media entry used exactly once
        for entry in media.values():
            if entry["kind"] == "image":
                assert entry["image"].size == (64, 64)
            elif entry["kind"] == "music":
                assert entry["sample_rate"] == music.sample_rate()
                assert len(entry["waveform"]) == round(CLIP_SECONDS * 32000)
        assert item["script"].count("User:") == len(turns) // 2
        if item["attributes"]["novel_combination"]:
            assert item["split"] == "test"
            assert any(m["attributes"].get("novel_combination") for m in media.values() if m["kind"] == "image")
        if item["split"] != "test":
            held = splits.held_out_pairs()
            text = json.dumps(item["turns"]) + item["script"]
            assert not any(f"{c} {s}" in text for c, s in held)

