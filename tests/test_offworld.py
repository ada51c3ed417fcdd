"""The off-world check set: it loads, its files match the manifest, its truths use only the world's
vocabulary, and scripts/make_offworld.py rewrites it byte for byte."""

import hashlib
import json
import math
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from anygpt.world import tables
from anygpt.eval.offworld import default_path, load_offworld
from anygpt.eval.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]
FOLDER = default_path()
SIDE, RATE = 64, 16_000
OBJECT_KEYS = {"shape", "colour", "size", "position", "pattern"}


@pytest.fixture(scope="module")
def manifest():
    return json.loads((FOLDER / "manifest.json").read_text(encoding="utf-8"))


def world_words() -> set[str]:
    """Every word the ASR judge's dictionary knows: the words of the world's sentences."""
    lines = (ROOT / "anygpt/eval/judges/weights/world.dict").read_text().splitlines()
    return {line.split()[0].split("(")[0] for line in lines if line.strip()}


def test_loads_every_item_ready_for_its_task(manifest):
    sets = load_offworld()
    kinds = [item["kind"] for item in manifest["items"]]
    assert {kind: len(items) for kind, items in sets.items()} == {
        "image": kinds.count("image"), "prompt": kinds.count("prompt"), "speech": kinds.count("speech")}
    # the tasks they feed (caption, t2i, asr) name them in their records
    assert {task.offworld: name for name, task in TASKS.items() if task.offworld} == {
        "image": "caption", "prompt": "t2i", "speech": "asr"}
    assert min(len(items) for items in sets.values()) >= 16
    assert all(it["image"].size == (SIDE, SIDE) and it["image"].mode == "RGB" for it in sets["image"])
    assert all(it["sample_rate"] == RATE and it["waveform"].dtype.name == "float32" and it["waveform"].size > RATE
               and it["text"] for it in sets["speech"])
    assert all(it["prompt"] and it["attributes"]["objects"] for it in sets["prompt"])


def test_files_exist_with_their_size_rate_and_hash(manifest):
    files = set()
    for item in manifest["items"]:
        if item["kind"] == "prompt":
            assert item["file"] is None
            continue
        path = FOLDER / item["file"]
        files.add(path)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == item["sha256"], item["id"]
        if item["kind"] == "image":
            from PIL import Image

            with Image.open(path) as image:
                assert (image.format, image.mode, image.size) == ("PNG", "RGB", (SIDE, SIDE)), item["id"]
        else:
            with wave.open(str(path), "rb") as f:
                assert (f.getframerate(), f.getnchannels(), f.getsampwidth()) == (RATE, 1, 2), item["id"]
                assert f.getnframes() == item["samples"] > RATE, item["id"]
    assert files == {p for p in FOLDER.rglob("*") if p.is_file()} - {FOLDER / "manifest.json"}
    assert sum(p.stat().st_size for p in FOLDER.rglob("*") if p.is_file()) < 3_000_000


def test_truths_use_only_the_worlds_vocabulary(manifest):
    t = tables.load("scenes")
    held_out = {tuple(pair) for pair in t["held_out_colour_shape"]}
    reading_order = lambda obj: t["positions"][obj["position"]][1::-1]  # noqa: E731  (row, column)
    scenes = [item["attributes"] for item in manifest["items"] if item["kind"] in ("image", "prompt")]
    for scene in scenes:
        objects = scene["objects"]
        assert set(scene) == {"count", "group", "novel_combination", "background", "objects"}
        assert scene["count"] == len(objects) in (1, 2, 3)
        assert scene["background"]["colour"] in t["backgrounds"]
        assert scene["background"]["pattern"] in t["background_patterns"]
        for obj in objects:
            assert set(obj) == OBJECT_KEYS
            assert (obj["shape"] in t["shapes"] and obj["colour"] in t["colours"] and obj["size"] in t["sizes"]
                    and obj["position"] in t["positions"] and obj["pattern"] in t["object_patterns"]), obj
            assert math.dist(t["colours"][obj["colour"]], t["backgrounds"][scene["background"]["colour"]]) \
                >= t["min_contrast"], obj
        assert objects == sorted(objects, key=reading_order)
        assert len({o["position"] for o in objects}) == len(objects)
        pairs = {(o["colour"], o["shape"]) for o in objects}
        assert scene["group"] == (len(objects) > 1 and len(pairs) == 1)
        assert scene["novel_combination"] == bool(pairs & held_out)
    assert sum(s["novel_combination"] for s in scenes) >= 8
    assert any(s["count"] == 2 for s in scenes)

    from anygpt.eval.judges.speech import normalise_text

    known = world_words()
    for item in manifest["items"]:
        if item["kind"] == "speech":
            unknown = set(normalise_text(item["transcript"]).split()) - known
            assert not unknown, (item["id"], unknown)


def test_synthesizers_and_settings_the_world_does_not_use(manifest):
    voices = tables.load("voices")
    world_stretch = set(voices["rates"].values())
    world_pitch = {(s["voice"], s["pitch_hz"]) for s in voices["speakers"]}
    programs = [item["made"] for item in manifest["items"] if item["kind"] == "speech"]
    assert sum("espeak" in m["program"].lower() for m in programs) >= 6
    flite = [m for m in programs if m["program"].startswith("flite")]
    assert len(flite) >= 6
    for m in flite:  # another rate, or a pitch the world never gives that voice
        assert m["duration_stretch"] not in world_stretch or (m["voice"], m["pitch_hz"]) not in world_pitch, m


@pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("flite") is None,
                    reason="needs Debian's espeak-ng and flite")
def test_generator_rewrites_the_set_byte_for_byte(tmp_path):
    script = ROOT / "scripts" / "make_offworld.py"
    subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], check=True, capture_output=True, timeout=120)

    def digests(folder: Path) -> dict[str, str]:
        return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    assert digests(tmp_path) == digests(FOLDER), "rerun `python scripts/make_offworld.py` and commit the set"


def test_generator_never_imports_the_world_generator():
    import ast

    tree = ast.parse((ROOT / "scripts" / "make_offworld.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
             and node.module == "anygpt.world" for alias in node.names}
    assert not {m for m in imported if m and m.startswith("anygpt.world.")}, imported
    assert names <= {"table"}, names
