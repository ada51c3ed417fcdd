"""`anygpt eval TASK|all`: the six tasks on a tiny world with the debug bundle (scores are noise; every
path runs, every key is there, malformed replies are scored wrong), and the music-caption parser."""

import argparse
import json
import math
from pathlib import Path

import pytest

from anygpt.cli import main
from anygpt.eval.judges.music_text import music_caption_accuracy, music_text_attributes
from anygpt.eval.tasks import TASKS, evaluate

pytestmark = pytest.mark.usefixtures("one_thread")

MODEL_KEYS = {"caption": {"cider", "attr_acc"}, "t2i": {"attr_acc", "attr_acc_novel", "clip_score"},
              "asr": {"wer"}, "tts": {"wer", "sim"}, "music_caption": {"attr_acc", "clap_score"},
              "t2m": {"attr_acc", "clap_score"}}
UNIT = {"attr_acc", "attr_acc_novel"}  # in [0, 1]
COSINE = {"clip_score", "clap_score", "sim"}  # in [-1, 1]
CONDITIONING = {"matched", "mismatched", "gap", "matched_better"}


@pytest.fixture(scope="module")
def world(small_world):
    return small_world(6, ("images", "speech", "music"))


def _check_figures(figures: dict, keys: set) -> None:
    for key in keys:
        value = figures[key]
        if key == "attr_acc_novel" and value is None:  # no novel colour-shape pair among the items
            continue
        assert isinstance(value, float) and math.isfinite(value), (key, value)
        if key in UNIT:
            assert 0.0 <= value <= 1.0, (key, value)
        elif key in COSINE:
            assert -1.0 <= value <= 1.0, (key, value)
        else:  # cider, wer
            assert value >= 0.0, (key, value)


def test_eval_all_json(world, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["eval", "all", "--bundle", "debug", "--limit", "2", "--json", "--world", str(world),
                 "--out", str(out)])
    printed, err = capsys.readouterr()
    assert code == 0, err
    figures = json.loads(printed)
    assert list(figures) == list(TASKS)
    codes = figures["tts"]["codes"]  # the generated codes against the recordings' own
    assert set(codes) == {"edit", "edit_short", "edit_long", "split_codes"} and codes["edit"] >= 0.0
    for task, keys in MODEL_KEYS.items():
        f = figures[task]
        _check_figures(f, keys)
        _check_figures(f["ground_truth"], keys)
        assert 1 <= f["n"] <= 2 and 0 <= f["malformed"] <= f["n"] and f["seconds"] >= 0
        c = f["conditioning"]  # on the task's own items, swapped; None for one item
        if f["n"] == 1:
            assert c is None, task
            continue
        assert set(c) == CONDITIONING and all(isinstance(v, float) and math.isfinite(v) for v in c.values()), task
        assert c["matched"] > 0 and c["gap"] == c["mismatched"] - c["matched"] and c["matched_better"] in (0, 0.5, 1)
    # the judges read real data almost perfectly: the parsers' and the image judge's ceilings
    assert figures["caption"]["ground_truth"]["attr_acc"] >= 0.9
    assert figures["music_caption"]["ground_truth"]["attr_acc"] >= 0.9
    assert figures["t2i"]["ground_truth"]["attr_acc"] >= 0.9
    record = json.loads((out / "results.json").read_text())
    assert record["bundle"] == "debug" and set(record["tasks"]) == set(TASKS)
    for row in record["tasks"]["t2i"]["items"] + record["tasks"]["t2m"]["items"]:
        assert row["malformed"] or Path(row["path"]).is_file()
    assert "text" in record["tasks"]["caption"]["items"][0]
    assert record["tasks"]["t2m"]["conditioning"] == figures["t2m"]["conditioning"]
    assert figures["t2m"]["n"] == figures["music_caption"]["n"] == 2  # the small world's music test split
    # the off-world set: caption, t2i and asr again on inputs the world generator did not make
    assert [t for t in TASKS if "offworld" in figures[t]] == ["caption", "t2i", "asr"]
    for task in ("caption", "t2i", "asr"):
        off = figures[task]["offworld"]
        _check_figures(off, MODEL_KEYS[task] - {"cider"})
        assert off["n"] == 2 and "items" not in off
        assert record["tasks"][task]["offworld"]["items"][0]["id"].startswith(("image-", "prompt-", "speech-"))
    assert figures["caption"]["offworld"]["cider"] is None  # one caption per picture: nothing to score against
    assert figures["t2i"]["offworld"]["ground_truth"]["attr_acc"] is None  # prompts come without pictures
    assert figures["t2i"]["offworld"]["conditioning"] is None
    assert figures["asr"]["offworld"]["ground_truth"]["wer"] >= 0.0


def test_conditioning_is_the_gap_on_the_tasks_items(world, debug_bundle):
    from anygpt.chat import encode_media
    from anygpt.eval.conditioning import conditioning
    from anygpt.world import take_items

    got = evaluate(debug_bundle, world, ["music_caption"], limit=2)["music_caption"]["conditioning"]
    items = take_items(world, "music", "test", 2)
    clips = [encode_media(debug_bundle, "music", (it["waveform"], it["sample_rate"])) for it in items]
    assert got == conditioning(debug_bundle, "music_caption", clips, [it["captions"][0] for it in items])
    # skipped on request; None where no other item's input exists
    assert "conditioning" not in evaluate(debug_bundle, world, ["music_caption"], limit=2,
                                          conditioning=False)["music_caption"]
    assert evaluate(debug_bundle, world, ["music_caption"], limit=1)["music_caption"]["conditioning"] is None


def test_code_edit_counts_edits_per_reference_code_by_length():
    import torch

    from anygpt.eval.tasks import code_edit

    replies = [torch.tensor([[1, 2, 3, 4]]), None, torch.tensor([[5, 6, 9]])]
    references = [torch.tensor([[1, 2, 3, 5]]), torch.tensor([[7, 8]]), torch.tensor([[5, 6]])]
    e = code_edit(replies, references)  # 1 substituted; 2 dropped (malformed); 1 added
    assert e == {"edit": 4 / 8, "edit_short": 3 / 4, "edit_long": 1 / 4, "split_codes": 2.0}
    assert code_edit(references, references)["edit"] == 0.0


def test_table_without_json(world, capsys):
    assert main(["eval", "asr", "--bundle", "debug", "--limit", "1", "--world", str(world)]) == 0
    printed = capsys.readouterr().out
    assert "ground truth" in printed and "WER" in printed and "malformed=" in printed
    assert "conditioning gap" in printed  # "-" for one item: nothing to swap its input with
    assert "off-world: WER" in printed
    assert main(["eval", "asr", "--bundle", "debug", "--limit", "1", "--world", str(world), "--no-conditioning"]) == 0
    assert "conditioning gap" not in capsys.readouterr().out
    assert main(["eval", "asr", "--bundle", "debug", "--limit", "1", "--world", str(world), "--no-offworld"]) == 0
    assert "off-world" not in capsys.readouterr().out
    assert main(["eval", "tts", "--bundle", "debug", "--limit", "2", "--world", str(world)]) == 0
    assert "code edit rate" in capsys.readouterr().out


def test_malformed_replies_are_scored_wrong(world, debug_bundle, monkeypatch):
    from anygpt.chat import Reply

    monkeypatch.setattr("anygpt.chat.ChatSession.ask", lambda self, content, want=None: Reply([], []))
    figures = evaluate(debug_bundle, world, TASKS, limit=1)
    for task in TASKS:
        assert figures[task]["malformed"] == figures[task]["n"] == 1, task
    assert figures["caption"]["cider"] == 0.0 and figures["caption"]["attr_acc"] == 0.0
    assert figures["t2i"]["attr_acc"] == 0.0 and figures["t2i"]["clip_score"] == 0.0
    assert figures["asr"]["wer"] == 1.0  # every word deleted
    assert figures["tts"]["wer"] == 1.0 and figures["tts"]["sim"] == 0.0
    assert figures["tts"]["codes"]["edit"] == 1.0  # every code of the recordings dropped
    assert figures["music_caption"]["attr_acc"] == 0.0 and figures["music_caption"]["clap_score"] == 0.0
    assert figures["t2m"]["attr_acc"] == 0.0 and figures["t2m"]["clap_score"] == 0.0
    assert figures["caption"]["ground_truth"]["attr_acc"] >= 0.9  # the real data is still judged


def test_same_seed_same_numbers(world, debug_bundle):
    def once(seed):
        result = evaluate(debug_bundle, world, ["caption"], limit=1, seed=seed)["caption"]
        result["offworld"].pop("seconds")  # the off-world set's figures carry their own timing
        return {k: v for k, v in result.items() if k != "seconds"}

    first = once(5)
    assert once(5) == first
    assert first["items"][0]["seed"] == 5 and first["items"][0]["text"]


def test_music_text_attributes_pinned():
    read = music_text_attributes(
        "Music from the piano family: an electric piano plays a fiddle reel, cheerful and fast, in F-sharp minor.")
    assert read == {"tempo_bpm": None, "tempo_word": "fast", "key": "F-sharp", "mode": "minor", "family": "piano",
                    "instrument": "electric piano"}
    # a mood implies mode and tempo class when they are unsaid; BPM implies the tempo class
    assert music_text_attributes("A calm tune on a cello.") == {
        "tempo_bpm": None, "tempo_word": "slow", "key": None, "mode": "major", "family": "strings",
        "instrument": "cello"}
    assert music_text_attributes("French horn at 150 BPM")["tempo_word"] == "very fast"
    assert set(music_text_attributes("").values()) == {None}


def test_music_caption_accuracy_on_world_captions():
    from anygpt.world import music_captions as captions

    truth = {"source": "bach_chorale", "source_label": "Bach chorale", "instrument": "music box",
             "family": "chromatic percussion", "tempo_bpm": 66, "tempo_word": "slow", "key": "A", "mode": "minor",
             "meter": "4/4", "parts": 4, "mood": ["sad", "solemn", "melancholic"]}
    texts = captions(truth)
    scores = music_caption_accuracy(texts, [truth] * len(texts))
    # only one template in five leaves the key unsaid, three in five the BPM
    assert scores == {"tempo": 0.4, "tempo_word": 1.0, "key": 0.8, "mode": 1.0, "family": 1.0, "instrument": 1.0,
                      "mean": 0.96}
    assert music_caption_accuracy([""], [truth])["mean"] == 0.0
    # enharmonic spellings name the same key
    assert music_caption_accuracy(["in G-flat major"], [dict(truth, key="F-sharp", mode="major")])["key"] == 1.0


def test_unknown_task_errors(tmp_path, capsys, debug_bundle):
    with pytest.raises(SystemExit) as e:
        main(["eval", "captioning", "--bundle", "debug", "--world", str(tmp_path)])
    assert e.value.code == 2
    assert "invalid choice: 'captioning'" in capsys.readouterr().err
    from anygpt.errors import AnyGPTError

    with pytest.raises(AnyGPTError, match="unknown task"):
        evaluate(debug_bundle, tmp_path, ["captioning"])


def test_the_table_drives_the_cli(monkeypatch, capsys, tmp_path):
    """Every record of TASKS is a subcommand with its help line; `all` runs exactly the records, in order,
    on a world holding their modalities; the table prints each record's metrics. No model runs."""
    import anygpt.bundles
    from anygpt.cli import build_parser
    from anygpt.eval import tasks_command
    from anygpt.eval.offworld import KINDS as OFFWORLD_KINDS
    from anygpt.prompts import load_tasks
    from anygpt.world import MODALITY_KINDS

    assert len(set(TASKS)) == len(TASKS) and all(name == task.name for name, task in TASKS.items())
    prompts = load_tasks()
    for name, task in TASKS.items():  # the chat prompt the task generates with agrees on both sides
        assert (prompts[name].input, prompts[name].output) == (task.input, task.output), name
        assert {key for key, _ in task.metrics} == MODEL_KEYS[name] and task.headline in MODEL_KEYS[name]
        assert task.modality in MODALITY_KINDS and task.world_kind == MODALITY_KINDS[task.modality]
        assert task.offworld is None or task.offworld in OFFWORLD_KINDS
    assert set(MODEL_KEYS) == set(TASKS)

    sub = argparse.ArgumentParser().add_subparsers()
    tasks_command.register(sub)
    assert list(sub.choices) == [*TASKS, "all"]
    parser = build_parser()  # as `anygpt eval` registers them
    for name, task in TASKS.items():
        assert sub.choices[name].description.startswith(f"{task.help}. ")
        args = parser.parse_args(["eval", name])
        assert args.tasks == [name] and args.func is tasks_command.run
    assert parser.parse_args(["eval", "all"]).tasks == list(TASKS)

    calls = {}

    def fake_evaluate(bundle, world, tasks, **kwargs):
        calls["tasks"] = list(tasks)
        return {t: {**dict.fromkeys(keys, 0.5), "ground_truth": dict.fromkeys(keys, 1.0),
                    "n": 1, "malformed": 0, "seconds": 0.0, "items": []}
                for t in tasks for keys in [[key for key, _ in TASKS[t].metrics]]}

    class FakeBundle:
        name = "fake"

    monkeypatch.setattr(anygpt.bundles, "load_bundle", lambda name, device=None: FakeBundle())
    def fake_ensure_world(world, modalities):
        calls["modalities"] = modalities
        return tmp_path

    monkeypatch.setattr(tasks_command, "ensure_world", fake_ensure_world)
    monkeypatch.setattr(tasks_command, "evaluate", fake_evaluate)
    assert main(["eval", "all", "--bundle", "debug"]) == 0
    assert calls["tasks"] == list(TASKS)
    assert calls["modalities"] == sorted({task.modality for task in TASKS.values()})
    printed = capsys.readouterr().out.splitlines()[1:]
    assert [line.split()[0] for line in printed if not line.startswith(" ")] == list(TASKS)
    names = [name for task in TASKS.values() for _, name in task.metrics]
    assert len(printed) == len(names) and all(name in line for name, line in zip(names, printed, strict=True))
