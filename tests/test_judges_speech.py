"""Speech judges: text normalisation and WER arithmetic; pocketsphinx and resemblyzer on flite speech."""

import shutil

import numpy as np
import pytest

from anygpt.eval.judges import speech

needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="needs Debian flite")


def test_normalise_text_lowercases_splits_hyphens_and_americanises():
    assert speech.normalise_text("The grey, steel-string Guitar's colour!") == "the gray steel string guitar's color"
    assert speech.normalise_text("'Quoted' words") == "quoted words"


def test_wer_is_corpus_level_and_normalised():
    assert speech.wer(["The cat sat."], ["the cat sat"]) == 0.0
    # one substitution in 3 words + one deletion in 2 words = 2 errors over 5 reference words
    assert speech.wer(["the dog sat", "hello"], ["the cat sat", "hello there"]) == pytest.approx(0.4)
    assert speech.wer(["", "a b"], ["x y", ""]) == pytest.approx(2.0)  # 2 deletions + 2 insertions / 2
    with pytest.raises(ValueError):
        speech.wer(["a"], [])


def test_world_lm_ships_and_covers_the_grammar():
    from anygpt.world import sentences
    from anygpt.eval.judges.speech import DICT_FILE, LM_FILE
    from anygpt.eval.judges.weights import weights_path

    lm_words = {line.split()[1] for line in weights_path(LM_FILE).read_text().split("\\2-grams:")[0].splitlines()
                if line[:1] in "-0123456789" and len(line.split()) >= 2}
    dict_words = {line.split()[0].split("(")[0] for line in weights_path(DICT_FILE).read_text().splitlines()}
    grammar = {w for word in sentences.vocabulary_words() for w in speech.normalise_text(word).split()}
    assert lm_words - {"<s>", "</s>"} == dict_words
    assert len(grammar - dict_words) <= 2  # only spellings CMUdict lacks and we could not place


@needs_flite
def test_asr_recognises_flite_speech_with_the_world_lm():
    from anygpt.world import speech as world_speech

    texts = ["The child is walking near the river today.", "It was blowing hard all evening in the empty valley."]
    wavs = [world_speech.synthesize(text, "rms") for text in texts]
    hyps = speech.asr(wavs, world_speech.sample_rate())
    assert speech.wer(hyps, texts) <= 0.15, hyps
    # any sample rate is accepted: resampled to 16 kHz inside
    import soxr

    up = soxr.resample(wavs[0], world_speech.sample_rate(), 24_000)
    assert speech.wer(speech.asr([up], 24_000), texts[:1]) <= 0.15


@needs_flite
def test_speaker_similarity_separates_voices():
    from anygpt.world import speech as world_speech

    rate = world_speech.sample_rate()
    a1 = world_speech.synthesize("The goose is sleeping near the peaceful market.", "slt")
    a2 = world_speech.synthesize("Our rabbit was liking this newspaper on the bridge.", "slt")
    b = world_speech.synthesize("The goose is sleeping near the peaceful market.", "awb")
    same, other = speech.speaker_similarity(a1, a2, rate), speech.speaker_similarity(a1, b, rate)
    assert same > 0.8 and same - other > 0.15, (same, other)
    assert speech.speaker_similarity(a1, a1, rate) == pytest.approx(1.0, abs=1e-5)


def test_silent_audio_is_refused():
    from anygpt.errors import MediaError

    with pytest.raises(MediaError):
        speech.asr([np.zeros(16_000, dtype=np.float32)], 16_000)


def test_world_lm_rebuilds_byte_identical(tmp_path):
    from anygpt.train.judges import asr_lm
    from anygpt.eval.judges.weights import weights_path

    asr_lm.build(tmp_path, seed=0)
    for name in (asr_lm.LM_FILE, asr_lm.DICT_FILE):
        assert (tmp_path / name).read_bytes() == weights_path(name).read_bytes(), name
