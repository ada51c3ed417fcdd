"""What a chat user sees: a fixed default seed, numbered files, /help, /want, /save and /load, Ctrl-C."""

import json

import pytest

from anygpt.cli import main


def _chat_json(capsys, tmp_path, *args):
    assert main(["chat", "--text", "a red circle", "--want", "image", "--max-new-tokens", "40", "--json",
                 "--out", str(tmp_path), *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_two_identical_calls_give_the_same_reply_in_new_files(capsys, tmp_path):
    a = _chat_json(capsys, tmp_path)
    first = open(a["segments"][0]["path"], "rb").read()
    b = _chat_json(capsys, tmp_path)
    assert a["seed"] == b["seed"] == 0 and a["out"] == str(tmp_path)
    assert a["segments"][0]["path"].endswith("reply-image1.png")
    assert b["segments"][0]["path"].endswith("reply-image1-2.png")
    assert open(a["segments"][0]["path"], "rb").read() == first == open(b["segments"][0]["path"], "rb").read()
    c = _chat_json(capsys, tmp_path, "--seed", "5")
    assert c["seed"] == 5


def test_plain_output_says_seed_and_where_files_went(capsys, tmp_path):
    assert main(["chat", "--text", "x", "--want", "image", "--max-new-tokens", "40", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "anygpt: seed 0; 1 file(s) in " + str(tmp_path) in err


def _interactive(monkeypatch, capsys, tmp_path, lines):
    feed = iter(lines)
    monkeypatch.setattr("builtins.input", lambda prompt="": next(feed))
    assert main(["chat", "--out", str(tmp_path / "o"), "--max-new-tokens", "12", "--preset", "greedy"]) == 0
    return capsys.readouterr()


def test_help_want_save_and_load(monkeypatch, capsys, tmp_path):
    saved = tmp_path / "talk.json"
    out, err = _interactive(monkeypatch, capsys, tmp_path, [
        "/help", "/want speech", "hello", f"/save {saved}", f"/save {saved}", "/quit"])
    assert out.count("/save PATH  /load PATH") == 2  # the banner and /help
    assert "(the next reply will be speech)" in out and f"(conversation saved to {saved})" in out
    assert "exists; refusing to overwrite" in err
    doc = json.loads(saved.read_text())
    assert doc["bundle"] == "debug" and doc["turns"] == 1 and len(doc["history"]) > 10

    out, err = _interactive(monkeypatch, capsys, tmp_path, [f"/load {saved}", f"/save {tmp_path / 'again.json'}",
                                                             "/load nope.json", "/quit"])
    assert f"(conversation of 1 turns loaded from {saved})" in out
    assert json.loads((tmp_path / "again.json").read_text())["history"] == doc["history"]
    assert "not a readable conversation" in err


@pytest.mark.parametrize("doc, message", [
    ({"anygpt_history": 1, "bundle": "other", "history": []}, "saved with bundle 'other'"),
    ({"anygpt_history": 1, "bundle": "debug", "history": [-1]}, "list of token ids"),
    ({"anygpt_history": 1, "bundle": "debug", "history": "abc"}, "list of token ids"),
    ([1, 2], "not a conversation"),
])
def test_load_refuses_bad_files(monkeypatch, capsys, tmp_path, doc, message):
    (tmp_path / "h.json").write_text(json.dumps(doc))
    out, err = _interactive(monkeypatch, capsys, tmp_path, [f"/load {tmp_path / 'h.json'}", "/quit"])
    assert message in err


def test_ctrl_c_during_a_reply_keeps_the_conversation(monkeypatch, capsys, tmp_path):
    from anygpt.chat import ChatSession

    real = ChatSession.ask
    calls = []

    def ask(self, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(ChatSession, "ask", ask)
    saved = tmp_path / "h.json"
    out, err = _interactive(monkeypatch, capsys, tmp_path, ["one", "two", f"/save {saved}", "/quit"])
    assert "(reply stopped; the conversation is kept)" in out
    assert json.loads(saved.read_text())["turns"] == 1


def test_inputs_changed_before_the_codec_reads_them_are_announced(capsys, tmp_path):
    import numpy as np
    import soundfile as sf
    from PIL import Image

    Image.new("RGB", (100, 80), "red").save(tmp_path / "wide.png")
    t = np.arange(32000) / 32000
    sf.write(tmp_path / "hi.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 32000)
    Image.new("RGB", (64, 64), "red").save(tmp_path / "fits.png")
    assert main(["chat", "--image", str(tmp_path / "wide.png"), "--speech", str(tmp_path / "hi.wav"), "--text", "?",
                 "--want", "text", "--max-new-tokens", "4", "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "anygpt: warning: the picture is 100x80; the image codec reads it at 64x64" in err
    assert "hi.wav is resampled from 32000 Hz to 16000 Hz" in err
    assert main(["chat", "--image", str(tmp_path / "fits.png"), "--text", "?", "--want", "text",
                 "--max-new-tokens", "4", "--out", str(tmp_path / "o")]) == 0
    assert "warning" not in capsys.readouterr().err  # nothing changed, nothing said


def test_progress_counts_the_reply_tokens_as_they_come(capsys, monkeypatch):
    from anygpt.chat.terminal import Progress

    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    with Progress() as progress:
        for token in range(20):
            progress(token)
    err = capsys.readouterr().err
    assert "(generating: 1 tokens" in err and "(generating: 17 tokens" in err and progress.count == 20
