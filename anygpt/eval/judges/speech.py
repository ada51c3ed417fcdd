"""Speech judges, no training: pocketsphinx ASR scored by WER, and resemblyzer speaker similarity.

    asr([wav, ...], sample_rate)        -> ["there were eight letters behind the field", ...]
    wer(hyps, refs)                     -> corpus WER after normalise_text on both sides
    speaker_similarity(wav_a, wav_b, sample_rate) -> cosine of resemblyzer embeddings, in [-1, 1]

Both models ship inside their PyPI wheels (pocketsphinx 5: US English acoustic model, a generic
trigram LM and CMUdict; resemblyzer: a 3-layer LSTM d-vector encoder), so nothing is downloaded and
nothing here was fitted on the world: the judges cannot share blind spots with our models.
"""

from __future__ import annotations

import functools
import re

import numpy as np

from anygpt.eval.judges.weights import weights_dir
from anygpt.media import as_waveform

ASR_SAMPLE_RATE = 16_000  # pocketsphinx's en-us acoustic model is trained on 16 kHz speech
SPEAKER_SAMPLE_RATE = 16_000  # resemblyzer.hparams.sampling_rate
INT16_MAX = 32767
LM_FILE, DICT_FILE = "world.lm", "world.dict"  # the closed-vocabulary LM shipped in weights/

# CMUdict spells American English; the world (and our captions) spell British. Map British
# spellings to the dictionary's before scoring, so a correct recognition is not a substitution.
SPELLING = {"colour": "color", "colours": "colors", "grey": "gray", "centre": "center",
            "favourite": "favorite", "harbour": "harbor", "harbours": "harbors", "neighbour": "neighbor",
            "neighbours": "neighbors", "theatre": "theater", "metre": "meter", "metres": "meters"}


def normalise_text(text: str) -> str:
    """Lower case, British -> American spelling, hyphens and apostrophes split off, no punctuation."""
    text = text.lower().replace("-", " ")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    text = re.sub(r"'(?!s\b|t\b|ll\b|re\b|ve\b|d\b|m\b)", " ", text)  # quotes, not contractions
    return " ".join(SPELLING.get(word, word) for word in text.split())


def wer(hyps: list[str], refs: list[str]) -> float:
    """Word error rate over the whole corpus (errors / reference words), both sides normalised."""
    import jiwer

    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references")
    refs_n = [normalise_text(r) for r in refs]
    hyps_n = [normalise_text(h) for h in hyps]
    if not any(refs_n):
        raise ValueError("every reference is empty after normalisation")
    # jiwer refuses empty references; an empty reference with a non-empty hypothesis is all insertions
    pairs = [(h, r) for h, r in zip(hyps_n, refs_n, strict=True) if r]
    insertions = sum(len(h.split()) for h, r in zip(hyps_n, refs_n, strict=True) if not r)
    out = jiwer.process_words([r for _, r in pairs], [h if h else "" for h, _ in pairs])
    errors = out.substitutions + out.deletions + out.insertions + insertions
    return errors / sum(len(r.split()) for _, r in pairs)


@functools.cache
def _decoder(lm: str):
    from pocketsphinx import Decoder

    if lm == "generic":  # the wheel's own en-us trigram LM and full CMUdict
        return Decoder(samprate=ASR_SAMPLE_RATE, loglevel="FATAL")
    if lm != "world":
        raise ValueError(f"unknown ASR language model {lm!r}: choose 'world' or 'generic'")
    folder = weights_dir()
    return Decoder(samprate=ASR_SAMPLE_RATE, loglevel="FATAL", lm=str(folder / LM_FILE), dict=str(folder / DICT_FILE))


def _resample(wav, sample_rate: int, target: int) -> np.ndarray:
    wav = as_waveform(wav, sample_rate)
    if sample_rate != target:
        import soxr

        wav = soxr.resample(wav, sample_rate, target).astype(np.float32)
    return wav


def asr(waveforms, sample_rate: int, *, lm: str = "world") -> list[str]:
    """Transcribe each waveform (float, any rate) with pocketsphinx; lower-case words, no punctuation.

    lm="world": the shipped closed-vocabulary bigram LM over the sentence grammar (anygpt/train/judges/asr_lm.py), WER
    about 0.1 on ground-truth world speech; lm="generic": pocketsphinx's own LM, about 0.4.
    """
    decoder = _decoder(lm)
    texts = []
    for wav in waveforms:
        wav = _resample(wav, sample_rate, ASR_SAMPLE_RATE)
        pcm = (np.clip(wav, -1.0, 1.0) * INT16_MAX).astype("<i2").tobytes()
        decoder.start_utt()
        decoder.process_raw(pcm, no_search=False, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        texts.append(hyp.hypstr if hyp is not None else "")
    return texts


@functools.cache
def _voice_encoder():
    from resemblyzer import VoiceEncoder

    return VoiceEncoder("cpu", verbose=False)


def speaker_embedding(wav, sample_rate: int) -> np.ndarray:
    """A 256-d unit-norm d-vector (resemblyzer), after its own VAD trimming and level normalisation."""
    from resemblyzer import preprocess_wav

    wav = _resample(wav, sample_rate, SPEAKER_SAMPLE_RATE)
    return _voice_encoder().embed_utterance(preprocess_wav(wav)).astype(np.float32)  # (256,)


def speaker_similarity(wav_a, wav_b, sample_rate: int, sample_rate_b: int | None = None) -> float:
    """Cosine similarity of the two speakers' embeddings: about 0.9 for one flite voice."""
    a = speaker_embedding(wav_a, sample_rate)
    b = speaker_embedding(wav_b, sample_rate_b or sample_rate)
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
