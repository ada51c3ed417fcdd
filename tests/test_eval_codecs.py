"""`anygpt eval codecs`: the cloning plan's invariants, and the command on a small world with the
shipped tiny codecs (every figure present, ratios and similarities in range, gates judged); one
source at a time (a bundle's codecs, or one export: tests/test_small_codecs_train.py runs that one)."""

import json

import pytest

from anygpt.eval.codecs import GATES, _clone_plan

pytestmark = pytest.mark.usefixtures("one_thread")


def test_clone_plan_never_uses_the_source_speaker_or_the_prompt_as_reference():
    speakers = ["a", "b", "a", "c", "b", "c", "d"]
    plan = _clone_plan(speakers)
    assert [a for a, _, _ in plan] == list(range(len(speakers)))  # d has one utterance: a source, never a voice
    for a, prompt, ref in plan:
        assert speakers[prompt] == speakers[ref] != speakers[a]
        assert prompt != ref
    assert _clone_plan(["a", "b", "c"]) == []  # nobody with two utterances: no voice to clone


@pytest.fixture(scope="module")
def world(small_world):
    return small_world(40, seed=2)


def test_eval_codecs_command(world, capsys):
    from anygpt.cli import main

    assert main(["eval", "codecs", "--bundle", "tiny", "--world", str(world), "--limit", "6", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert set(GATES) <= set(figures) and set(figures["gates_met"]) == set(GATES)
    assert set(figures["rtf"]) >= {"image", "speech_encode", "speech_decode", "music_encode", "music_decode"}
    for key in ("image_attr_ratio", "speech_wer_ratio", "music_attr_ratio"):
        assert figures[key] >= 0
    assert -1 <= figures["speech_sim"] <= 1
    assert figures["details"]["images_n"] >= 3 and figures["details"]["speech_n"] >= 3
    for key, ok in figures["gates_met"].items():
        value = figures[key]
        assert ok is None if value is None else ok == (value >= GATES[key][1] if GATES[key][0] == ">="
                                                       else value <= GATES[key][1])


@pytest.mark.parametrize("argv, message", [
    (["--codec", "E"], "give --kind"),
    (["--kind", "music"], "--kind: only with --codec"),
    (["--bundle", "tiny", "--split", "test"], "--split: only with --codec"),
    (["--codec", "E", "--kind", "music", "--limit", "5"], "--limit: only for a bundle's codecs"),
    (["--codec", "no-such-export", "--kind", "music"], "not a codec export"),
])
def test_eval_codecs_takes_one_source(argv, message, capsys):
    from anygpt.cli import main

    assert main(["eval", "codecs", *argv]) == 2
    assert message in capsys.readouterr().err
