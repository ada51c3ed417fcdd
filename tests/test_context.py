"""The one context-length rule: refuse what cannot fit, cut only the reply budget."""

import numpy as np
import pytest
import soundfile as sf

from anygpt.cli import main
from anygpt.errors import AnyGPTError
from anygpt.generate.config import PRESETS
from anygpt.generate.context import RESERVE, check_input_seconds, context_length, fit


def one_error_line(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("anygpt: error:"), (code, err)
    return lines[0]


def test_reply_budget_is_cut_to_the_context(debug_bundle):
    layout = debug_bundle.layout
    cfg = PRESETS["paper"].override(max_new_tokens=2048)
    assert fit([100], cfg, context=4096, layout=layout).max_new_tokens == 2048
    assert fit([3000], cfg, context=4096, layout=layout).max_new_tokens == 1096
    assert fit([3000], cfg, context=None, layout=layout) is cfg


def test_a_prompt_longer_than_the_context_is_refused(debug_bundle):
    with pytest.raises(AnyGPTError, match="the prompt is 4090 tokens; the model's context is 4096"):
        fit([4090], PRESETS["paper"], context=4096, layout=debug_bundle.layout)
    fit([4096 - RESERVE], PRESETS["paper"], context=4096, layout=debug_bundle.layout)


def test_an_image_reply_must_fit(debug_bundle):
    with pytest.raises(AnyGPTError, match="image reply needs 33 tokens"):
        fit([4096 - 20], PRESETS["paper"], context=4096, layout=debug_bundle.layout, want="image")


def test_span_limits_beyond_the_context_are_refused(debug_bundle):
    cfg = PRESETS["paper"].override(max_seconds_music=100000)
    with pytest.raises(AnyGPTError, match="max_seconds_music=100000 asks for"):
        fit([10], cfg, context=8192, layout=debug_bundle.layout)


def test_long_audio_is_refused_before_encoding(debug_bundle):
    layout = debug_bundle.layout
    check_input_seconds(8192, layout, "speech", 10.0)
    with pytest.raises(AnyGPTError, match="600.0 s speech input is 30002 tokens"):
        check_input_seconds(8192, layout, "speech", 600.0)


def test_long_text_is_one_error_line(capsys, tmp_path):
    line = one_error_line(capsys, ["chat", "--text", "word " * 20000, "--out", str(tmp_path)])
    assert "the prompt is" in line and "context is 8192" in line


def test_long_recording_is_one_error_line(capsys, tmp_path):
    sf.write(tmp_path / "long.wav", (0.3 * np.sin(np.arange(16000 * 200) / 5)).astype(np.float32), 16000)
    line = one_error_line(capsys, ["chat", "--speech", str(tmp_path / "long.wav"), "--out", str(tmp_path)])
    assert "200.0 s speech input" in line and "longest that fits" in line


def test_huge_span_limit_on_the_command_line(capsys, tmp_path):
    line = one_error_line(capsys, ["chat", "--text", "hi", "--want", "music", "--set", "max_seconds_music=100000",
                                   "--out", str(tmp_path)])
    assert "more than the model's context" in line


def test_info_shows_the_limits(debug_bundle, capsys):
    assert context_length(debug_bundle.model) == 8192
    assert main(["info"]) == 0
    assert "context 8192 tokens" in capsys.readouterr().out
