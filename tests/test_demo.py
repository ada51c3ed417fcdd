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
