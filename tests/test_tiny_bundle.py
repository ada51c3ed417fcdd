"""The shipped `tiny` bundle is the default of every command, small, and runs the demo from its own
files with no network."""

import json
from pathlib import Path

import pytest

from anygpt.cli import main

pytestmark = [pytest.mark.tiny_default, pytest.mark.usefixtures("no_network")]
TINY = Path(__file__).parents[1] / "anygpt" / "bundles" / "tiny"


def test_tiny_is_the_default_and_small(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["bundle"] == "tiny"
    shapes = {m: (info["layout"][m]["codebook_size"], info["layout"][m]["codebooks"]) for m in info["layout"]}
    assert shapes == {"image": (1024, 1), "speech": (1024, 1), "music": (2048, 4)}
    assert info["layout"]["image"]["tokens_per_item"] == 38  # small-scene: 2 background + 9 cells x 4 codes
    size = sum(f.stat().st_size for f in TINY.rglob("*") if f.is_file())
    assert size < 60e6, size  # the whole embedded default, well under 100 MB
    assert main(["bundle", "verify", str(TINY)]) == 0


def test_demo_runs_every_turn_on_tiny(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "debug bundle" not in printed and "turns in" in printed
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["bundle"] == "tiny" and len(summary["turns"]) == 9
    page = (tmp_path / "index.html").read_text()
    for turn in summary["turns"]:
        assert turn["seconds"] > 0
        if turn["want"] != "text":
            media = [s for s in turn["segments"] if s["modality"] == turn["want"]]
            assert media and Path(media[0]["path"]).is_file() and Path(media[0]["path"]).name in page
    # world inputs: each single-task turn has its expected answer, the judges' figures and a verdict
    turns = {t["title"].split(" (")[0]: t for t in summary["turns"]}
    assert sum(summary["verdicts"].values()) == 9 and "(open-ended)" in page and "<th>expected</th>" in page
    figures = {"text -> image": ("attr_acc", "attr_acc_world"), "image -> text": ("attr_acc", "attr_acc_world"),
               "speech -> text": ("wer",), "text -> speech": ("wer",), "music -> text": ("attr_acc", "attr_acc_world"),
               "text -> music": ("attr_acc", "attr_acc_world"), "conversation 1/3: image in, text out": ("attr_acc",)}
    for title, names in figures.items():
        turn = turns[title]
        assert turn["expected"] and turn["verdict"] in ("right", "partly right", "wrong"), turn
        assert all(isinstance(turn["judge"][n], float) for n in names), turn["judge"]
        assert turn["verdict"] in page and turn["because"]
    for title in ("text -> image", "text -> music"):  # the world's answer is on the page too
        assert Path(turns[title]["expected"]["path"]).is_file() and Path(turns[title]["expected"]["path"]).name in page
    assert turns["text -> image"]["judge"]["attr_acc_world"] > 0.5  # the image judge reads the world's picture
    assert turns["image -> text"]["judge"]["attr_acc_world"] == 1.0  # world captions state their scene
    assert turns["text -> speech"]["expected"] == {"text": turns["text -> speech"]["inputs"][0][1]}
    assert turns["speech -> text"]["expected"]["text"]
    for title in ("conversation 2/3: text in, music out", "conversation 3/3: speech in, speech out"):
        assert turns[title]["expected"] == {"open_ended": True} and turns[title]["verdict"] == "open-ended"
