"""A closed-vocabulary bigram language model for pocketsphinx, over the world's sentence grammar.

The shipped pocketsphinx LM is a generic 130k-word trigram model; on our grammar's sentences it
turns "seven teachers selling" into "serving to church showing" (WER about 0.4 on ground-truth
speech). The acoustic model stays the shipped one; only the word prior is narrowed to the ~930 words
the grammar can say, with bigram statistics from sentences drawn from the grammar itself whose text
hashes to the *train* split: no validation or test sentence ever enters the LM.

    build(out_dir, n_sentences, seed)  -> writes world.lm (ARPA) and world.dict (CMUdict subset)

ARPA layout (log10 probabilities, interpolated absolute discounting, D = 0.5):

    \\1-grams:  logp(w)  w  log_bow(w)        p(w) = (c(w) + 1) / (N + V)
    \\2-grams:  logp(w|v)  v w                p(w|v) = (c(v,w) - D) / c(v) + D * n(v) / c(v) * p(w)
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from pathlib import Path

from anygpt.eval.judges.speech import DICT_FILE, LM_FILE, normalise_text
from anygpt.world import hashed_split, sentence, vocabulary_words

DISCOUNT = 0.5
# Words of the grammar missing from CMUdict, spelt phonetically (ARPAbet, as CMUdict writes them).
EXTRA_PRONUNCIATIONS = {"cellos": "CH EH L OW Z", "postmen": "P OW S T M AH N",
                        "puppie": "P AH P IY"}


def cmudict_path() -> Path:
    from pocketsphinx import get_model_path

    return Path(get_model_path()) / "en-us" / "cmudict-en-us.dict"


def train_sentences(n: int, seed: int) -> list[str]:
    """n normalised sentences from the grammar, only those whose text hashes to the train split."""
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        text = sentence(rng).text
        if hashed_split(text) == "train":
            out.append(normalise_text(text))
    return out


def build(out_dir: str | Path, n_sentences: int = 30_000, seed: int = 0) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pronunciations: dict[str, list[str]] = {}
    for line in cmudict_path().read_text(encoding="utf-8").splitlines():
        word, _, phones = line.partition(" ")
        pronunciations.setdefault(word.split("(")[0], []).append(phones.strip())
    for word, phones in EXTRA_PRONUNCIATIONS.items():
        pronunciations.setdefault(word, [phones])

    corpus = [s.split() for s in train_sentences(n_sentences, seed)]
    vocab = {w for s in corpus for w in s}
    vocab |= {w for word in vocabulary_words() for w in normalise_text(word).split()}
    vocab = sorted(w for w in vocab if w in pronunciations)
    known = set(vocab)

    unigrams: Counter = Counter()
    bigrams: Counter = Counter()
    for words in corpus:
        words = ["<s>"] + [w for w in words if w in known] + ["</s>"]
        unigrams.update(words[1:])
        bigrams.update(itertools.pairwise(words))
    unigrams["<s>"] = len(corpus)
    total = sum(c for w, c in unigrams.items() if w != "<s>")
    size = len(vocab) + 1  # words and </s>
    p_uni = {w: (unigrams[w] + 1) / (total + size) for w in vocab + ["</s>"]}

    history_count: Counter = Counter()
    followers: dict[str, list[str]] = {}
    for (v, w), c in bigrams.items():
        history_count[v] += c
        followers.setdefault(v, []).append(w)
    listed: dict[tuple[str, str], float] = {}
    bow: dict[str, float] = {}
    for v, ws in followers.items():
        lam = DISCOUNT * len(ws) / history_count[v]
        for w in ws:
            listed[(v, w)] = (bigrams[(v, w)] - DISCOUNT) / history_count[v] + lam * p_uni[w]
        seen_uni = sum(p_uni[w] for w in ws)
        bow[v] = (1.0 - sum(listed[(v, w)] for w in ws)) / max(1e-9, 1.0 - seen_uni)

    lines = ["\\data\\", f"ngram 1={size + 1}", f"ngram 2={len(listed)}", "", "\\1-grams:"]
    lines.append(f"-99.0000 <s> {math.log10(bow.get('<s>', 1.0)):.4f}")
    for w in vocab + ["</s>"]:
        back = f" {math.log10(bow[w]):.4f}" if w in bow else ""
        lines.append(f"{math.log10(p_uni[w]):.4f} {w}{back}")
    lines += ["", "\\2-grams:"]
    lines += [f"{math.log10(p):.4f} {v} {w}" for (v, w), p in sorted(listed.items())]
    lines += ["", "\\end\\", ""]
    (out_dir / LM_FILE).write_text("\n".join(lines), encoding="utf-8")

    entries = []
    for w in vocab:
        for k, phones in enumerate(pronunciations[w]):
            entries.append(f"{w} {phones}" if k == 0 else f"{w}({k + 1}) {phones}")
    (out_dir / DICT_FILE).write_text("\n".join(entries) + "\n", encoding="utf-8")
    return {"words": len(vocab), "bigrams": len(listed), "sentences": len(corpus)}
