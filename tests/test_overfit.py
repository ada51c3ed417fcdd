"""Overfit checks: the whole chain, world -> records -> units -> training -> chat -> codecs -> judges,
memorises a few items of each evaluation task and the task's evaluation then scores them near-perfect.

    world test split (the evaluation world, ensure_world)
      | first N items                        <- exactly what eval/tasks.py `_items(..., limit=N)` scores
      v
    anygpt data from-world   (FromWorldConfig, run_from_world)    records: DIR/test/<kind>_pairs.jsonl
    anygpt data tokenize     (TokenizeConfig, run_tokenize, "tiny") units: codes by the shipped codecs
    anygpt data mix / pack   (MixConfig, run_mix, run_pack)        the task's chat turn, one direction
    anygpt train             (load_recipe("tiny-instruct", --set ...), train) from the tiny weights
    anygpt eval TASK         (evaluate(bundle, world, [task], limit=N))      generate, decode, judge

A chain that drops or shifts anything between the stages (records that are not the evaluated items,
codes that differ between tokenize and chat, a loss mask off the reply, a prompt at training that is
not the one at evaluation, a decoder that reads the codes differently) cannot reach the thresholds:
the model then answers from what it memorised for other inputs, or from nothing. The thresholds sit
above what the shipped tiny bundle scores on the same items before this training (measured: caption
attribute accuracy 0.94 and CIDEr-D 4.05 of the ceiling's 4.67, t2i 0.90, ASR WER 0.94; README on 50
items: TTS WER 0.89, music captions 0.62, text-to-music 0.22) and near the judges' own ceilings (the
evaluation's "ground_truth", and the codecs' reconstructions), so only a training on these very items
through the same prompts and codes gets there.

Slow (minutes each on one thread): `pytest -m slow tests/test_overfit.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

BUNDLE = "tiny"  # the shipped bundle: its codecs make the units, its weights are the starting point
TO_TEXT = {"caption": 1.0, "asr": 1.0, "music_caption": 1.0, "t2i": 0.0, "tts": 0.0, "t2m": 0.0}


@dataclass(frozen=True)
class Overfit:
    """One task's overfit run: how many test items, how long, and what the judges must read."""
    n: int  # the first n test items (evaluate's `limit`)
    steps: int  # optimizer steps; every step sees every item once (one full batch)
    max_len: int  # packed row length: a multiple of one sample's length keeps rows full
    metric: str  # the figure of evaluate()'s result that is checked
    bound: float  # >= bound for accuracies, <= bound for WER
    lower_is_better: bool = False
    lr: float = 1e-3


# Thresholds (why each one separates a working chain from a broken one):
# - caption attr_acc >= 0.98 and CIDEr-D >= 0.97 x the first caption's: the memorised reply is the
#   first caption itself (1.0 and exactly the ceiling, measured); the shipped bundle already reads
#   0.94 of these attributes in its own wording (CIDEr-D 0.87 of the ceiling), a model trained on
#   other images' captions less.
# - t2i attr_acc >= 0.94: memorised codes come back through the small-scene renderer, which keeps about
#   0.95-0.97 of the attributes (0.966 measured; the originals read at 1.0); the shipped bundle draws
#   0.90 of them, a picture for the wrong caption matches a few attributes by chance.
# - asr WER <= 0.2: the reference transcript is what was memorised, so a working chain writes it word
#   for word (0.01 measured); the shipped bundle scores 0.94 on these items, and a model that does not
#   tell the inputs apart writes another item's sentence (WER near 1).
# - tts WER <= 0.3: pocketsphinx listens to the decoded reply; the right layer-1 codes rendered in the
#   prompt's voice come back near the originals' WER (0.11; README: cloning from true codes 0.113;
#   0.16 measured here), another sentence's codes or the shipped bundle's speech at about 0.9.
# - music_caption attr_acc >= 0.9: the memorised first caption reads at 1.0 (the world's captions at
#   0.96 on average); the shipped bundle 0.62, another clip's caption matches by chance.
# - t2m attr_acc >= 0.6: the music judge reads the originals' attributes at about 0.7 and the small
#   music codec loses timbre, so a perfect memorisation scores below the originals; another clip's
#   codes match tempo, key and instrument only by chance (the shipped bundle: 0.22). 40 steps were
#   not enough (loss on the items 6.27 -> 0.11, attr_acc 0.45: sampled replies drift off the clip and
#   close early); 150 steps are an estimate, not yet measured.
CASES = {
    "caption": Overfit(n=16, steps=40, max_len=512, metric="attr_acc", bound=0.98),
    "t2i": Overfit(n=16, steps=40, max_len=512, metric="attr_acc", bound=0.94),
    "asr": Overfit(n=12, steps=30, max_len=1024, metric="wer", bound=0.2, lower_is_better=True),
    "tts": Overfit(n=12, steps=60, max_len=1024, metric="wer", bound=0.3, lower_is_better=True),
    "music_caption": Overfit(n=8, steps=30, max_len=2048, metric="attr_acc", bound=0.9),
    "t2m": Overfit(n=6, steps=150, max_len=2048, metric="attr_acc", bound=0.6, lr=2e-3),
}


def _records(world: Path, kind: str, n: int, out: Path) -> tuple[Path, list[str]]:
    """`anygpt data from-world` on the world's test split, cut to its first n records; (file, item ids)."""
    from anygpt.data.pipeline.from_world import PAIR_FILES, FromWorldConfig, run_from_world

    run_from_world(FromWorldConfig(world=str(world), out=str(out), splits=["test"], kinds=[kind]), quiet=True)
    path = out / "test" / f"{PAIR_FILES[kind]}.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()[:n]  # captions="first": one record per item
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path, [json.loads(line)["id"].split("/")[0] for line in lines]


def _packed(records: Path, task: str, out: Path, max_len: int) -> Path:
    """`anygpt data tokenize`, then one pass of the task's chat turns (`mix`), packed (`pack`)."""
    from anygpt.bundles import load_bundle
    from anygpt.data.pipeline.mixture import DatasetSpec, MixConfig, run_mix
    from anygpt.data.pipeline.packing import run_pack
    from anygpt.data.pipeline.tokenize import TokenizeConfig, run_tokenize

    units = out / "units"
    run_tokenize(TokenizeConfig(inputs=[str(records)], out=str(units), bundle=BUNDLE), quiet=True)
    bundle = load_bundle(BUNDLE)
    # every item once, as the task's chat turn; nothing held out (val_fraction 0): the items are the test
    mix = MixConfig(datasets=[DatasetSpec(name=task, units=str(units), to_text=TO_TEXT[task], style="task")],
                    budget_tokens=0, val_fraction=0.0, chat_format=bundle.prompt_format.name)
    report = run_mix(mix, bundle.tokenizer, bundle.layout, out / "mix", quiet=True)
    assert report["by_tag"] and all(tag.endswith("to_text" if TO_TEXT[task] else "from_text")
                                    for tag in report["by_tag"]), report["by_tag"]
    run_pack(out / "mix" / "train", out / "packed", max_len, quiet=True)
    return out / "packed"


def _train(packed: Path, case: Overfit, out: Path) -> Path:
    """`anygpt train --recipe tiny-instruct --bundle tiny --data PACKED --set ...`; the exported bundle."""
    from anygpt.train.data import PackedRows
    from anygpt.train.recipe import load_recipe
    from anygpt.train.trainer import train

    rows = len(PackedRows(packed))
    cfg = load_recipe("tiny-instruct", {"bundle": BUNDLE, "data": str(packed), "val_data": str(packed),
                                        "out": str(out), "steps": case.steps, "lr": case.lr,
                                        "max_len": case.max_len, "micro_batch": rows, "grad_accum": 1},
                      ["eval_every=0", "save_every=0", "gap_pairs=0", "tensorboard=false", "warmup_ratio=0.05",
                       "weight_decay=0", "loss_on=assistant"])
    summary = train(cfg, log=lambda msg: None)
    first, last = summary["first_eval"]["val_loss"], summary["last_eval"]["val_loss"]
    print(f"overfit train: {rows} rows, {case.steps} steps, loss on the items {first:.3f} -> {last:.4f}")
    return Path(summary["bundle"])


def _overfit(task: str, tmp_path: Path) -> dict:
    from anygpt.bundles import load_bundle
    from anygpt.eval.command import ensure_world
    from anygpt.eval.tasks import TASKS, evaluate

    case = CASES[task]
    kind = TASKS[task].world_kind
    world = ensure_world(None, [TASKS[task].modality])  # the evaluation world, as `anygpt eval` uses
    records, ids = _records(world, kind, case.n, tmp_path / "records")
    bundle = load_bundle(_train(_packed(records, task, tmp_path, case.max_len), case, tmp_path / "run"))
    figures = evaluate(bundle, world, [task], limit=case.n, out=tmp_path / "eval", conditioning=False,
                       offworld=False)[task]
    # trained on exactly the items the evaluation scored, in its order
    assert [row["id"] for row in figures["items"]] == ids
    value = figures[case.metric]
    scalars = lambda f: {k: round(v, 3) for k, v in f.items() if isinstance(v, float)}  # noqa: E731
    print(f"overfit {task}: {case.metric} {value:.3f} (bound {case.bound}), {figures['n']} items, "
          f"{figures['malformed']} malformed, {figures['seconds']} s; model {scalars(figures)}, "
          f"ground truth {scalars(figures['ground_truth'])}")
    (tmp_path / "figures.json").write_text(json.dumps(figures, default=str, indent=1), encoding="utf-8")
    return figures


def _check(task: str, figures: dict) -> None:
    case = CASES[task]
    value = figures[case.metric]
    ok = value <= case.bound if case.lower_is_better else value >= case.bound
    assert ok, f"{task}: {case.metric} {value:.3f} after overfitting, bound {case.bound}: {figures['items']}"


def test_overfit_caption(tmp_path):
    figures = _overfit("caption", tmp_path)
    _check("caption", figures)
    # The shipped bundle already reads most attributes (0.92), so the memorised wording is checked too:
    # the trained reply is the held-out first caption, whose CIDEr-D against the others is the ceiling.
    assert figures["cider"] >= 0.97 * figures["ground_truth"]["cider"], (figures["cider"], figures["ground_truth"])


def test_overfit_t2i(tmp_path):
    _check("t2i", _overfit("t2i", tmp_path))


def test_overfit_asr(tmp_path):
    _check("asr", _overfit("asr", tmp_path))


def test_overfit_tts(tmp_path):
    _check("tts", _overfit("tts", tmp_path))


def test_overfit_music_caption(tmp_path):
    _check("music_caption", _overfit("music_caption", tmp_path))


def test_overfit_t2m(tmp_path):
    _check("t2m", _overfit("t2m", tmp_path))
