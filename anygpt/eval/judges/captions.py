"""Caption judges: read scene attributes back out of a caption, and CIDEr-D against references.

    text_attributes("Two shapes on a plain navy background: a small red star and a blue cross.")
        -> {"count": 2, "background": {"colour": "navy", "pattern": "plain"},
            "objects": [{"shape": "star", "colour": "red", "size": "small", "pattern": None,
                         "position": None}, {"shape": "cross", "colour": "blue", ...}]}
    caption_accuracy(captions, truth_attributes) -> {"count": .., "bg_colour": .., "bg_pattern": ..,
                                                      "object_precision": .., "object_recall": .., ...}
    cider(candidates, references) -> CIDEr-D (pycocoevalcap), corpus score

The parser knows the scene vocabulary (scenes.json), not the caption templates: any sentence that
names "<size> <pattern> <colour> <shape>" phrases and "<pattern> <colour> background" is read.
Unmentioned fields are None (a caption need not say everything), and are not scored.
"""

from __future__ import annotations

import functools
import re

from anygpt.labels import scene_table

COUNT_WORDS = {"one": 1, "single": 1, "a": 1, "an": 1, "two": 2, "three": 3, "four": 4, "1": 1, "2": 2, "3": 3, "4": 4}


@functools.cache
def _patterns() -> dict:
    t = scene_table()
    alt = lambda words: "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))
    shapes = {name: name for name in t["shapes"]} | {v["plural"]: name for name, v in t["shapes"].items()}
    phrases = {v[2]: name for name, v in t["positions"].items()}
    obj = re.compile(
        rf"\b(?:(?P<count>{alt(COUNT_WORDS)})\s+)?(?:(?P<size>small|medium|large)\s+)?"
        rf"(?:(?P<pattern>striped|dotted)\s+)?(?P<colour>{alt(t['colours'])})\s+(?P<shape>{alt(shapes)})\b"
        rf"(?P<after>(?:,?\s+(?:small|medium|large),)?(?:\s+of\s+(?:small|medium|large)\s+size)?)"
        rf"(?:(?:\s+of\s+the\s+picture)?\s*(?P<where>{alt(phrases)}))?")
    background = re.compile(
        rf"\b(?:(?P<pattern>plain|striped|dotted|checkered)\s+(?P<colour>{alt(t['backgrounds'])})"
        rf"|(?P<gcolour>{alt(t['backgrounds'])})\s+gradient)\s+background\b"
        rf"|\bbackground\s+is\s+(?:(?P<pattern2>plain|striped|dotted|checkered)\s+(?P<colour2>{alt(t['backgrounds'])})"
        rf"|(?P<gcolour2>{alt(t['backgrounds'])})\s+gradient)\b")
    total = re.compile(rf"\b(?P<n>{alt([w for w in COUNT_WORDS if w not in ('a', 'an')])})\s+(?:shapes|objects)\b")
    return {"object": obj, "background": background, "total": total, "shapes": shapes, "phrases": phrases}


def text_attributes(caption: str) -> dict:
    """Scene attributes named in a caption; fields it does not mention are None."""
    p = _patterns()
    text = " ".join(caption.lower().replace(";", ",").split())
    found = {"count": None, "background": {"colour": None, "pattern": None}, "objects": []}
    bg_spans = []
    for m in p["background"].finditer(text):
        g = m.groupdict()
        if g["gcolour"] or g["gcolour2"]:
            found["background"] = {"colour": g["gcolour"] or g["gcolour2"], "pattern": "gradient"}
        else:
            found["background"] = {"colour": g["colour"] or g["colour2"], "pattern": g["pattern"] or g["pattern2"]}
        bg_spans.append(m.span())
    group_count = None
    for m in p["object"].finditer(text):
        if any(a <= m.start() < b for a, b in bg_spans):
            continue
        g = m.groupdict()
        shape = p["shapes"][g["shape"]]
        plural = g["shape"] != shape
        size = g["size"] or next(iter(re.findall(r"small|medium|large", g["after"] or "")), None)
        obj = {"shape": shape, "colour": g["colour"], "size": size, "pattern": g["pattern"],
               "position": p["phrases"].get(g["where"]) if g["where"] else None}
        n = COUNT_WORDS.get(g["count"] or "", 1)
        if plural and n > 1:  # "three green circles": a group of identical objects
            group_count = n
            found["objects"] += [dict(obj, size=None) for _ in range(n)]
        else:
            found["objects"].append(obj)
    totals = [COUNT_WORDS[m.group("n")] for m in p["total"].finditer(text)]
    if totals:
        found["count"] = totals[0]
    elif group_count is not None:
        found["count"] = group_count
    elif found["objects"]:
        found["count"] = len(found["objects"])
    return found


def caption_accuracy(captions: list[str], truths: list[dict]) -> dict[str, float]:
    """How well captions state their scenes' attributes (averaged over captions).

    count: right when equal (a caption that names objects always implies a count); bg_colour and
    bg_pattern: over the captions that state a background (bg_stated: how many do);
    object_recall: the fraction of true (colour, shape) pairs the caption names; object_precision:
    the fraction of named pairs that are true; size/pattern/position: over the named objects that
    state them and match a true object of that colour and shape.
    """
    if len(captions) != len(truths):
        raise ValueError(f"{len(captions)} captions for {len(truths)} truths")
    sums = {k: 0.0 for k in ("count", "object_recall", "object_precision", "bg_stated")}
    bg_hits = {"bg_colour": 0, "bg_pattern": 0}
    detail_hits = {"size": [0, 0], "pattern": [0, 0], "position": [0, 0]}
    for caption, truth in zip(captions, truths, strict=True):
        read = text_attributes(caption)
        sums["count"] += read["count"] == truth["count"]
        if read["background"]["colour"] is not None:
            sums["bg_stated"] += 1
            bg_hits["bg_colour"] += read["background"]["colour"] == truth["background"]["colour"]
            bg_hits["bg_pattern"] += read["background"]["pattern"] == truth["background"]["pattern"]
        true_pairs = {(o["colour"], o["shape"]) for o in truth["objects"]}
        named = {(o["colour"], o["shape"]) for o in read["objects"]}
        sums["object_recall"] += len(true_pairs & named) / len(true_pairs)
        sums["object_precision"] += len(true_pairs & named) / len(named) if named else 0.0
        for obj in read["objects"]:
            matches = [t for t in truth["objects"] if (t["colour"], t["shape"]) == (obj["colour"], obj["shape"])]
            for key, counts in detail_hits.items():
                value = obj[key]
                if key == "pattern" and value is None and obj["size"] is not None:
                    value = "solid"  # "a small red star": captions leave solid unsaid
                if value is not None and matches:
                    counts[0] += any(t[key] == value for t in matches)
                    counts[1] += 1
    n = max(1, len(captions))
    scores = {k: v / n for k, v in sums.items()}
    scores.update({k: (v / sums["bg_stated"] if sums["bg_stated"] else float("nan")) for k, v in bg_hits.items()})
    scores.update({k: (hit / total if total else float("nan")) for k, (hit, total) in detail_hits.items()})
    return scores


def _tokens(text: str) -> str:
    """Lower case, punctuation off: what the COCO PTB tokenizer leaves, without starting Java."""
    return " ".join(re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower()))


def cider(candidates: list[str], references: list[list[str]]) -> float:
    """CIDEr-D (pycocoevalcap's Cider: sigma 6, clipped counts, x10) of candidates over the corpus."""
    from pycocoevalcap.cider.cider import Cider

    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates for {len(references)} reference lists")
    gts = {i: [_tokens(r) for r in refs] for i, refs in enumerate(references)}
    res = {i: [_tokens(c)] for i, c in enumerate(candidates)}
    score, _ = Cider().compute_score(gts, res)
    return float(score)
