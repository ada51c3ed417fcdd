"""Train / validation / test splits, with held-out combinations for measuring generalisation.

    images         colour-shape pairs in scenes.json "held_out_colour_shape" never appear in train or
                   validation (not in pictures, captions or questions); every other test item shows one
    speech         speakers are shared; sentences are split by a hash of their text, so no sentence
                   of validation or test is ever spoken in train
    music          whole pieces are split by a hash of their id: a validation or test clip never
                   comes from a piece heard in train
    conversations  follow all three rules for the media they contain

Items are given to splits by a seeded permutation of their indices: exact counts for any n.
"""

import functools

from anygpt.world import randomness, tables

SPLITS = ("train", "validation", "test")
FRACTIONS = {"validation": 0.1, "test": 0.1}
HASH_BUCKETS = 10  # text and piece hashes: bucket 0 is test, 1 validation, the rest train


def split_counts(n: int) -> dict[str, int]:
    """{'train': ..., 'validation': ..., 'test': ...}; every split gets an item once n >= 3."""
    held = {name: round(n * fraction) for name, fraction in FRACTIONS.items()}
    if n >= 3:
        held = {name: max(1, count) for name, count in held.items()}
    return {"train": n - sum(held.values()), **held}


def assign(seed: int, kind: str, n: int) -> list[str]:
    """The split of each of n units (items or groups), from a permutation seeded by (seed, kind)."""
    order = list(range(n))
    randomness.rng_for(seed, kind, "splits").shuffle(order)
    counts = split_counts(n)
    labels = [""] * n
    start = 0
    for name in ("validation", "test", "train"):
        for position in order[start:start + counts[name]]:
            labels[position] = name
        start += counts[name]
    return labels


def is_novel(seed: int, kind: str, units: int, index: int) -> bool:
    """Whether a unit shows a held-out combination: every other test unit in index order, so
    exactly half of the test split (rounded up) is novel and half is not."""
    rank = _test_ranks(seed, kind, units).get(index)
    return rank is not None and rank % 2 == 0


@functools.cache
def _test_ranks(seed: int, kind: str, units: int) -> dict[int, int]:
    labels = assign(seed, kind, units)
    return {index: rank for rank, index in enumerate(i for i, label in enumerate(labels) if label == "test")}


def held_out_pairs() -> set[tuple[str, str]]:
    return {(colour, shape) for colour, shape in tables.load("scenes")["held_out_colour_shape"]}


def hashed_split(key: str) -> str:
    """The split a sentence text or a piece id belongs to, independent of the seed."""
    bucket = randomness.bucket(key, HASH_BUCKETS)
    return "test" if bucket == 0 else "validation" if bucket == 1 else "train"
