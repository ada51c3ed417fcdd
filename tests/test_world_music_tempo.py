"""Music clips are rendered at their stated tempo: quarter notes rendered by the world's own renderer
at `bpm` give onsets one beat (60 / bpm seconds) apart."""

import shutil

import numpy as np
import pytest

from anygpt.world import music

pytestmark = pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="needs Debian's fluidsynth")


def quarter_notes(n: int = 24) -> music.Piece:
    ref = music.PieceRef("test-quarters", "bach", "none", None)
    notes = tuple((float(i), 0.5, 60 + 4 * (i % 3), 0) for i in range(n))
    return music.Piece(ref, notes, float(n), "C", "major", "4/4", 1, None)


@pytest.mark.parametrize("bpm", [66, 100, 144])
def test_rendered_onsets_follow_the_stated_tempo(bpm):
    import librosa

    sr = music.sample_rate()
    wav = music.render(quarter_notes(), program=0, bpm=bpm, seconds=6.0, soundfont=music.find_soundfont())
    assert len(wav) == 6 * sr
    onsets = librosa.onset.onset_detect(y=wav.astype(np.float32), sr=sr, units="time", backtrack=False)
    gaps = np.diff(onsets)
    assert len(onsets) >= 6 * bpm / 60 - 2
    assert np.median(gaps) == pytest.approx(60.0 / bpm, rel=0.04)
