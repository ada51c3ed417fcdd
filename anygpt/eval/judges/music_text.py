"""Music captions -> attributes: what a caption states about its clip, in MusicJudge.attributes' shape.

The reader knows the world's music vocabulary (anygpt.world's music_table, TONIC_NAMES and
tempo_word), not its caption templates:

    "in <tonic> <mode>"          key and mode ("in A minor": not the article "a")
    "major" / "minor"            mode alone
    a tempo word or "<n> BPM"    tempo class, tempo
    a GM instrument name         instrument (and its family)
    "the <family> family"        family
    a mood word                  mode and tempo class when those are unsaid (each mood belongs to one)

    music_text_attributes("A calm tune on a cello.")
    -> {"tempo_bpm": None, "tempo_word": "slow", "key": None, "mode": "major",
        "family": "strings", "instrument": "cello"}
"""

from __future__ import annotations

import functools
import re
from typing import Any

import numpy as np

from anygpt.eval.judges.music import PITCH_CLASSES, TEMPO_TOLERANCE
from anygpt.labels import TONIC_NAMES, music_table, tempo_word

# Attributes a music caption is scored on. BPM is reported too, but most caption templates leave it
# unsaid, so it stays out of the mean.
MUSIC_TEXT_ATTRIBUTES = ("tempo_word", "key", "mode", "family", "instrument")


@functools.cache
def _patterns() -> dict:
    t = music_table()
    alt = lambda words: "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))  # noqa: E731
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
    The family follows from the instrument when unsaid; see the module docstring."""
    p = _patterns()
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
