"""Each judge's calibration on ground truth: the world's test split, which no judge was trained on.

    calibrate(world_dir, limit=None, kinds=("images", "speech", "music")) -> flat dict of figures

    image_attr_acc                  mean per-attribute accuracy of the image judge (gate >= 0.98)
    image_attr_acc_per_attribute    count, background, position, shape, colour, size, pattern, scene
    image_attr_acc_novel            the same mean on test images showing a held-out colour-shape pair
    caption_attr_acc_ground_truth   text_attributes read from the true captions (parser check)
    cider_ground_truth              CIDEr-D of each image's first caption against its other captions
    cider_mismatched                ... of another image's first caption: the floor
    clip_analog_retrieval_top1      image -> its first caption among all test images' first captions
    clip_score_matched / _mismatched  mean cosine for true and shifted pairs
    asr_wer_ground_truth            pocketsphinx + world LM on the test speech (gate <= 0.15)
    asr_wer_ground_truth_generic_lm pocketsphinx's own LM, for comparison
    speaker_sim_same / _other       mean resemblyzer cosine over same- and other-speaker test pairs
    music_attr_acc                  per attribute: tempo, tempo_octave, tempo_word, key, mode, family, instrument
    clap_analog_retrieval_top1      clip -> its first caption among the test clips' first captions
"""

from __future__ import annotations

import time

import numpy as np
import torch

from anygpt.eval.judges import speech
from anygpt.eval.judges.captions import caption_accuracy, cider
from anygpt.eval.judges.contrastive import ContrastiveJudge, retrieval_top1
from anygpt.eval.judges.image import ImageJudge, attribute_accuracy
from anygpt.eval.judges.music import MusicJudge, music_attribute_accuracy, music_features, to_feature_rate
from anygpt.train.judges import KINDS
from anygpt.world import iter_items



def _items(world, kind: str, limit: int | None) -> list[dict]:
    items = []
    for item in iter_items(world, kind, "test"):
        if limit is not None and len(items) >= limit:
            break
        items.append(item)
    return items


def _round(value):
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, float):
        return round(value, 4)
    return value


def calibrate_images(world, limit: int | None = None) -> dict:
    items = _items(world, "images", limit)
    images, truths = [it["image"] for it in items], [it["attributes"] for it in items]
    judge = ImageJudge.load()
    predicted = judge.attributes(images)
    acc = attribute_accuracy(predicted, truths)
    novel = [i for i, t in enumerate(truths) if t.get("novel_combination")]
    out = {"image_attr_acc": acc["mean"], "image_attr_acc_per_attribute": acc,
           "image_attr_acc_novel": attribute_accuracy([predicted[i] for i in novel], [truths[i] for i in novel])["mean"]
           if novel else None}
    captions = [c for it in items for c in it["captions"]]
    caption_truths = [it["attributes"] for it in items for _ in it["captions"]]
    text_acc = caption_accuracy(captions, caption_truths)
    out["caption_attr_acc_ground_truth"] = float(np.nanmean([v for k, v in text_acc.items() if k != "bg_stated"]))
    out["caption_attr_acc_per_attribute"] = text_acc
    firsts = [it["captions"][0] for it in items]
    others = [it["captions"][1:] for it in items]
    out["cider_ground_truth"] = cider(firsts, others)
    out["cider_mismatched"] = cider(firsts[1:] + firsts[:1], others)
    clip = ContrastiveJudge.load("clip", image_judge=judge)
    m, t = clip.embed_media(images), clip.embed_texts(firsts)
    out["clip_analog_retrieval_top1"] = retrieval_top1(m, t, firsts)
    out["clip_score_matched"] = float((m * t).sum(-1).mean())
    out["clip_score_mismatched"] = float((m * t.roll(1, 0)).sum(-1).mean())
    out["images_n"] = len(items)
    return out


def calibrate_speech(world, limit: int | None = None, generic_lm: bool = True) -> dict:
    items = _items(world, "speech", limit)
    wavs, refs = [it["waveform"] for it in items], [it["text"] for it in items]
    rate = items[0]["sample_rate"]
    out = {"asr_wer_ground_truth": speech.wer(speech.asr(wavs, rate), refs)}
    if generic_lm:
        out["asr_wer_ground_truth_generic_lm"] = speech.wer(speech.asr(wavs, rate, lm="generic"), refs)
    embeddings = np.stack([speech.speaker_embedding(w, rate) for w in wavs])  # (N, 256), unit norm
    sims = embeddings @ embeddings.T
    speakers = [it["speaker"] for it in items]
    same, other = [], []
    for a in range(len(items)):
        for b in range(a + 1, len(items)):
            (same if speakers[a] == speakers[b] else other).append(float(sims[a, b]))
    out["speaker_sim_same"] = float(np.mean(same)) if same else None
    out["speaker_sim_other"] = float(np.mean(other)) if other else None
    out["speaker_pairs_same_other"] = [len(same), len(other)]
    out["speech_n"] = len(items)
    return out


def calibrate_music(world, limit: int | None = None) -> dict:
    items = _items(world, "music", limit)
    judge = MusicJudge.load()
    predicted = judge.attributes([it["waveform"] for it in items], items[0]["sample_rate"])
    out = {"music_attr_acc": music_attribute_accuracy(predicted, [it["attributes"] for it in items])}
    clap = ContrastiveJudge.load("clap")
    features = torch.from_numpy(np.stack([music_features(to_feature_rate(it["waveform"], it["sample_rate"])) for it in items]))
    firsts = [it["captions"][0] for it in items]
    with torch.inference_mode():
        m = clap.model.embed_media(features)
    t = clap.embed_texts(firsts)
    out["clap_analog_retrieval_top1"] = retrieval_top1(m, t, firsts)
    out["clap_score_matched"] = float((m * t).sum(-1).mean())
    out["clap_score_mismatched"] = float((m * t.roll(1, 0)).sum(-1).mean())
    out["music_n"] = len(items)
    out["music_distinct_captions"] = len(set(firsts))
    return out


def calibrate(world, limit: int | None = None, kinds=KINDS, generic_lm: bool = True) -> dict:
    out: dict = {}
    start = time.monotonic()
    if "images" in kinds:
        out.update(calibrate_images(world, limit))
    if "speech" in kinds:
        out.update(calibrate_speech(world, limit, generic_lm))
    if "music" in kinds:
        out.update(calibrate_music(world, limit))
    out["seconds"] = round(time.monotonic() - start, 1)
    return _round(out)
