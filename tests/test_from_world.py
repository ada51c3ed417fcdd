"""`anygpt data from-world`: a tiny world -> raw records that the tokenizer reads back, with counts equal
to the world's, media that open, unique ids, byte-identical reruns, and mixtures that `mix` accepts."""

import json
import shutil
from pathlib import Path

import pytest

from anygpt.cli import main
from anygpt.data.pipeline import records, shards
from anygpt.data.pipeline.from_world import CHAT_FILE, PAIR_FILES, SUMMARY
from anygpt.world import reader

pytestmark = pytest.mark.usefixtures("one_thread")

SPLITS = ("train", "validation")
STEMS = {**PAIR_FILES, "conversations": CHAT_FILE}  # world kind -> file stem


@pytest.fixture(scope="module")
def world(small_world):
    return small_world(8, ("images", "speech", "music", "conversations"))


@pytest.fixture(scope="module")
def export(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "x"
    assert main(["data", "from-world", "--world", str(world), "--out", str(out)]) == 0
    return out


def _read(path: Path) -> list[records.RawUnit]:
    """Every record of a file through the tokenizer's own parser (raises on any it would skip)."""
    units = []
    for key, obj, base in records.iter_records([path]):
        assert not isinstance(obj, Exception), obj
        units.append(records.parse_record(obj, key, base))
    return units


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_counts_media_and_ids(world, export):
    import soundfile as sf
    from PIL import Image

    counts = reader.load_manifest(world)["counts"]
    summary = json.loads((export / SUMMARY).read_text())
    ids = set()
    for split in SPLITS:
        for kind, stem in STEMS.items():
            path = export / split / f"{stem}.jsonl"
            units = _read(path)
            assert len(units) == counts[kind][split] == summary["counts"][split][stem]
            ids |= {u.key for u in units}
            assert {u.kind for u in units} == {"chat" if kind == "conversations" else "pair"}
            for u in units:
                for seg in u.segments:
                    if seg.modality == "image":
                        with Image.open(seg.source) as img:
                            assert img.size == (64, 64)
                    elif seg.modality != "text":
                        info = sf.info(seg.source)
                        assert info.samplerate == (16000 if seg.modality == "speech" else 32000)
                        assert info.frames > 0
                    assert seg.modality != "text" or seg.text.strip()
    assert len(ids) == sum(counts[k][s] for k in STEMS for s in SPLITS)  # unique across files and splits
    assert not list(export.rglob("*.tmp"))
    assert sorted(summary["mixtures"]) == ["instruct.toml", "instruct_validation.toml", "pretrain.toml",
                                           "pretrain_validation.toml"]


def test_pairs_carry_the_world_text(world, export):
    rows = {r["id"]: r for r in reader.iter_rows(world, "images", "train")}
    for rec in _lines(export / "train" / "image_pairs.jsonl"):
        item, suffix = rec["id"].split("/")
        assert suffix == "caption0" and rec["text"] == rows[item]["captions"][0]
        assert (export / "train" / rec["image"]).read_bytes() == rows[item]["image"]  # stored bytes, as is
    speech = {r["id"]: r["text"] for r in reader.iter_rows(world, "speech", "train")}
    assert {r["id"]: r["text"] for r in _lines(export / "train" / "speech_pairs.jsonl")} == {
        f"{k}/transcript": v for k, v in speech.items()}


def test_chats_follow_the_conversations(world, export):
    spoken_seen = text_seen = 0
    for split in SPLITS:
        convs = {r["id"]: r for r in reader.iter_items(world, "conversations", split)}
        for rec in _lines(export / split / "chats.jsonl"):
            conv = convs[rec["id"].removesuffix("/chat")]
            assert [m["role"] for m in rec["messages"]] == [t["role"] for t in conv["turns"]]
            for i, (msg, turn) in enumerate(zip(rec["messages"], conv["turns"], strict=True)):
                texts = [s["text"] for s in turn["content"] if s["type"] == "text"]
                media_kinds = [s["type"] for s in turn["content"] if s["type"] != "text"]
                got_texts = [c["text"] for c in msg["content"] if "text" in c]
                if i in rec["spoken_user_turns"]:
                    spoken_seen += 1
                    assert turn["role"] == "user" and not got_texts
                    speech = [c["speech"] for c in msg["content"] if "speech" in c]
                    assert speech == [f"media/conversations/{conv['id']}_{turn['spoken']}.wav"]
                    assert [next(iter(c)) for c in msg["content"] if "speech" not in c] == media_kinds
                else:
                    text_seen += turn["role"] == "user"
                    assert got_texts == texts
                    assert [next(iter(c)) for c in msg["content"] if "text" not in c] == media_kinds
    assert spoken_seen and text_seen  # p = 0.5 over ~20 user turns gives both


def test_spoken_prob_extremes(world, tmp_path):
    for p in ("0", "1"):
        out = tmp_path / p
        assert main(["data", "from-world", "--world", str(world), "--out", str(out), "--splits", "train",
                     "--kinds", "conversations", "--spoken-prob", p]) == 0
        for rec in _lines(out / "train" / "chats.jsonl"):
            users = [i for i, m in enumerate(rec["messages"]) if m["role"] == "user"]
            assert rec["spoken_user_turns"] == (users if p == "1" else [])
        assert not (out / "train" / "image_pairs.jsonl").exists() and not (out / "pretrain.toml").exists()
        _read(out / "train" / "chats.jsonl")


def test_all_captions_and_music_crop(world, tmp_path):
    import soundfile as sf

    out = tmp_path / "x"
    assert main(["data", "from-world", "--world", str(world), "--out", str(out), "--splits", "train",
                 "--kinds", "images", "music", "--captions", "all", "--max-music-seconds", "0.5"]) == 0
    for kind, stem in (("images", "image_pairs"), ("music", "music_pairs")):
        want = [(f"{r['id']}/caption{k}", c) for r in reader.iter_rows(world, kind, "train")
                for k, c in enumerate(r["captions"])]
        assert [(r["id"], r["text"]) for r in _lines(out / "train" / f"{stem}.jsonl")] == want
    for rec in _lines(out / "train" / "music_pairs.jsonl"):
        assert sf.info(out / "train" / rec["music"]).frames == 16000  # 0.5 s at 32 kHz (clips are 1 s)
    assert [p.name for p in out.glob("*.toml")] == ["pretrain.toml"]


def test_rerun_is_deterministic_resumable_and_guarded(world, export, tmp_path, capsys):
    again = tmp_path / "again"
    assert main(["data", "from-world", "--world", str(world), "--out", str(again)]) == 0
    assert _tree(again) == _tree(export)  # byte for byte, media included
    chats = again / "train" / "chats.jsonl"
    before = chats.stat().st_mtime_ns
    chats.with_name("music_pairs.jsonl").unlink()  # as if the first run died before this file
    capsys.readouterr()
    assert main(["data", "from-world", "--world", str(world), "--out", str(again)]) == 0
    printed = capsys.readouterr().out
    assert "train/chats.jsonl  6 records (kept)" in printed and "train/music_pairs.jsonl  4 records (written)" in printed
    assert chats.stat().st_mtime_ns == before and _tree(again) == _tree(export)
    # other settings into the same folder are refused, not mixed in
    assert main(["data", "from-world", "--world", str(world), "--out", str(again), "--spoken-prob", "1"]) == 2
    assert "other settings (spoken_prob)" in capsys.readouterr().err


def test_tokenize_and_mix_accept_the_export(world, export, tmp_path, debug_bundle):
    from anygpt.data.pipeline.mixture import MixConfig, run_mix
    from anygpt.data.pipeline.tokenize import TokenizeConfig, run_tokenize

    counts = json.loads((export / SUMMARY).read_text())["counts"]
    work = tmp_path / "x"
    shutil.copytree(export, work)
    # through the CLI, as the printed commands do: one pair file and the chats
    for stem in ("image_pairs", CHAT_FILE):
        units = work / "units" / "train" / stem
        assert main(["data", "tokenize", str(work / "train" / f"{stem}.jsonl"), "--out", str(units),
                     "--bundle", "debug"]) == 0
        c = shards.read_manifest(units)["counts"]
        assert c["errors"] == 0 and c["units"] == c["records"] == counts["train"][stem]
    # the rest in-process (the same code, without loading the bundle again), then every mixture
    for split in SPLITS:
        for stem in counts[split]:
            units = work / "units" / split / stem
            if not (units / shards.MANIFEST).is_file():
                m = run_tokenize(TokenizeConfig(inputs=[str(work / split / f"{stem}.jsonl")], out=str(units)),
                                 quiet=True, bundle=debug_bundle)
                assert m["counts"]["errors"] == 0
    b = debug_bundle
    val = run_mix(MixConfig.from_toml(work / "pretrain_validation.toml"), b.tokenizer, b.layout, tmp_path / "pv",
                  quiet=True)
    assert val["samples"] == 2 * sum(counts["validation"][s] for s in PAIR_FILES.values())
    tags = {k for k in val["by_tag"]}
    assert tags == {f"{m}/{d}" for m in ("image", "speech", "music") for d in ("to_text", "from_text")}
    train = run_mix(MixConfig.from_toml(work / "pretrain.toml"), b.tokenizer, b.layout, tmp_path / "p", quiet=True)
    assert {k: d["units"] for k, d in train["datasets"].items()}.keys() == set(PAIR_FILES.values())
    assert train["samples"] + train["val_samples"] // 2 == sum(counts["train"][s] for s in PAIR_FILES.values())
    for name, split in (("instruct.toml", "train"), ("instruct_validation.toml", "validation")):
        r = run_mix(MixConfig.from_toml(work / name), b.tokenizer, b.layout, tmp_path / name, quiet=True)
        # the conversations, and every pair as a task chat turn in both directions
        assert set(r["by_tag"]) == {"chat"} | {f"{m}/{d}" for m in ("image", "speech", "music")
                                               for d in ("to_text", "from_text")}
        assert {k.removesuffix("_to_text").removesuffix("_from_text") for k in r["datasets"]} == \
            {CHAT_FILE, *PAIR_FILES.values()}
