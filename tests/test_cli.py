"""The `anygpt` command on the debug bundle: the issue's done-criteria commands, and bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from anygpt.cli import main


def run_json(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_chat_want_image(capsys, tmp_path):
    out = run_json(capsys, "chat", "--bundle", "debug", "--text", "a red circle", "--want", "image",
                   "--out", str(tmp_path), "--json")
    image = out["segments"][0]
    assert image["modality"] == "image" and image["num_codes"] == 32
    assert Image.open(image["path"]).format == "PNG"


def test_chat_want_music_wav_length_matches_codes(capsys, tmp_path):
    out = run_json(capsys, "chat", "--bundle", "debug", "--text", "a red circle", "--want", "music",
                   "--out", str(tmp_path), "--json", "--max-new-tokens", "120", "--seed", "1")
    music = out["segments"][0]
    assert music["modality"] == "music" and music["num_codes"] % 4 == 0 and music["num_codes"] > 0
    info = sf.info(music["path"])
    frames = music["num_codes"] // 4
    assert info.samplerate == 32000 and info.frames == frames * 640  # 50 frames per second
    assert music["seconds"] == pytest.approx(frames / 50)


def test_chat_want_speech_with_voice(capsys, tmp_path):
    voice = tmp_path / "voice.wav"
    sf.write(voice, 0.3 * np.sin(2 * np.pi * 180 * np.arange(44100 * 2) / 44100), 44100)
    out = run_json(capsys, "chat", "--text", "hello", "--want", "speech", "--voice", str(voice),
                   "--out", str(tmp_path / "o"), "--json", "--max-new-tokens", "80")
    speech = out["segments"][0]
    assert speech["modality"] == "speech"
    assert sf.info(speech["path"]).samplerate == 16000


def test_chat_with_media_inputs_and_text_output(capsys, tmp_path):
    Image.new("RGB", (40, 40), (0, 0, 255)).save(tmp_path / "in.png")
    sf.write(tmp_path / "in.wav", 0.2 * np.sin(np.arange(16000) / 5), 16000)
    out = run_json(capsys, "chat", "--image", str(tmp_path / "in.png"), "--speech", str(tmp_path / "in.wav"),
                   "--text", "What is this?", "--want", "text", "--out", str(tmp_path), "--json",
                   "--max-new-tokens", "20", "--set", "text_num_beams=2")
    assert all(s["modality"] == "text" for s in out["segments"])


def test_info_reports_the_official_sizes(capsys):
    info = run_json(capsys, "info", "--bundle", "debug", "--json")
    layout = info["layout"]
    assert layout["image"]["size"] == 8192 and layout["image"]["tokens_per_item"] == 32
    assert layout["image"]["start"] == "<soim>" and layout["image"]["end"] == "<eoim>"
    assert layout["speech"]["size"] == 1024 and layout["speech"]["tokens_per_second"] == 50
    assert layout["music"]["size"] == 8192 and layout["music"]["codebooks"] == 4
    assert layout["music"]["tokens_per_second"] == 200
    assert info["vocab_size"] == info["text_vocab_size"] + 4 + 8194 + 1026 + 8194
    assert layout["image"]["first_id"] == info["text_vocab_size"] + 4


def test_info_text(capsys):
    assert main(["info"]) == 0
    assert "4 x 2048" in capsys.readouterr().out


def bad_inputs(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    sf.write(tmp_path / "silent.wav", np.zeros(16000), 16000)
    sf.write(tmp_path / "empty.wav", np.zeros(0), 16000)
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    return {
        "missing file": (["--image", str(tmp_path / "nope.png")], "no such file"),
        "unreadable image": (["--image", str(tmp_path / "notes.txt")], "not an image"),
        "silent audio": (["--speech", str(tmp_path / "silent.wav")], "silent"),
        "zero-length audio": (["--speech", str(tmp_path / "empty.wav")], "audio is empty"),
        "corrupt audio": (["--music", str(tmp_path / "broken.wav")], "not a readable audio"),
        "unknown bundle": (["--bundle", "nope", "--text", "hi"], "unknown bundle"),
        "bad setting": (["--text", "hi", "--set", "music_top_q=1"], "bad decoding setting"),
    }


@pytest.mark.parametrize("case", [
    "missing file", "unreadable image", "silent audio", "zero-length audio", "corrupt audio", "unknown bundle",
    "bad setting"])
def test_bad_input_gives_one_clear_line(capsys, tmp_path, case):
    args, message = bad_inputs(tmp_path)[case]
    code = main(["chat", *args, "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("anygpt: error: "), err
    assert message in lines[0] and "Traceback" not in err


def test_entry_point_subprocess_has_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "anygpt.cli", "chat", "--image", str(tmp_path / "missing.png")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("anygpt: error: ") and "Traceback" not in result.stderr


def test_interactive_session(tmp_path, monkeypatch, capsys):
    Image.new("RGB", (40, 40), (0, 255, 0)).save(tmp_path / "g.png")
    lines = iter([f"/image {tmp_path / 'g.png'}", "/want music", "make a tune", "/bogus", "/want", "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    assert main(["chat", "--out", str(tmp_path / "o"), "--max-new-tokens", "24", "--preset", "greedy"]) == 0
    out, err = capsys.readouterr()
    assert "attached image" in out and "[music: " in out
    assert "unknown command /bogus" in err and "/want takes one of" in err


def test_bundle_save_and_verify(capsys, tmp_path):
    assert main(["bundle", "save", "debug", "--out", str(tmp_path / "b")]) == 0
    assert main(["bundle", "verify", str(tmp_path / "b")]) == 0
    assert "files match" in capsys.readouterr().out
    out = run_json(capsys, "chat", "--bundle", str(tmp_path / "b"), "--text", "x", "--want", "image",
                   "--out", str(tmp_path / "o"), "--json", "--max-new-tokens", "40")
    assert out["segments"][0]["num_codes"] == 32


def test_task_prompts_wrap_the_input(capsys, tmp_path, monkeypatch):
    seen = {}
    from anygpt.chat import ChatSession

    real = ChatSession.ask

    def spy(self, content, *, want=None, **kwargs):
        seen["text"] = self.bundle.tokenizer.decode(self.prompt_ids(content, want))
        return real(self, content, want=want, **kwargs)

    monkeypatch.setattr(ChatSession, "ask", spy)
    out = run_json(capsys, "chat", "--task", "t2i", "--text", "a red circle", "--out", str(tmp_path), "--json",
                   "--max-new-tokens", "40")
    assert out["segments"][0]["num_codes"] == 32  # --want image implied by the task
    assert seen["text"].endswith("[Human]: a red circle. Please generation an image.<eoh>\n[MMGPT]: <soim>")
    sf.write(tmp_path / "q.wav", 0.2 * np.sin(np.arange(16000) / 7), 16000)
    run_json(capsys, "chat", "--task", "voice_chat", "--speech", str(tmp_path / "q.wav"), "--out", str(tmp_path),
             "--json", "--max-new-tokens", "10")
    assert seen["text"].endswith("<eosp> Please recognize the voice command and give reply and voice<eoh>\n[MMGPT]:")
    assert main(["chat", "--task", "caption", "--text", "no image"]) == 2
    assert "takes one image input" in capsys.readouterr().err
