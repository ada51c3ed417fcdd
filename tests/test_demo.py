"""The README's main job: `anygpt demo` runs every any-to-any turn and writes a page of results."""

import json
from pathlib import Path

from anygpt.cli import main


def test_demo_writes_every_turn(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "debug bundle" in printed and "turns in" in printed
    turns = json.loads((tmp_path / "summary.json").read_text())["turns"]
    assert len(turns) == 9 and all(t["seconds"] > 0 for t in turns)
    page = (tmp_path / "index.html").read_text()
    for t in turns:
        first = t["segments"][0]
        if t["want"] == "text":
            assert all(s["modality"] == "text" for s in t["segments"])
            continue
        assert first["modality"] == t["want"] and first["num_codes"] > 0
        assert Path(first["path"]).is_file() and Path(first["path"]).name in page
    for kind, value in (i for t in turns for i in t["inputs"]):
        if kind != "text":
            assert Path(value).is_file() and Path(value).name in page
    # synthetic inputs: nothing to expect, no judge loaded
    assert "<th>expected</th>" in page and page.count("(none, synthetic input)") == 9
    assert all(t["expected"] is None and t["verdict"] == "unchecked" and t["judge"] == {} for t in turns)


def test_the_conversation_starts_afresh_and_keeps_its_own_turns(tmp_path, monkeypatch):
    """Single-task turns are independent; the three conversation turns are one conversation of their own."""
    import anygpt.demo.page as page

    history = []
    ask = page.ChatSession.ask
    monkeypatch.setattr(page.ChatSession, "ask", lambda self, *a, **k: history.append(len(self.history)) or ask(self, *a, **k))
    assert main(["demo", "--out", str(tmp_path)]) == 0
    assert len(history) == 9
    assert history[:7] == [0] * 7  # six single turns, then the conversation's first
    assert history[7] > 0 and history[8] > history[7]


def test_verdicts_follow_the_documented_rules():
    from anygpt.demo.page import VERDICT_RULES, verdict

    assert VERDICT_RULES["wer"] == {"right": 0.15, "partly right": 0.5}
    assert [verdict("wer", w)[0] for w in (0.0, 0.15, 0.3, 0.5, 1.0)] == \
        ["right", "right", "partly right", "partly right", "wrong"]
    # attribute accuracy is read against the same score of the world's own answer
    assert [verdict("attr_acc", a, 0.6)[0] for a in (0.6, 0.54, 0.45, 0.25)] == \
        ["right", "right", "partly right", "wrong"]
    assert verdict("attr_acc", 0.95)[0] == "right" and verdict("attr_acc", 0.3, 0.0)[0] == "wrong"


def test_scene_and_music_phrases():
    from anygpt.demo.page import music_phrase, scene_phrase

    scene = {"count": 2, "background": {"colour": "light grey", "pattern": "plain"},
             "objects": [{"shape": "star", "colour": "purple", "size": "medium", "position": "top right",
                          "pattern": "solid"},
                         {"shape": "cross", "colour": "blue", "size": "small", "position": "bottom",
                          "pattern": "striped"}]}
    assert scene_phrase(scene) == ("a medium purple star in the top right corner and a small striped blue cross "
                                   "at the bottom, on a plain light grey background")
    assert scene_phrase({"count": 0, "objects": [], "background": {"colour": "navy", "pattern": "dotted"}}) \
        == "nothing, on a dotted navy background"
    assert music_phrase({"tempo_bpm": 96.4, "tempo_word": "moderate", "key": "G", "mode": "major",
                         "family": "strings", "instrument": "violin"}) == \
        "moderate (96 BPM), G major, violin (strings family)"
