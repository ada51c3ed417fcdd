"""The paper's six evaluation tasks on the world's held-out test split, scored by the world's judges.

    evaluate(bundle, world, ["caption", "t2m"], limit=50, seed=0, out=None) -> {task: figures}

Every task is one EvalTask record in TASKS (the bottom of this file): its input and output modality,
the figures the table prints, its help line, its runner and the off-world items that feed it. The
CLI's subcommands, `all`, the worlds to build, the table's rows, the off-world set and the
conditioning gap are read off those records, so a new task is one record and its runner here, plus
its chat prompt in prompts/tasks.toml.

Every item goes the way of `anygpt chat --task TASK`: the task's chat prompt around its one input
(prompts/tasks.toml), `ChatSession.ask` with the task's output modality as `want`, the reply parsed
into segments, a media reply decoded by the bundle's codec. Item i of the test split is generated
with seed `seed + i`, so a run is reproducible and one item's reply does not depend on the others.

    task           input -> reply              model figures                          judges
    caption        image -> text               cider, attr_acc                        captions.py
    t2i            first caption -> image      attr_acc, attr_acc_novel, clip_score   image.py, contrastive.py
    asr            speech -> text              wer                                    speech.py (pocketsphinx)
    tts            text (+ 3 s voice) -> speech  wer, sim                             speech.py (+ resemblyzer)
    music_caption  music -> text               attr_acc, clap_score                   music_text.py, contrastive.py
    t2m            first caption -> music      attr_acc, clap_score                   music.py, contrastive.py

Each task also reports "conditioning" (conditioning.py, forward passes only): the NLL per token of
the reference outputs under teacher forcing after the same task prompt around the items' own inputs
and around other items' inputs, and their gap. References: the first caption (caption, music_caption),
the transcript (asr), and the codes of the item's image, utterance or clip (t2i, tts, t2m; music
cropped to the span limit, as inputs are). None for fewer than 2 items or a base prompt format.

Beside the model's figures, "ground_truth" holds the same judges on the real data: the ceiling the
judges allow. A reply without a decodable media span of the wanted kind, or without text, counts in
"malformed" and is scored as wrong, never skipped: an empty caption or transcript, an empty scene, a
music prediction that matches nothing, and a similarity of NO_AGREEMENT for the CLIP, CLAP and
speaker scores (media the judges reject, such as silent audio, count the same way).

This module builds the CLI (`anygpt eval --help` reads TASKS), so nothing it imports at its top
imports torch or the world's generator (about 0.5 s): `chat` is its light package (the session loads
on first use), and the runners import prompts and the conditioning gap (torch) and the world's reader
themselves.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from anygpt import chat, media  # chat: a light package that loads its session (torch) on first use
from anygpt.errors import AnyGPTError
from anygpt.eval.command import MODALITIES
from anygpt.eval.judges import speech
from anygpt.eval.judges.captions import caption_accuracy, cider
from anygpt.eval.judges.contrastive import ContrastiveJudge
from anygpt.eval.judges.image import ImageJudge, attribute_accuracy
from anygpt.eval.judges.music import MUSIC_ATTRIBUTES, MusicJudge, music_attribute_accuracy
from anygpt.eval.judges.music_text import music_caption_accuracy
from anygpt.eval.offworld import KINDS as OFFWORLD_KINDS
from anygpt.eval.offworld import load_offworld

VOICE_SECONDS = 3.0  # the voice prompt: the first 3 s of another utterance (as `anygpt chat --voice`)
NO_AGREEMENT = 0.0  # the cosine a malformed reply scores in CLIP, CLAP and speaker similarity
EMPTY_SCENE = {"count": 0, "objects": [], "background": {"colour": None, "pattern": None}}


@dataclass(frozen=True)
class EvalTask:
    """One evaluation task: everything `anygpt eval` knows of it.

        name      the subcommand, and the prompts/tasks.toml entry whose chat prompt wraps the input
        input     the modality the prompt wraps: image, speech, music or text (as prompts/tasks.toml)
        output    the modality of the reply (as prompts/tasks.toml)
        metrics   (figure key, its name in the table) per model figure, in the order of the paper's tables
        headline  the one figure a learning curve follows (scripts/learning_curve.py)
        help      one line: what the task asks and how it is scored
        run       run(run, task) -> Scored: generate for the items and judge replies and real data
        offworld  the kind of the off-world manifest's items that feed the task again (image, prompt,
                  speech; anygpt.eval.offworld), or None
    """

    name: str
    input: str
    output: str
    metrics: tuple[tuple[str, str], ...]
    headline: str
    help: str
    run: Callable[[Run, EvalTask], Scored]
    offworld: str | None = None

    def __post_init__(self):
        sides = (self.input, self.output)
        if sides.count("text") != 1 or any(m != "text" and m not in MODALITIES for m in sides):
            raise ValueError(f"task {self.name}: {self.input} -> {self.output}; one side is text, the other "
                             f"one of {', '.join(MODALITIES)}")
        keys = [key for key, _ in self.metrics]
        if not keys or len(set(keys)) != len(keys) or self.headline not in keys:
            raise ValueError(f"task {self.name}: metrics {keys} must be distinct and hold "
                             f"the headline {self.headline!r}")
        if self.offworld is not None and self.offworld not in OFFWORLD_KINDS:
            raise ValueError(f"task {self.name}: no off-world items of kind {self.offworld!r} "
                             f"(choose from {', '.join(OFFWORLD_KINDS)})")

    @property
    def modality(self) -> str:
        """The task's media side (the other side is text): the codec it needs, the world's items it reads."""
        return self.output if self.input == "text" else self.input

    @property
    def world_kind(self) -> str:
        """The world kind (plural, as anygpt.world names them) that holds the task's items."""
        from anygpt.world import kind_of  # the world's generator (~0.5 s): not at CLI start

        return kind_of(self.modality)


def modalities(names) -> list[str]:
    """The modalities the named tasks read, sorted: what ensure_world must find in a world."""
    return sorted({TASKS[name].modality for name in names})


# ----------------------------------------------------------------------------------------------
# Generation: the `anygpt chat --task` path, one item at a time


@dataclass
class Generated:
    text: str  # the reply's text ("" when it has none)
    media: Any  # a media reply: PIL image or float32 waveform at the codec's rate; None if malformed
    malformed: bool
    codes: Any = None  # a media reply's codes (K, T) as generated; None for text or a malformed reply


def generate(bundle, task: str, value, *, seed: int, voice: np.ndarray | None = None) -> Generated:
    """One reply to the task's chat prompt around `value` (text, or Media from chat.encode_media)."""
    from anygpt.prompts import load_tasks  # lazy: prompts imports torch, and the CLI reads TASKS from here

    spec = load_tasks()[task]
    session = chat.ChatSession(bundle, decoding=bundle.decoding.override(seed=seed))
    reply = session.ask(spec.chat_pieces(value), want=spec.output)
    if spec.output == "text":
        text = " ".join(s.text for s in reply.segments if s.modality == "text").strip()
        return Generated(text, None, not text)
    segment = next((s for s in reply.segments if s.modality == spec.output), None)
    decoded = None if segment is None else chat.decode_segment(bundle, segment, voice=voice, seed=seed)
    return Generated("", decoded, decoded is None, None if decoded is None else segment.codes)


@dataclass
class Scored:
    """A runner's result; evaluate adds the conditioning gap and one row per item."""

    figures: dict  # the model's figures, "ground_truth" and the task's own extras
    items: list[dict]  # the items scored, in order
    replies: list[Generated]  # one per item
    # (inputs, reference replies) of the conditioning gap, empty when the run skips it; None when the
    # items have no reference reply (off-world prompts come without a picture)
    gap: tuple[list, list] | None


@dataclass
class Run:
    bundle: Any
    world: Path
    limit: int | None
    seed: int
    out: Path | None
    conditioning: bool = True  # add each task's conditioning gap
    source: str = "world"  # or "offworld": the hand-made set (the tasks whose record names its items)

    def items(self, task: EvalTask, *, whole: bool = False) -> list[dict]:
        """The task's items: the first `limit` (all when `whole`) of the world's test split, or with
        source="offworld" of the hand-made set (anygpt.eval.offworld)."""
        from anygpt.world import take_items  # imports the world's generator (~0.5 s)

        limit = None if whole else self.limit
        if self.source == "offworld":
            return load_offworld()[task.offworld][:limit]
        return take_items(self.world, task.world_kind, "test", limit)

    def save(self, task: EvalTask, index: int, generated: Generated) -> str | None:
        """Write a media reply under out/task/; its path, or None."""
        if self.out is None or generated.media is None:
            return None
        stem = self.out / task.name / f"{index:04d}"
        if task.output == "image":
            return str(media.save_image(generated.media, stem.with_suffix(".png")))
        rate = self.bundle.codec(task.output).sample_rate
        return str(media.save_audio(stem.with_suffix(".wav"), generated.media, rate))

    def rows(self, task: EvalTask, items: list[dict], replies: list[Generated]) -> list[dict]:
        """One JSON-ready row per item for results.json: the reply text or file, and whether malformed."""
        text = task.output == "text"
        return [{"id": item["id"], "seed": self.seed + i, "malformed": g.malformed,
                 **({"text": g.text} if text else {"path": self.save(task, i, g)})}
                for i, (item, g) in enumerate(zip(items, replies, strict=True))]


def _conditioning(run: Run, task: EvalTask, gap: tuple[list, list] | None) -> dict:
    """{"conditioning": figures} on the task's items (None when they have no references, cannot be
    deranged or the prompt format is not a chat format); {} when the run skips it."""
    from anygpt.eval.conditioning import conditioning  # torch

    if gap is None:
        return {"conditioning": None}
    if not run.conditioning:
        return {}
    inputs, answers = gap
    if len(inputs) < 2 or run.bundle.prompt_format.kind != "chat":
        return {"conditioning": None}
    return {"conditioning": conditioning(run.bundle, task.name, inputs, answers)}


def _judge_or_none(fn, *args):
    """A judge's figure on generated media, or None when the judge rejects it (silent, empty)."""
    try:
        return fn(*args)
    except (AnyGPTError, ValueError):
        return None


def caption_attr_acc(captions: list[str], truths: list[dict]) -> float:
    """Mean over caption_accuracy's figures, bg_stated left out (as calibrate_images)."""

    scores = caption_accuracy(captions, truths)
    with warnings.catch_warnings():  # an attribute no caption stated is NaN: left out of the mean
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean([v for k, v in scores.items() if k != "bg_stated"]))


# ----------------------------------------------------------------------------------------------
# The runners: each returns its figures with "ground_truth", its items and replies, and the inputs
# and references of its conditioning gap


def eval_caption(run: Run, task: EvalTask) -> Scored:

    items = run.items(task)
    images = [chat.encode_media(run.bundle, "image", it["image"]) for it in items]
    replies = [generate(run.bundle, task.name, image, seed=run.seed + i) for i, image in enumerate(images)]
    texts = [g.text for g in replies]
    # the first caption is held out as the ground-truth candidate; both are scored against the rest
    # (the off-world set has one caption per picture: no CIDEr)
    held, refs = [it["captions"][0] for it in items], [it["captions"][1:] for it in items]
    truths = [it["attributes"] for it in items]
    scored = all(refs)
    figures = {"cider": cider(texts, refs) if scored else None, "attr_acc": caption_attr_acc(texts, truths),
               "ground_truth": {"cider": cider(held, refs) if scored else None,
                                "attr_acc": caption_attr_acc(held, truths)}}
    return Scored(figures, items, replies, (images, held))


def eval_t2i(run: Run, task: EvalTask) -> Scored:

    items = run.items(task)
    prompts = [it["prompt"] if "prompt" in it else it["captions"][0] for it in items]  # off-world: own words
    replies = [generate(run.bundle, task.name, text, seed=run.seed + i) for i, text in enumerate(prompts)]
    judge = ImageJudge.load()
    clip = ContrastiveJudge.load("clip", image_judge=judge)  # the CLIP analog reads the image judge's features
    truths = [it["attributes"] for it in items]
    novel = [i for i, t in enumerate(truths) if t.get("novel_combination")]

    def figures(images: list) -> dict:  # None for a malformed reply
        ok = [i for i, im in enumerate(images) if im is not None]
        predicted = [EMPTY_SCENE] * len(images)
        scores = [NO_AGREEMENT] * len(images)
        if ok:
            for i, p in zip(ok, judge.attributes([images[i] for i in ok]), strict=True):
                predicted[i] = p
            for i, s in zip(ok, clip.score([images[i] for i in ok], [prompts[i] for i in ok]), strict=True):
                scores[i] = s
        return {"attr_acc": attribute_accuracy(predicted, truths)["mean"],
                "attr_acc_novel": attribute_accuracy([predicted[i] for i in novel], [truths[i] for i in novel])["mean"]
                if novel else None,
                "clip_score": float(np.mean(scores))}

    pictured = all("image" in it for it in items)  # off-world prompts come without a picture
    references = [chat.encode_media(run.bundle, "image", it["image"]) for it in items] if run.conditioning and pictured else []
    return Scored({**figures([g.media for g in replies]),
                   "ground_truth": figures([it["image"] for it in items]) if pictured
                   else dict.fromkeys(("attr_acc", "attr_acc_novel", "clip_score")),
                   "n_novel": len(novel)},
                  items, replies, (prompts, references) if pictured else None)


def eval_asr(run: Run, task: EvalTask) -> Scored:

    items = run.items(task)
    speeches = [chat.encode_media(run.bundle, "speech", (it["waveform"], it["sample_rate"])) for it in items]
    replies = [generate(run.bundle, task.name, speech_in, seed=run.seed + i) for i, speech_in in enumerate(speeches)]
    refs = [it["text"] for it in items]
    heard = [speech.asr([it["waveform"]], it["sample_rate"])[0] for it in items]
    return Scored({"wer": speech.wer([g.text for g in replies], refs), "ground_truth": {"wer": speech.wer(heard, refs)}},
                  items, replies, (speeches, refs))


def voice_partner(items: list[dict], index: int) -> int:
    """The next test utterance (cyclically) of the same speaker; the item itself when it has none."""
    n = len(items)
    for step in range(1, n):
        j = (index + step) % n
        if items[j]["speaker"] == items[index]["speaker"]:
            return j
    return index


def code_edit(replies: list, references: list) -> dict:
    """How far generated codes are from the recording's own: edit operations (substituted, dropped
    and added codes of the first code layer) per reference code over all items, and over the shorter
    and the longer half of the references (`split_codes`: the median length). A malformed reply (None)
    drops every code. Wrong words show here before the codec renders them, and by sentence length."""
    def words(codes) -> str:
        return "" if codes is None else " ".join(map(str, (codes[0] if codes.dim() > 1 else codes).tolist()))

    hyps, refs = [words(c) for c in replies], [words(c) for c in references]
    lengths = [len(r.split()) for r in refs]
    split = float(np.median(lengths))

    def rate(index: list[int]) -> float | None:
        return speech.wer([hyps[i] for i in index], [refs[i] for i in index]) if index else None

    everything = list(range(len(refs)))
    return {"edit": rate(everything), "edit_short": rate([i for i in everything if lengths[i] <= split]),
            "edit_long": rate([i for i in everything if lengths[i] > split]), "split_codes": split}


def eval_tts(run: Run, task: EvalTask) -> Scored:

    everything = run.items(task, whole=True)  # voice prompts come from the whole test split
    items = everything[:run.limit] if run.limit is not None else everything
    rate = run.bundle.codec("speech").sample_rate
    partners = [voice_partner(everything, i) for i in range(len(items))]
    voices = [media.to_waveform((everything[j]["waveform"], everything[j]["sample_rate"]), rate,
                                max_seconds=VOICE_SECONDS) for j in partners]
    replies = [generate(run.bundle, task.name, it["text"], seed=run.seed + i, voice=voices[i])
               for i, it in enumerate(items)]
    refs = [it["text"] for it in items]

    def figures(wavs: list, wav_rate: int) -> dict:
        heard, sims, rejected = [], [], 0
        for wav, voice in zip(wavs, voices, strict=True):
            text = None if wav is None else _judge_or_none(lambda w: speech.asr([w], wav_rate)[0], wav)
            sim = None if wav is None else _judge_or_none(speech.speaker_similarity, wav, voice, wav_rate, rate)
            rejected += wav is not None and (text is None or sim is None)
            heard.append(text or "")
            sims.append(NO_AGREEMENT if sim is None else sim)
        return {"wer": speech.wer(heard, refs), "sim": float(np.mean(sims)), "judge_rejected": rejected}

    truth_rates = {it["sample_rate"] for it in items}
    if len(truth_rates) != 1:
        raise AnyGPTError(f"{run.world}: test speech at several sample rates {sorted(truth_rates)}")
    references = [chat.encode_media(run.bundle, "speech", (it["waveform"], it["sample_rate"])) for it in items] \
        if run.conditioning else []
    extra = {"codes": code_edit([g.codes for g in replies], [r.codes for r in references])} if references else {}
    return Scored({**figures([g.media for g in replies], rate),
                   "ground_truth": figures([it["waveform"] for it in items], truth_rates.pop()),
                   "voice_prompt_self": sum(j == i for i, j in enumerate(partners)), **extra},
                  items, replies, (refs, references))


def eval_music_caption(run: Run, task: EvalTask) -> Scored:

    items = run.items(task)
    clips = [chat.encode_media(run.bundle, "music", (it["waveform"], it["sample_rate"])) for it in items]
    replies = [generate(run.bundle, task.name, clip, seed=run.seed + i) for i, clip in enumerate(clips)]
    truths = [it["attributes"] for it in items]
    clap = ContrastiveJudge.load("clap")
    rate = items[0]["sample_rate"]
    media_emb = clap.embed_media([it["waveform"] for it in items], rate)  # (N, 64), unit norm

    def clap_score(texts: list[str]) -> float:
        cos = (media_emb * clap.embed_texts([t or "-" for t in texts])).sum(-1).tolist()
        return float(np.mean([c if t else NO_AGREEMENT for c, t in zip(cos, texts, strict=True)]))

    texts = [g.text for g in replies]
    acc = music_caption_accuracy(texts, truths)
    # ground truth: every reference caption (as calibrate_images for image captions); CLAP: the first
    every = music_caption_accuracy([c for it in items for c in it["captions"]],
                                   [it["attributes"] for it in items for _ in it["captions"]])
    return Scored({"attr_acc": acc["mean"], "clap_score": clap_score(texts), "per_attribute": acc,
                   "ground_truth": {"attr_acc": every["mean"],
                                    "clap_score": clap_score([it["captions"][0] for it in items]),
                                    "per_attribute": every}},
                  items, replies, (clips, [it["captions"][0] for it in items]))


def eval_t2m(run: Run, task: EvalTask) -> Scored:

    items = run.items(task)
    prompts = [it["captions"][0] for it in items]
    replies = [generate(run.bundle, task.name, text, seed=run.seed + i) for i, text in enumerate(prompts)]
    truths = [it["attributes"] for it in items]
    judge, clap = MusicJudge.load(), ContrastiveJudge.load("clap")

    def figures(wavs: list, rate: int) -> dict:
        predicted: list = [None] * len(wavs)
        scores = [NO_AGREEMENT] * len(wavs)
        for i, (wav, prompt) in enumerate(zip(wavs, prompts, strict=True)):
            if wav is not None:
                read = _judge_or_none(judge.attributes, [wav], rate)
                score = _judge_or_none(clap.score, [wav], [prompt], rate)
                predicted[i] = None if read is None else read[0]
                scores[i] = NO_AGREEMENT if score is None else score[0]
        ok = [i for i, p in enumerate(predicted) if p is not None]
        acc = dict.fromkeys(MUSIC_ATTRIBUTES, 0.0)
        if ok:  # a malformed or rejected reply matches no attribute: accuracy over the judged, scaled to all
            acc = {k: v * len(ok) / len(wavs)
                   for k, v in music_attribute_accuracy([predicted[i] for i in ok], [truths[i] for i in ok]).items()}
        return {"attr_acc": float(np.mean(list(acc.values()))), "clap_score": float(np.mean(scores)),
                "per_attribute": acc, "judge_rejected": sum(w is not None and p is None
                                                            for w, p in zip(wavs, predicted, strict=True))}

    rates = {it["sample_rate"] for it in items}
    if len(rates) != 1:
        raise AnyGPTError(f"{run.world}: test music at several sample rates {sorted(rates)}")
    references = [chat.encode_media(run.bundle, "music", (it["waveform"], it["sample_rate"])) for it in items] \
        if run.conditioning else []
    return Scored({**figures([g.media for g in replies], run.bundle.codec("music").sample_rate),
                   "ground_truth": figures([it["waveform"] for it in items], rates.pop())},
                  items, replies, (prompts, references))


# ----------------------------------------------------------------------------------------------
# The tasks: one record each, in the order of the paper (and of `anygpt eval all`)

ATTR_ACC = ("attr_acc", "attribute acc")
CLAP_SCORE = ("clap_score", "CLAP-analog score")


def _by_name(*tasks: EvalTask) -> dict[str, EvalTask]:
    names = [task.name for task in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"two evaluation tasks share a name: {names}")
    return {task.name: task for task in tasks}


TASKS: dict[str, EvalTask] = _by_name(
    EvalTask(name="caption", input="image", output="text",
             metrics=(("cider", "CIDEr-D"), ATTR_ACC), headline="attr_acc",
             help="image -> text: CIDEr-D and attribute accuracy of captions",
             run=eval_caption, offworld="image"),
    EvalTask(name="t2i", input="text", output="image",
             metrics=(ATTR_ACC, ("attr_acc_novel", "attr acc, novel pairs"), ("clip_score", "CLIP-analog score")),
             headline="attr_acc",
             help="text -> image: attribute accuracy (all and novel pairs) and CLIP-analog score",
             run=eval_t2i, offworld="prompt"),
    EvalTask(name="asr", input="speech", output="text",
             metrics=(("wer", "WER"),), headline="wer",
             help="speech -> text: WER, beside pocketsphinx's",
             run=eval_asr, offworld="speech"),
    EvalTask(name="tts", input="text", output="speech",
             metrics=(("wer", "WER (judge ASR)"), ("sim", "speaker similarity")), headline="wer",
             help="text -> speech in a prompted voice: judge WER and speaker similarity",
             run=eval_tts),
    EvalTask(name="music_caption", input="music", output="text",
             metrics=(ATTR_ACC, CLAP_SCORE), headline="attr_acc",
             help="music -> text: attribute accuracy of captions and CLAP-analog score",
             run=eval_music_caption),
    EvalTask(name="t2m", input="text", output="music",
             metrics=(ATTR_ACC, CLAP_SCORE), headline="attr_acc",
             help="text -> music: music-judge attribute accuracy and CLAP-analog score",
             run=eval_t2m),
)


def evaluate(bundle, world, tasks=tuple(TASKS), *, limit: int | None = None, seed: int = 0,
             out: Path | None = None, log=None, conditioning: bool = True, offworld: bool = True) -> dict:
    """{task: figures} with "n", "malformed", "seconds" and per-item "items" in each, and
    "conditioning" unless `conditioning` is False. With `offworld`, the tasks whose record names
    off-world items (caption, t2i, asr) also hold "offworld": the same figures on the hand-made set of
    inputs the world generator did not make."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise AnyGPTError(f"unknown task {', '.join(unknown)}: choose from {', '.join(TASKS)}")
    run = Run(bundle, Path(world), limit, seed, None if out is None else Path(out), conditioning)
    results = {}
    for name in tasks:
        task = TASKS[name]
        results[name] = _timed(task, run, log)
        if offworld and task.offworld is not None:
            off = replace(run, source="offworld", out=None if run.out is None else run.out / "offworld")
            results[name]["offworld"] = _timed(task, off, log)
    return results


def _timed(task: EvalTask, run: Run, log) -> dict:
    start = time.perf_counter()
    scored = task.run(run, task)
    figures = {**scored.figures, **_conditioning(run, task, scored.gap),
               "items": run.rows(task, scored.items, scored.replies)}
    figures["n"] = len(figures["items"])
    figures["malformed"] = sum(row["malformed"] for row in figures["items"])
    figures["seconds"] = round(time.perf_counter() - start, 2)
    if log is not None:
        log(f"eval {task.name}{' (off-world set)' if run.source == 'offworld' else ''}: {figures['n']} items, "
            f"{figures['malformed']} malformed, {figures['seconds']} s")
    return figures
