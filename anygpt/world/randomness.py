"""Seeds derived from (seed, kind, index, ...) so that results do not depend on worker scheduling."""

import hashlib
import random

import numpy as np


def derive_seed(*parts: object) -> int:
    """A 64-bit seed from any tuple of ints and strings; stable across processes and Python runs
    (unlike `hash()`, which is salted per process for strings)."""
    digest = hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def rng_for(*parts: object) -> random.Random:
    return random.Random(derive_seed(*parts))


def np_rng_for(*parts: object) -> np.random.Generator:
    return np.random.default_rng(derive_seed(*parts))


def bucket(text: str, buckets: int) -> int:
    """A stable bucket for a string, used to split sentences by their text."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % buckets
