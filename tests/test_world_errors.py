"""Mistakes a user can make raise AnyGPTError with a one-line message saying what to do."""

import pytest

from anygpt.world import music, speech
from anygpt.world.build import build
from anygpt.world.config import WorldConfig
from anygpt.errors import AnyGPTError


def test_missing_flite_says_what_to_install(monkeypatch):
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    with pytest.raises(AnyGPTError, match="apt-get install flite"):
        speech.check_tools()


def test_missing_fluidsynth_says_what_to_install(monkeypatch):
    monkeypatch.setattr(music.shutil, "which", lambda name: None)
    with pytest.raises(AnyGPTError, match="apt-get install fluidsynth"):
        music.check_tools()


def test_missing_soundfont_says_what_to_install(monkeypatch):
    monkeypatch.setattr(music, "SOUNDFONT_CANDIDATES", ("/nonexistent/a.sf2",))
    with pytest.raises(AnyGPTError, match="timgm6mb-soundfont"):
        music.find_soundfont()
    with pytest.raises(AnyGPTError, match="not found"):
        music.find_soundfont("/nonexistent/b.sf2")


def test_out_dir_with_other_files_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(AnyGPTError, match="holds other files"):
        build(tmp_path, WorldConfig(n=2, kinds=("images",)), progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_unwritable_out_dir_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(AnyGPTError, match="cannot write"):
        build(blocker / "world", WorldConfig(n=2, kinds=("images",)), progress=False)


def test_unknown_kind_is_refused(tmp_path):
    with pytest.raises(AnyGPTError, match="unknown kinds"):
        build(tmp_path / "w", WorldConfig(n=2, kinds=("video",)), progress=False)


def test_an_earlier_world_is_replaced(tmp_path):
    out = tmp_path / "w"
    build(out, WorldConfig(n=3, kinds=("images",)), progress=False)
    first = (out / "manifest.json").read_text()
    build(out, WorldConfig(n=5, kinds=("images",)), progress=False)
    assert (out / "manifest.json").read_text() != first
    assert not (out / ".partial").exists()
