"""`anygpt eval codecs --bundle`: a bundle's codecs measured by the world's judges on held-out (test) data.

    image            judge attribute accuracy on decoded reconstructions / on the originals
    speech           pocketsphinx WER of reconstructions (every RVQ layer) / of the originals;
                     resemblyzer similarity of each reconstruction to its original
    voice cloning    layer-1 codes of utterance A + a 3 s prompt of speaker B (another utterance of B)
                     -> SoundStorm -> decoder: similarity to a third utterance of B, against the best
                     similarity to any other speaker's utterance; WER against A's words / originals'
    music            music-judge attribute accuracy of reconstructions / of the originals (mean over
                     the attributes), CLAP-analog score of reconstructions and originals
    rtf              seconds of computing per second of audio (image: seconds per image), one thread

Every ratio is computed on the same items, so the judges' own errors cancel as far as they can.
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np
import torch

from anygpt.eval.judges import speech
from anygpt.eval.judges.contrastive import ContrastiveJudge
from anygpt.eval.judges.image import ImageJudge, attribute_accuracy
from anygpt.eval.judges.music import MusicJudge, music_attribute_accuracy, music_features, to_feature_rate
from anygpt.media import to_waveform
from anygpt.world import kind_of, take_items

GATES = {"image_attr_ratio": (">=", 0.95), "speech_wer_ratio": ("<=", 1.3), "speech_sim": (">=", 0.85),
         "clone_sim": (">=", 0.80), "clone_wer_ratio": ("<=", 1.5), "music_attr_ratio": (">=", 0.90)}


def _test_items(world, modality: str, limit: int | None) -> list[dict]:
    return take_items(world, kind_of(modality), "test", limit)


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("inf") if num else 1.0


def eval_image(codec, world, limit: int | None) -> dict:
    items = _test_items(world, "image", limit)
    judge = ImageJudge.load()
    originals = [it["image"] for it in items]
    t0 = time.perf_counter()
    recon = [codec.decode(codec.encode(img)) for img in originals]
    seconds = (time.perf_counter() - t0) / len(items)
    truths = [it["attributes"] for it in items]
    orig = attribute_accuracy(judge.attributes(originals), truths)["mean"]
    rec_pred = judge.attributes(recon)
    rec = attribute_accuracy(rec_pred, truths)["mean"]
    novel = [i for i, t in enumerate(truths) if t.get("novel_combination")]
    out = {"image_attr_acc_original": orig, "image_attr_acc_reconstruction": rec,
           "image_attr_ratio": _ratio(rec, orig), "images_n": len(items), "rtf_image": seconds}
    if novel:
        out["image_attr_acc_reconstruction_novel"] = attribute_accuracy(
            [rec_pred[i] for i in novel], [truths[i] for i in novel])["mean"]
    return out


def _round_trip(items: list[dict], rate: int, encode, decode):
    """World audio items at `rate` through encode and decode: (waveforms, codes, reconstructions,
    seconds of audio, encoding seconds, decoding seconds)."""
    wavs = [to_waveform((it["waveform"], it["sample_rate"]), rate, source="world audio") for it in items]
    t0 = time.perf_counter()
    codes = [encode(w) for w in wavs]
    t_enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    recon = [decode(c) for c in codes]
    return wavs, codes, recon, sum(len(w) for w in wavs) / rate, t_enc, time.perf_counter() - t0


def _clone_plan(speakers: list[str]) -> list[tuple[int, int, int]]:
    """(A, prompt, reference) triples: for each utterance A, the next speaker (in sorted order) other
    than A's with at least two utterances gives a prompt utterance and a different reference one."""
    by = defaultdict(list)
    for i, s in enumerate(speakers):
        by[s].append(i)
    able = sorted(s for s, idx in by.items() if len(idx) >= 2)
    plan = []
    for a, s in enumerate(speakers):
        others = [b for b in able if b != s]
        if not others:
            continue
        b = others[a % len(others)]
        idx = by[b]
        k = a % len(idx)
        plan.append((a, idx[k], idx[(k + 1) % len(idx)]))
    return plan


def eval_speech(codec, world, limit: int | None) -> dict:
    items = _test_items(world, "speech", limit)
    rate = codec.sample_rate
    refs = [it["text"] for it in items]
    wavs, codes, recon, seconds_audio, t_enc, t_dec = _round_trip(items, rate, codec.encode_rvq, codec.decode_rvq)
    wer_orig = speech.wer(speech.asr(wavs, rate), refs)
    wer_rec = speech.wer(speech.asr(recon, rate), refs)
    emb_orig = np.stack([speech.speaker_embedding(w, rate) for w in wavs])
    emb_rec = np.stack([speech.speaker_embedding(w, rate) for w in recon])
    sim = float((emb_orig * emb_rec).sum(1).mean())
    out = {"speech_wer_original": wer_orig, "speech_wer_reconstruction": wer_rec,
           "speech_wer_ratio": _ratio(wer_rec, wer_orig), "speech_sim": sim, "speech_n": len(items),
           "rtf_speech_encode": t_enc / seconds_audio}

    # voice cloning: layer 1 of A in the voice of B
    speakers = [it["speaker"] for it in items]
    plan = _clone_plan(speakers)
    if not plan:  # too few utterances per speaker (a tiny --limit): cloning is not measured
        out.update({"clone_sim": None, "clone_wer_ratio": None, "clone_n": 0,
                    "rtf_speech_decode": t_dec / seconds_audio})
        return out
    clones, clone_secs, t_fill = [], 0.0, 0.0
    for a, p, _ in plan:
        seen = codec.encode(wavs[a])  # the codes the LLM sees (one per phone for a merged codec)
        t0 = time.perf_counter()  # the decode alone: rtf_speech_decode
        y = codec.decode(seen, voice=(wavs[p], rate), seed=a)
        t_fill += time.perf_counter() - t0
        clone_secs += len(y) / rate
        clones.append(y)
    emb_clone = np.stack([speech.speaker_embedding(w, rate) for w in clones])
    to_b, best_other, top1 = [], [], 0
    for (a, p, r), e in zip(plan, emb_clone, strict=True):
        target = float(e @ emb_orig[r])
        # one utterance per other speaker (never the prompt, never A itself) as the competition
        rivals = {}
        for j, s in enumerate(speakers):
            if s != speakers[r] and j != a and s not in rivals:
                rivals[s] = float(e @ emb_orig[j])
        to_b.append(target)
        best_other.append(max(rivals.values()) if rivals else float("nan"))
        top1 += target > best_other[-1]
    wer_clone = speech.wer(speech.asr(clones, rate), [refs[a] for a, _, _ in plan])
    wer_orig_a = speech.wer(speech.asr([wavs[a] for a, _, _ in plan], rate), [refs[a] for a, _, _ in plan])
    out.update({"clone_sim": float(np.mean(to_b)), "clone_sim_best_other": float(np.nanmean(best_other)),
                "clone_top1": top1 / len(plan), "clone_wer": wer_clone,
                "clone_wer_ratio": _ratio(wer_clone, wer_orig_a), "clone_n": len(plan),
                "rtf_speech_decode": t_dec / seconds_audio,
                "rtf_speech_decode_with_soundstorm": t_fill / clone_secs})
    return out


def eval_music(codec, world, limit: int | None) -> dict:
    items = _test_items(world, "music", limit)
    rate = codec.sample_rate
    wavs, _, recon, seconds_audio, t_enc, t_dec = _round_trip(items, rate, codec.encode, codec.decode)
    judge = MusicJudge.load()
    truths = [it["attributes"] for it in items]
    acc_orig = music_attribute_accuracy(judge.attributes(wavs, rate), truths)
    acc_rec = music_attribute_accuracy(judge.attributes(recon, rate), truths)
    mean_orig, mean_rec = float(np.mean(list(acc_orig.values()))), float(np.mean(list(acc_rec.values())))
    clap = ContrastiveJudge.load("clap")
    captions = [it["captions"][0] for it in items]
    texts = clap.embed_texts(captions)

    def clap_mean(waves):
        feats = torch.from_numpy(np.stack([music_features(to_feature_rate(w, rate)) for w in waves]))
        with torch.inference_mode():
            return float((clap.model.embed_media(feats) * texts).sum(-1).mean())

    return {"music_attr_acc_original": acc_orig, "music_attr_acc_reconstruction": acc_rec,
            "music_attr_ratio": _ratio(mean_rec, mean_orig), "clap_score_original": clap_mean(wavs),
            "clap_score_reconstruction": clap_mean(recon), "music_n": len(items),
            "rtf_music_encode": t_enc / seconds_audio, "rtf_music_decode": t_dec / seconds_audio}


def evaluate_codecs(codecs: dict, world, limit: int | None = None, kinds=("image", "speech", "music")) -> dict:
    """codecs {"image": codec, "speech": ..., "music": ...} -> the figures and gates of every kind asked."""
    figures: dict = {}
    if "image" in kinds:
        figures.update(eval_image(codecs["image"], world, limit))
    if "speech" in kinds:
        figures.update(eval_speech(codecs["speech"], world, limit))
    if "music" in kinds:
        figures.update(eval_music(codecs["music"], world, limit))
    rtf = {key: figures.pop(f"rtf_{key}") for key in ("image", "speech_encode", "speech_decode",
                                                        "speech_decode_with_soundstorm", "music_encode",
                                                        "music_decode") if f"rtf_{key}" in figures}
    head = {k: figures.pop(k) for k in GATES if k in figures}
    gates = {k: None if v is None else (v >= GATES[k][1] if GATES[k][0] == ">=" else v <= GATES[k][1])
             for k, v in head.items()}
    return {**head, "rtf": rtf, "gates_met": gates, "details": figures}
