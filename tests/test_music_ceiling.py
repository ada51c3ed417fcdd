"""scripts/music_ceiling.py: the note positions and onsets its lookup renderer keys on."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "music_ceiling.py"


@pytest.fixture(scope="module")
def ceiling():
    spec = importlib.util.spec_from_file_location("music_ceiling", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_positions_restart_at_each_change_and_cut(ceiling):
    layer1 = np.array([5, 5, 5, 7, 7, 7, 7])
    assert ceiling.positions(layer1, None).tolist() == [0, 1, 2, 0, 1, 2, 3]
    cut = np.array([0, 0, 1, 0, 0, 1, 0], dtype=bool)
    assert ceiling.positions(layer1, cut).tolist() == [0, 1, 0, 0, 1, 0, 1]
    assert ceiling.positions(np.zeros(60, int), None).max() == ceiling.MAX_POSITION


def test_repeated_notes_are_found_as_onsets(ceiling):
    rate, hop = 32000, 640  # the small music codec: 50 frames a second
    t = np.arange(rate * 2) / rate
    wav = np.zeros_like(t)
    starts = [10, 35, 60, 85]  # the same pitch four times, each decaying before the next
    for s in starts:
        n = np.arange(len(t) - s * hop)
        wav[s * hop:] += np.sin(2 * np.pi * 440 * t[: len(n)]) * np.exp(-n / (0.15 * rate))
    found = np.flatnonzero(ceiling.onsets(wav.astype(np.float32), 100, hop, 1.5))
    found = found[found < 97]  # the last frames' window runs past the end (reflected: a jump)
    assert all(np.abs(found - s).min() <= 1 for s in starts), found
    assert len(found) == len(starts), found
