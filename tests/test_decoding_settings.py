"""One validation of decoding settings: types and ranges from the config, one error line, before loading."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anygpt.cli import main
from anygpt.errors import AnyGPTError
from anygpt.generate.config import PRESETS, DecodingConfig, SamplingConfig, parse_settings

BAD_SETS = ["max_seconds_music=abc", "max_seconds_music=nan", "max_seconds_music=-1", "max_seconds_speech=0",
            "seed=abc", "seed=-1", "seed=1e400", f"seed={2**70}", "text_num_beams=1.5", "text_num_beams=0",
            "image_temperature=nan", "image_temperature=0", "image_temperature=inf", "constrained=maybe",
            "constrained=1", "max_new_tokens=-1", "max_new_tokens=0", "max_new_tokens=2.5", "music_top_p=2",
            "music_top_p=0", "image_top_k=-1", "speech_repetition_penalty=-inf", "music_top_q=1", "=1", "foo",
            "bogus=1", "text_do_sample=yes", "max_seconds=3", "text=1", "music_num_beams=x"]
BAD_FLAGS = [["--seed", "-5"], ["--seed", str(2**64)], ["--max-new-tokens", "-5"], ["--max-new-tokens", "0"],
             ["--preset", "nope"]]


@pytest.fixture
def no_loading(monkeypatch):
    """A bad setting is refused before any bundle is loaded."""
    import anygpt.bundles

    def refuse(*a, **k):
        raise AssertionError("loaded a bundle for a command with a bad setting")

    monkeypatch.setattr(anygpt.bundles, "load_bundle", refuse)


def one_error_line(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("anygpt: error:"), (code, err)
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("item", BAD_SETS)
def test_bad_set_values_are_one_line_before_loading(capsys, tmp_path, no_loading, item):
    one_error_line(capsys, ["chat", "--text", "hi", "--set", item, "--out", str(tmp_path)])


@pytest.mark.parametrize("flags", BAD_FLAGS, ids=" ".join)
def test_bad_flags_are_one_line_before_loading(capsys, tmp_path, no_loading, flags):
    one_error_line(capsys, ["chat", "--text", "hi", *flags, "--out", str(tmp_path)])


@pytest.mark.parametrize("device", ["bogus", "cuda:99", "meta", "", "cpu:x"])
def test_bad_devices_are_one_line(capsys, tmp_path, device):
    import torch

    if device == "cuda:99" and torch.cuda.device_count() > 99:
        pytest.skip("a machine with 100 GPUs")
    line = one_error_line(capsys, ["info", "--device", device])
    assert "device" in line


def test_cuda_without_a_gpu_is_one_line(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "no CUDA GPU" in one_error_line(capsys, ["info", "--device", "cuda"])


def test_good_settings_are_typed():
    changes = parse_settings(["music_top_p=0.9", "text_num_beams=1", "constrained=false", "seed=7",
                              "max_seconds_music=4", "image_temperature=1e-1"])
    assert changes == {"music_top_p": 0.9, "text_num_beams": 1, "constrained": False, "seed": 7,
                       "max_seconds_music": 4.0, "image_temperature": 0.1}
    cfg = PRESETS["paper"].override(**changes)
    assert cfg.max_seconds == {"speech": 30.0, "music": 4.0} and cfg.text.num_beams == 1
    assert cfg.constrained is False and isinstance(cfg.constrained, bool)


@pytest.mark.parametrize("bad", [dict(temperature=math.nan), dict(top_p=math.nan), dict(num_beams=True),
                                 dict(do_sample="yes"), dict(top_k=1.5), dict(repetition_penalty=math.inf)])
def test_sampling_config_checks_types_and_ranges(bad):
    with pytest.raises(AnyGPTError):
        SamplingConfig(**bad)


@pytest.mark.parametrize("bad", [{"max_new_tokens": "many"}, {"seed": 1.5}, {"constrained": "maybe"},
                                 {"max_seconds": {"music": "x"}}, {"max_seconds": 3}, {"text": {"top_p": "x"}},
                                 {"bogus": 1}, {"text": {"bogus": 1}}, []])
def test_manifest_decoding_is_checked_the_same_way(bad):
    with pytest.raises(AnyGPTError):
        DecodingConfig.from_dict(bad)


KEYS = ["seed", "max_new_tokens", "constrained", "max_seconds_music", "max_seconds_speech", "text_num_beams",
        "image_temperature", "music_top_p", "speech_top_k", "text_do_sample", "music_repetition_penalty", "nope"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(KEYS), st.one_of(st.text(max_size=12), st.integers().map(str),
                                        st.floats(allow_nan=True, allow_infinity=True).map(repr),
                                        st.sampled_from(["true", "false", "True", "nan", "-0", "1e309", "None"])))
def test_set_parser_accepts_a_valid_config_or_says_why(key, value):
    try:
        changes = parse_settings([f"{key}={value}"])
    except AnyGPTError as e:
        assert "\n" not in str(e)
        return
    cfg = DecodingConfig().override(**changes)  # whatever was accepted makes a valid config
    assert isinstance(cfg, DecodingConfig)
