"""The vocabularies the world labels its items with and the judges read back, in one neutral place.

The world (its generator) and the judges (inference only) both import this module; neither imports
the other. The names come from the world's two vocabulary tables, read here as data files:

    scene_table()      scenes.json: shapes (and plurals), colours, sizes, patterns, positions, backgrounds
    music_table()      music.json: instruments and their families, tempo classes
    instrument_classes() -> {"family": sorted families, "instrument": instruments in table order}
    tempo_word(bpm)    the tempo class of a tempo ("slow", "moderate", ...)
    MAJOR_PROFILE, MINOR_PROFILE, TONIC_NAMES, PITCH_CLASSES   keys: what the world labels a score
                       with (profiles correlated with its pitch histogram) and the judge estimates
"""

from __future__ import annotations

import functools
import json
from importlib import resources

# Aarden-Essen key profiles (tonic first), from folk-song statistics; a key is a rotation of one of them.
MAJOR_PROFILE = (17.7661, 0.145624, 14.9265, 0.160186, 19.8049, 11.3587, 0.291248, 22.062, 0.145624, 8.15494,
                 0.232998, 4.95122)
MINOR_PROFILE = (18.2648, 0.737619, 14.0499, 16.8599, 0.702494, 14.4362, 0.702494, 18.6161, 4.56621, 1.93186,
                 7.37619, 1.75623)
# How each tonic is usually spelt in each mode (fewest accidentals in the key signature).
TONIC_NAMES = {
    "major": ("C", "D-flat", "D", "E-flat", "E", "F", "F-sharp", "G", "A-flat", "A", "B-flat", "B"),
    "minor": ("C", "C-sharp", "D", "E-flat", "E", "F", "F-sharp", "G", "G-sharp", "A", "B-flat", "B"),
}
# Every spelling of a tonic -> its pitch class (enharmonics equal).
PITCH_CLASSES = {"C": 0, "C-sharp": 1, "D-flat": 1, "D": 2, "D-sharp": 3, "E-flat": 3, "E": 4, "F": 5,
                 "F-sharp": 6, "G-flat": 6, "G": 7, "G-sharp": 8, "A-flat": 8, "A": 9, "A-sharp": 10,
                 "B-flat": 10, "B": 11}


@functools.cache
def _world_table(name: str) -> dict:
    # the world's data file, read as data: importing `anygpt` alone, not the world's code
    text = resources.files("anygpt").joinpath("world", f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text)


def scene_table() -> dict:
    """scenes.json (cached: treat as read-only)."""
    return _world_table("scenes")


def music_table() -> dict:
    """music.json (cached: treat as read-only)."""
    return _world_table("music")


@functools.cache
def instrument_classes() -> dict[str, list[str]]:
    instruments = music_table()["instruments"]
    return {"family": sorted({i["family"] for i in instruments}), "instrument": [i["name"] for i in instruments]}


def instrument_family(name: str) -> str:
    return next(i["family"] for i in music_table()["instruments"] if i["name"] == name)


def tempo_word(bpm: float) -> str:
    for limit, word in music_table()["tempo_classes"]:
        if bpm < limit:
            return word
    raise ValueError(bpm)
