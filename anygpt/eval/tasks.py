"""The paper's six evaluation tasks on the world's held-out test split, scored by the world's judges.

    evaluate(bundle, world, ["caption", "t2m"], limit=50, seed=0, out=None) -> {task: figures}

Every item goes the way of `anygpt chat --task TASK`: the task's chat prompt around its one input
(prompts/tasks.toml), `ChatSession.ask` with the task's output modality as `want`, the reply parsed
into segments, a media reply decoded by the bundle's codec. Item i of the test split is generated
with seed `seed + i`, so a run is reproducible and one item's reply does not depend on the others.

    task           input -> reply              model figures                          judges
    caption        image -> text               cider, attr_acc                        captions.py
    t2i            first caption -> image      attr_acc, attr_acc_novel, clip_score   image.py, contrastive.py
    asr            speech -> text              wer                                    speech.py (pocketsphinx)
    tts            text (+ 3 s voice) -> speech  wer, sim                             speech.py (+ resemblyzer)
    music_caption  music -> text               attr_acc, clap_score                   music_text_attributes (here)
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
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from anygpt.errors import AnyGPTError

TASKS = ("caption", "t2i", "asr", "tts", "music_caption", "t2m")
WORLD_KIND = {"caption": "images", "t2i": "images", "asr": "speech", "tts": "speech",
              "music_caption": "music", "t2m": "music"}
CODEC_KIND = {"images": "image", "speech": "speech", "music": "music"}  # ensure_world's names
VOICE_SECONDS = 3.0  # the voice prompt: the first 3 s of another utterance (as `anygpt chat --voice`)
NO_AGREEMENT = 0.0  # the cosine a malformed reply scores in CLIP, CLAP and speaker similarity
EMPTY_SCENE = {"count": 0, "objects": [], "background": {"colour": None, "pattern": None}}
# Attributes a music caption is scored on. BPM is reported too, but most caption templates leave it
# unsaid, so it stays out of the mean.
MUSIC_TEXT_ATTRIBUTES = ("tempo_word", "key", "mode", "family", "instrument")

# ----------------------------------------------------------------------------------------------
# Music captions -> attributes


@functools.cache
def _music_patterns() -> dict:
    from anygpt.world.music import TONIC_NAMES, music_table
    from anygpt.eval.judges.music import PITCH_CLASSES

    t = music_table()
    alt = lambda words: "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))
    instruments = {i["name"].lower(): i for i in t["instruments"]}
    families = {i["family"] for i in t["instruments"]}
    # every spelling (the judge's, enharmonics included) and the world's
    tonics = {name.lower(): name for name in [*PITCH_CLASSES, *TONIC_NAMES["major"], *TONIC_NAMES["minor"]]}
    moods = {word: (mode, tempo) for mode, by_tempo in t["moods"].items()
             for tempo, words in by_tempo.items() for word in words}
    tempo_words = [word for _, word in t["tempo_classes"]]
    return {
        "family": re.compile(rf"\bthe\s+({alt(families)})\s+family\b"),
        "instrument": re.compile(rf"\b({alt(instruments)})\b"),
        "key": re.compile(rf"\bin\s+({alt(tonics)})\s+(major|minor)\b"),  # "in A minor": not the article "a"
        "mode": re.compile(r"\b(major|minor)\b"),
        "tempo_word": re.compile(rf"\b({alt(tempo_words)})\b"),
        "bpm": re.compile(r"\b(\d+(?:\.\d+)?)\s*bpm\b"),
        "mood": re.compile(rf"\b({alt(moods)})\b"),
        "instruments": instruments, "tonics": tonics, "moods": moods,
    }


def music_text_attributes(caption: str) -> dict:
    """Music attributes a caption states, in MusicJudge.attributes' shape; unstated ones are None.

    The world's music vocabulary (music.json), not its caption templates: "in <tonic> <mode>",
    "major"/"minor", a tempo word or "<n> BPM", a GM instrument name, "the <family> family". A mood
    word implies a mode and tempo class (each mood belongs to one), used when those are unsaid;
    the family follows from the instrument when unsaid.
    """
    from anygpt.world.music import tempo_word

    p = _music_patterns()
    text = " ".join(caption.lower().split())
    found: dict[str, Any] = dict.fromkeys(("tempo_bpm", "tempo_word", "key", "mode", "family", "instrument"))
    if m := p["family"].search(text):
        found["family"] = m.group(1)
        text = text[:m.start()] + " " + text[m.end():]  # "the piano family" names no instrument
    if m := p["instrument"].search(text):
        instrument = p["instruments"][m.group(1)]
        found["instrument"] = instrument["name"]
        found["family"] = found["family"] or instrument["family"]
    if m := p["key"].search(text):
        found["key"], found["mode"] = p["tonics"][m.group(1)], m.group(2)
    elif m := p["mode"].search(text):
        found["mode"] = m.group(1)
    if m := p["bpm"].search(text):
        found["tempo_bpm"] = float(m.group(1))
    if m := p["tempo_word"].search(text):
        found["tempo_word"] = m.group(1)
    elif found["tempo_bpm"] is not None:
        found["tempo_word"] = tempo_word(found["tempo_bpm"])
    if m := p["mood"].search(text):
        mode, tempo = p["moods"][m.group(1)]
        found["mode"] = found["mode"] or mode
        found["tempo_word"] = found["tempo_word"] or tempo
    return found


def music_caption_accuracy(captions: list[str], truths: list[dict]) -> dict[str, float]:
    """Per-attribute accuracy of what captions state about their clips (unstated counts as wrong),
    and "mean" over MUSIC_TEXT_ATTRIBUTES. Key: same pitch class and mode, as the music judge."""
    from anygpt.eval.judges.music import PITCH_CLASSES, TEMPO_TOLERANCE

    if len(captions) != len(truths):
        raise ValueError(f"{len(captions)} captions for {len(truths)} truths")
    hits = dict.fromkeys(("tempo",) + MUSIC_TEXT_ATTRIBUTES, 0)
    for caption, t in zip(captions, truths, strict=True):
        read = music_text_attributes(caption)
        hits["tempo"] += read["tempo_bpm"] is not None and \
            abs(read["tempo_bpm"] - t["tempo_bpm"]) <= TEMPO_TOLERANCE * t["tempo_bpm"]
        hits["key"] += read["key"] is not None and read["mode"] == t["mode"] and \
            PITCH_CLASSES[read["key"]] == PITCH_CLASSES[t["key"]]
        for name in ("tempo_word", "mode", "family", "instrument"):
            hits[name] += read[name] == t[name]
    scores = {name: hits[name] / max(1, len(captions)) for name in hits}
    scores["mean"] = float(np.mean([scores[name] for name in MUSIC_TEXT_ATTRIBUTES]))
    return scores


# ----------------------------------------------------------------------------------------------
# Generation: the `anygpt chat --task` path, one item at a time


@dataclass
class Generated:
    text: str  # the reply's text ("" when it has none)
    media: Any  # a media reply: PIL image or float32 waveform at the codec's rate; None if malformed
    malformed: bool


def generate(bundle, task: str, value, *, seed: int, voice: np.ndarray | None = None) -> Generated:
    """One reply to the task's chat prompt around `value` (text, or Media from chat.encode_media)."""
    from anygpt.chat import ChatSession, decode_segment
    from anygpt.prompts import load_tasks

    spec = load_tasks()[task]
    session = ChatSession(bundle, decoding=bundle.decoding.override(seed=seed))
    reply = session.ask(spec.chat_pieces(value), want=spec.output)
    if spec.output == "text":
        text = " ".join(s.text for s in reply.segments if s.modality == "text").strip()
        return Generated(text, None, not text)
    segment = next((s for s in reply.segments if s.modality == spec.output), None)
    decoded = None if segment is None else decode_segment(bundle, segment, voice=voice, seed=seed)
    return Generated("", decoded, decoded is None)


def _items(world, kind: str, limit: int | None, source: str = "world", task: str = "") -> list[dict]:
    """The test items of `kind` (images, speech, music): the world's test split, or with
    source="offworld" the hand-made set of `task` (anygpt.eval.offworld)."""
    if source == "offworld":
        from anygpt.eval.offworld import load_offworld

        return load_offworld()[task][:limit]
    from anygpt.world.reader import take_items

    return take_items(world, kind, "test", limit)


@dataclass
class Run:
    bundle: Any
    world: Path
    limit: int | None
    seed: int
    out: Path | None
    conditioning: bool = True  # add each task's conditioning gap
    source: str = "world"  # or "offworld": the hand-made set (caption, t2i, asr only)

    def items(self, kind: str, task: str) -> list[dict]:
        return _items(self.world, kind, self.limit, self.source, task)

    def save(self, task: str, index: int, generated: Generated) -> str | None:
        """Write a media reply under out/task/; its path, or None."""
        from anygpt import media

        if self.out is None or generated.media is None:
            return None
        stem = self.out / task / f"{index:04d}"
        if task == "t2i":
            return str(media.save_image(generated.media, stem.with_suffix(".png")))
        rate = self.bundle.codec("speech" if task == "tts" else "music").sample_rate
        return str(media.save_audio(stem.with_suffix(".wav"), generated.media, rate))

    def rows(self, task: str, items: list[dict], replies: list[Generated]) -> list[dict]:
        """One JSON-ready row per item for results.json: the reply text or file, and whether malformed."""
        from anygpt.prompts import load_tasks

        text = load_tasks()[task].output == "text"
        return [{"id": item["id"], "seed": self.seed + i, "malformed": g.malformed,
                 **({"text": g.text} if text else {"path": self.save(task, i, g)})}
                for i, (item, g) in enumerate(zip(items, replies, strict=True))]


def _conditioning(run: Run, task: str, inputs: list, answers: list) -> dict:
    """{"conditioning": figures} on the task's items (None when they cannot be deranged or the prompt
    format is not a chat format); {} when the run skips it."""
    from anygpt.eval.conditioning import conditioning

    if not run.conditioning:
        return {}
    if len(inputs) < 2 or run.bundle.prompt_format.kind != "chat":
        return {"conditioning": None}
    return {"conditioning": conditioning(run.bundle, task, inputs, answers)}


def _judge_or_none(fn, *args):
    """A judge's figure on generated media, or None when the judge rejects it (silent, empty)."""
    try:
        return fn(*args)
    except (AnyGPTError, ValueError):
        return None


def caption_attr_acc(captions: list[str], truths: list[dict]) -> float:
    """Mean over caption_accuracy's figures, bg_stated left out (as calibrate_images)."""
    import warnings

    from anygpt.eval.judges.captions import caption_accuracy

    scores = caption_accuracy(captions, truths)
    with warnings.catch_warnings():  # an attribute no caption stated is NaN: left out of the mean
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean([v for k, v in scores.items() if k != "bg_stated"]))


# ----------------------------------------------------------------------------------------------
# The six tasks: each returns its figures, "ground_truth", "n", "malformed" and per-item "items"


def eval_caption(run: Run) -> dict:
    from anygpt.chat import encode_media
    from anygpt.eval.judges.captions import cider

    items = run.items("images", "caption")
    images = [encode_media(run.bundle, "image", it["image"]) for it in items]
    replies = [generate(run.bundle, "caption", image, seed=run.seed + i) for i, image in enumerate(images)]
    texts = [g.text for g in replies]
    # the first caption is held out as the ground-truth candidate; both are scored against the rest
    # (the off-world set has one caption per picture: no CIDEr)
    held, refs = [it["captions"][0] for it in items], [it["captions"][1:] for it in items]
    truths = [it["attributes"] for it in items]
    scored = all(refs)
    return {"cider": cider(texts, refs) if scored else None, "attr_acc": caption_attr_acc(texts, truths),
            "ground_truth": {"cider": cider(held, refs) if scored else None,
                             "attr_acc": caption_attr_acc(held, truths)},
            **_conditioning(run, "caption", images, held), "items": run.rows("caption", items, replies)}


def eval_t2i(run: Run) -> dict:
    from anygpt.chat import encode_media
    from anygpt.eval.judges.contrastive import ContrastiveJudge
    from anygpt.eval.judges.image import ImageJudge, attribute_accuracy

    items = run.items("images", "t2i")
    prompts = [it["prompt"] if "prompt" in it else it["captions"][0] for it in items]  # off-world: own words
    replies = [generate(run.bundle, "t2i", text, seed=run.seed + i) for i, text in enumerate(prompts)]
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
    references = [encode_media(run.bundle, "image", it["image"]) for it in items] if run.conditioning and pictured else []
    return {**figures([g.media for g in replies]),
            "ground_truth": figures([it["image"] for it in items]) if pictured
            else dict.fromkeys(("attr_acc", "attr_acc_novel", "clip_score")),
            "n_novel": len(novel),
            **(_conditioning(run, "t2i", prompts, references) if pictured else {"conditioning": None}),
            "items": run.rows("t2i", items, replies)}


def eval_asr(run: Run) -> dict:
    from anygpt.chat import encode_media
    from anygpt.eval.judges import speech

    items = run.items("speech", "asr")
    speeches = [encode_media(run.bundle, "speech", (it["waveform"], it["sample_rate"])) for it in items]
    replies = [generate(run.bundle, "asr", speech_in, seed=run.seed + i) for i, speech_in in enumerate(speeches)]
    refs = [it["text"] for it in items]
    heard = [speech.asr([it["waveform"]], it["sample_rate"])[0] for it in items]
    return {"wer": speech.wer([g.text for g in replies], refs), "ground_truth": {"wer": speech.wer(heard, refs)},
            **_conditioning(run, "asr", speeches, refs), "items": run.rows("asr", items, replies)}


def voice_partner(items: list[dict], index: int) -> int:
    """The next test utterance (cyclically) of the same speaker; the item itself when it has none."""
    n = len(items)
    for step in range(1, n):
        j = (index + step) % n
        if items[j]["speaker"] == items[index]["speaker"]:
            return j
    return index


def eval_tts(run: Run) -> dict:
    from anygpt import media
    from anygpt.chat import encode_media
    from anygpt.eval.judges import speech

    everything = _items(run.world, "speech", None)  # voice prompts come from the whole test split
    items = everything[:run.limit] if run.limit is not None else everything
    rate = run.bundle.codec("speech").sample_rate
    partners = [voice_partner(everything, i) for i in range(len(items))]
    voices = [media.to_waveform((everything[j]["waveform"], everything[j]["sample_rate"]), rate,
                                max_seconds=VOICE_SECONDS) for j in partners]
    replies = [generate(run.bundle, "tts", it["text"], seed=run.seed + i, voice=voices[i])
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
    references = [encode_media(run.bundle, "speech", (it["waveform"], it["sample_rate"])) for it in items] \
        if run.conditioning else []
    return {**figures([g.media for g in replies], rate),
            "ground_truth": figures([it["waveform"] for it in items], truth_rates.pop()),
            "voice_prompt_self": sum(j == i for i, j in enumerate(partners)),
            **_conditioning(run, "tts", refs, references), "items": run.rows("tts", items, replies)}


def eval_music_caption(run: Run) -> dict:
    from anygpt.chat import encode_media
    from anygpt.eval.judges.contrastive import ContrastiveJudge

    items = _items(run.world, "music", run.limit)
    clips = [encode_media(run.bundle, "music", (it["waveform"], it["sample_rate"])) for it in items]
    replies = [generate(run.bundle, "music_caption", clip, seed=run.seed + i) for i, clip in enumerate(clips)]
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
    return {"attr_acc": acc["mean"], "clap_score": clap_score(texts), "per_attribute": acc,
            "ground_truth": {"attr_acc": every["mean"], "clap_score": clap_score([it["captions"][0] for it in items]),
                             "per_attribute": every},
            **_conditioning(run, "music_caption", clips, [it["captions"][0] for it in items]),
            "items": run.rows("music_caption", items, replies)}


def eval_t2m(run: Run) -> dict:
    from anygpt.chat import encode_media
    from anygpt.eval.judges.contrastive import ContrastiveJudge
    from anygpt.eval.judges.music import (
        MUSIC_ATTRIBUTES,
        MusicJudge,
        music_attribute_accuracy,
    )

    items = _items(run.world, "music", run.limit)
    prompts = [it["captions"][0] for it in items]
    replies = [generate(run.bundle, "t2m", text, seed=run.seed + i) for i, text in enumerate(prompts)]
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
    references = [encode_media(run.bundle, "music", (it["waveform"], it["sample_rate"])) for it in items] \
        if run.conditioning else []
    return {**figures([g.media for g in replies], run.bundle.codec("music").sample_rate),
            "ground_truth": figures([it["waveform"] for it in items], rates.pop()),
            **_conditioning(run, "t2m", prompts, references), "items": run.rows("t2m", items, replies)}


EVALUATORS = {"caption": eval_caption, "t2i": eval_t2i, "asr": eval_asr, "tts": eval_tts,
              "music_caption": eval_music_caption, "t2m": eval_t2m}


OFFWORLD_TASKS = ("caption", "t2i", "asr")  # the tasks the hand-made set (anygpt.eval.offworld) feeds


def evaluate(bundle, world, tasks=TASKS, *, limit: int | None = None, seed: int = 0,
             out: Path | None = None, log=None, conditioning: bool = True, offworld: bool = True) -> dict:
    """{task: figures} with "n", "malformed", "seconds" and per-item "items" in each, and
    "conditioning" unless `conditioning` is False. With `offworld`, caption, t2i and asr also hold
    "offworld": the same figures on the hand-made set of inputs the world generator did not make."""
    unknown = [t for t in tasks if t not in EVALUATORS]
    if unknown:
        raise AnyGPTError(f"unknown task {', '.join(unknown)}: choose from {', '.join(TASKS)}")
    run = Run(bundle, Path(world), limit, seed, None if out is None else Path(out), conditioning)
    results = {}
    for task in tasks:
        results[task] = _timed(task, run, log)
        if offworld and task in OFFWORLD_TASKS:
            off = replace(run, source="offworld", out=None if run.out is None else run.out / "offworld")
            results[task]["offworld"] = _timed(task, off, log)
    return results


def _timed(task: str, run: Run, log) -> dict:
    start = time.perf_counter()
    figures = EVALUATORS[task](run)
    figures["n"] = len(figures["items"])
    figures["malformed"] = sum(row["malformed"] for row in figures["items"])
    figures["seconds"] = round(time.perf_counter() - start, 2)
    if log is not None:
        log(f"eval {task}{' (off-world set)' if run.source == 'offworld' else ''}: {figures['n']} items, "
            f"{figures['malformed']} malformed, {figures['seconds']} s")
    return figures
