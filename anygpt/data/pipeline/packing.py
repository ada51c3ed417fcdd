"""Stage 3: samples -> rows of at most `max_len` tokens, and rows -> model inputs with isolation.

Packing is best-fit decreasing over a window of samples: longest first, each into the fullest row
that still has room. Rows left less than `1 - slack` full go back into the next window, so only the
final rows of the whole run can be short. A sample longer than `max_len` is cut into pieces of
`max_len` (each its own document); a piece without an ASSISTANT token teaches nothing and is dropped.
No row is ever empty.

Collation keeps documents apart (the release did not):

    row        [ d0 d0 d0 | d1 d1 | d2 d2 d2 d2 | pad pad ]
    positions    0  1  2    0  1    0  1  2  3    0   1      restart per document (RoPE as if alone)
    labels       next token only inside a document and only where the loss applies; -100 elsewhere
    mask       block-diagonal causal (B, 1, T, T): a token sees earlier tokens of its own document

With isolation "varlen" the mask is left out: restarting position ids are how transformers' flash
attention finds the document boundaries for its varlen kernel (and how it builds the same block mask
for sdpa when no mask and no cache are given): the same attention without a T x T matrix in memory.
"""

from __future__ import annotations

import bisect
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from anygpt.data.pipeline import shards
from anygpt.data.pipeline.samples import ASSISTANT
from anygpt.errors import AnyGPTError

DEFAULT_MAX_LEN = 4500  # the paper's Table 8
IGNORE = -100


@dataclass
class PackStats:
    max_len: int
    samples: int = 0
    documents: int = 0
    rows: int = 0
    tokens: int = 0
    split_samples: int = 0  # longer than max_len, cut into pieces
    dropped_pieces: int = 0  # pieces without any ASSISTANT token

    @property
    def padding_fraction(self) -> float:
        """Share of a (rows, max_len) batch grid that would be padding."""
        return 1.0 - self.tokens / max(self.rows * self.max_len, 1)

    def to_dict(self) -> dict:
        return {**asdict(self), "padding_fraction": round(self.padding_fraction, 6)}


def _pieces(ids: list[int], roles: list[int], tag: str, max_len: int, stats: PackStats):
    if len(ids) <= max_len:
        return [(ids, roles, tag)]
    stats.split_samples += 1
    out = []
    for i in range(0, len(ids), max_len):
        r = roles[i: i + max_len]
        if ASSISTANT in r:
            out.append((ids[i: i + max_len], r, tag))
        else:
            stats.dropped_pieces += 1
    return out


def _best_fit(docs: list, max_len: int) -> list[list]:
    """Best-fit decreasing: lists of documents whose lengths sum to <= max_len."""
    order = sorted(range(len(docs)), key=lambda i: -len(docs[i][0]))
    bins: list[list] = []
    free: list[tuple[int, int]] = []  # sorted (room left, bin index)
    for i in order:
        n = len(docs[i][0])
        j = bisect.bisect_left(free, (n, -1))
        if j < len(free):
            room, b = free.pop(j)
            bins[b].append(docs[i])
            bisect.insort(free, (room - n, b))
        else:
            bins.append([docs[i]])
            bisect.insort(free, (max_len - n, len(bins) - 1))
    return bins


def pack(samples: Iterable[tuple[list[int], list[int], str]], max_len: int = DEFAULT_MAX_LEN, *,
         window: int = 8192, slack: float = 0.01, stats: PackStats | None = None) -> Iterator[dict]:
    """(ids, roles, tag) samples -> packed rows {input_ids, roles, doc_lens, doc_tags}."""
    if max_len < 2:
        raise AnyGPTError("max_len must be at least 2")
    stats = stats or PackStats(max_len)
    pool: list = []

    def emit(bins, final: bool):
        carry = []
        for b in bins:
            used = sum(len(d[0]) for d in b)
            if not final and used < (1 - slack) * max_len and len(carry) < window // 2:
                carry.extend(b)
                continue
            stats.rows += 1
            stats.tokens += used
            stats.documents += len(b)
            yield {"input_ids": [t for d in b for t in d[0]], "roles": [r for d in b for r in d[1]],
                   "doc_lens": [len(d[0]) for d in b], "doc_tags": [d[2] for d in b]}
        pool[:] = carry

    for ids, roles, tag in samples:
        if len(ids) != len(roles):
            raise AnyGPTError("a sample has a different number of ids and roles")
        if not ids:
            continue
        stats.samples += 1
        pool.extend(_pieces(list(ids), list(roles), tag, max_len, stats))
        if len(pool) >= window:
            yield from emit(_best_fit(pool, max_len), final=False)
    if pool:
        yield from emit(_best_fit(pool, max_len), final=True)


def run_pack(samples_dir: str | Path, out: str | Path, max_len: int = DEFAULT_MAX_LEN, *,
             window: int = 8192, shard_rows: int = 1024, quiet: bool = False) -> dict:
    """Pack one sample folder (e.g. mix/train) into a packed folder; returns its manifest."""
    samples_dir, out = Path(samples_dir), Path(out)
    src = shards.read_manifest(samples_dir, "samples")
    stats = PackStats(max_len)

    def stream():
        for batch in shards.iter_batches(samples_dir, "samples"):
            for r in batch:
                yield r["input_ids"], r["roles"], r["tag"]

    files, buf, index = [], [], 0
    for row in pack(stream(), max_len, window=window, stats=stats):
        buf.append(row)
        if len(buf) >= shard_rows:
            shards.write_shard(out, index, buf, shards.PACKED, {})
            files.append({"file": f"{shards.shard_name(index)}.parquet", "rows": len(buf)})
            buf, index = [], index + 1
    if buf:
        shards.write_shard(out, index, buf, shards.PACKED, {})
        files.append({"file": f"{shards.shard_name(index)}.parquet", "rows": len(buf)})
    if stats.rows == 0:
        raise AnyGPTError(f"{samples_dir}: nothing to pack")
    manifest = {"stage": "packed", "max_len": max_len, "source": str(samples_dir),
                "vocab_size": src.get("vocab_size"), "stats": stats.to_dict(), "shards": files}
    shards.write_manifest(out, manifest)
    if not quiet:
        print(f"pack {samples_dir} -> {out}: {stats.samples} samples in {stats.rows} rows of <= {max_len}, "
              f"{stats.split_samples} split, {stats.dropped_pieces} pieces dropped, "
              f"padding {stats.padding_fraction:.4f}", file=sys.stderr)
    return manifest


# --- collation ------------------------------------------------------------------------------------

@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, T)
    position_ids: torch.Tensor  # (B, T) restarting at 0 in every document
    labels: torch.Tensor  # (B, T) the next token where the loss applies, else IGNORE
    doc_ids: torch.Tensor  # (B, T) document index within its row; -1 for padding
    label_tags: torch.Tensor  # (B, T) index into `tags` of each label's document; -1 where IGNORE
    tags: list[str] = field(default_factory=list)
    tokens: int = 0  # real (non-padding) tokens
    mask: torch.Tensor | None = None  # attention_mask(), when made ahead (by the loader thread)

    @property
    def num_labels(self) -> int:
        return int((self.labels != IGNORE).sum())

    def attention_mask(self) -> torch.Tensor:
        """(B, 1, T, T) bool, True where a query may attend to a key: same document and causal.
        Padding attends to padding (its own segment), so no row of the mask is empty."""
        if self.mask is not None:
            return self.mask
        same = self.doc_ids[:, :, None] == self.doc_ids[:, None, :]  # (B, T, T)
        t = self.doc_ids.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool, device=self.doc_ids.device).tril_()
        return (same & causal)[:, None]

    def with_mask(self) -> "Batch":
        """The same batch with its attention mask made now (off the training thread)."""
        self.mask = self.attention_mask()
        return self

    def to(self, device) -> "Batch":
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.input_ids), move(self.position_ids), move(self.labels), move(self.doc_ids),
                     move(self.label_tags), self.tags, self.tokens, move(self.mask))


def collate(rows: list[dict], pad_id: int, *, loss_on: str = "all", pad_to: int | None = None,
            multiple: int = 8, tags: list[str] | None = None) -> Batch:
    """Packed rows -> a Batch padded to `pad_to` (or the longest row, rounded up to `multiple`).

    loss_on="all": every next token inside a document is a label (pretraining);
    loss_on="assistant": only tokens whose role is ASSISTANT (instruction tuning)."""
    if loss_on not in ("all", "assistant"):
        raise AnyGPTError(f"loss_on must be 'all' or 'assistant', got {loss_on!r}")
    if not rows:
        raise AnyGPTError("an empty batch")
    tags = list(tags) if tags is not None else []
    tag_index = {t: i for i, t in enumerate(tags)}
    longest = max(len(r["input_ids"]) for r in rows)
    t = pad_to or -(-longest // multiple) * multiple
    if longest > t:
        raise AnyGPTError(f"a row of {longest} tokens does not fit pad_to={t}")
    b = len(rows)
    ids = np.full((b, t), pad_id, dtype=np.int64)
    pos = np.zeros((b, t), dtype=np.int64)
    doc = np.full((b, t), -1, dtype=np.int64)
    lab = np.full((b, t), IGNORE, dtype=np.int64)
    ltag = np.full((b, t), -1, dtype=np.int64)
    tokens = 0
    for i, r in enumerate(rows):
        x = np.asarray(r["input_ids"], dtype=np.int64)
        roles = np.asarray(r["roles"], dtype=np.int64)
        n = len(x)
        tokens += n
        ids[i, :n] = x
        lens = np.asarray(r["doc_lens"], dtype=np.int64)
        starts = np.repeat(np.cumsum(lens) - lens, lens)  # (n,) start of each token's document
        pos[i, :n] = np.arange(n) - starts
        pos[i, n:] = np.arange(t - n)  # padding: one more segment of its own
        d = np.repeat(np.arange(len(lens)), lens)
        doc[i, :n] = d
        # position j predicts token j+1 when both are in one document (and the loss applies there)
        ok = d[:-1] == d[1:]
        if loss_on == "assistant":
            ok &= roles[1:] == ASSISTANT
        lab[i, : n - 1] = np.where(ok, x[1:], IGNORE)
        for tg in r["doc_tags"]:
            if tg not in tag_index:
                tag_index[tg] = len(tags)
                tags.append(tg)
        doc_tag = np.asarray([tag_index[tg] for tg in r["doc_tags"]], dtype=np.int64)
        ltag[i, : n - 1] = np.where(ok, doc_tag[d[:-1]], -1)
    return Batch(torch.from_numpy(ids), torch.from_numpy(pos), torch.from_numpy(lab), torch.from_numpy(doc),
                 torch.from_numpy(ltag), tags, tokens)
