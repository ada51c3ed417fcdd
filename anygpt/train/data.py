"""Which packed rows each process sees at each step: a pure function of (seed, step), so a resumed
run reads exactly the batches the uninterrupted run would have read.

    stream of row positions p = 0, 1, 2, ...   epoch e = p // N uses its own permutation of the N rows
    step s, accumulation a, process r, slot b:  p = s*R + (a*world + r)*micro + b,  R = micro*accum*world
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import numpy as np

from anygpt.data.pipeline import shards
from anygpt.data.pipeline.packing import Batch, collate
from anygpt.errors import AnyGPTError


class PackedRows:
    """The rows of a packed folder, read once into Arrow memory (columnar, no Python objects)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.manifest = shards.read_manifest(folder, "packed")
        self.max_len = self.manifest["max_len"]
        self.table = shards.read_table(folder, "packed")
        if self.table.num_rows == 0:
            raise AnyGPTError(f"{folder}: no packed rows")
        self.tags = sorted({t for tags in self.table.column("doc_tags").to_pylist() for t in tags})

    def __len__(self) -> int:
        return self.table.num_rows

    def rows(self, indices: list[int]) -> list[dict]:
        return self.table.take(indices).to_pylist()

    @property
    def tokens(self) -> int:
        return int(sum(sum(x) for x in self.table.column("doc_lens").to_pylist()))


class BatchPlan:
    def __init__(self, num_rows: int, micro_batch: int, grad_accum: int, world: int, seed: int):
        self.n, self.micro, self.accum, self.world, self.seed = num_rows, micro_batch, grad_accum, world, seed
        self._perms: dict[int, np.ndarray] = {}

    @property
    def rows_per_step(self) -> int:
        return self.micro * self.accum * self.world

    def _row(self, p: int) -> int:
        epoch, k = divmod(p, self.n)
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.clear()
            self._perms[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return int(self._perms[epoch][k])

    def indices(self, step: int, accum: int, rank: int) -> list[int]:
        p0 = step * self.rows_per_step + (accum * self.world + rank) * self.micro
        return [self._row(p) for p in range(p0, p0 + self.micro)]

    def steps_for(self, epochs: float) -> int:
        return max(1, int(np.ceil(epochs * self.n / self.rows_per_step)))


def step_batches(rows: PackedRows, plan: BatchPlan, step: int, rank: int, *, pad_id: int, loss_on: str,
                 pad_to: int | None, tags: list[str], with_mask: bool = False) -> list[Batch]:
    """The micro-batches of `step` on process `rank`; `with_mask` builds the 4D isolation masks too
    (in the loader thread, off the training thread)."""
    out = [collate(rows.rows(plan.indices(step, a, rank)), pad_id, loss_on=loss_on, pad_to=pad_to, tags=tags)
           for a in range(plan.accum)]
    return [b.with_mask() for b in out] if with_mask else out


class Prefetcher:
    """Collates the next steps' batches in a background thread while the model trains (collation is
    mostly numpy and torch work that releases the GIL)."""

    def __init__(self, make, steps: range, depth: int = 1):
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(make, steps), daemon=True)
        self._thread.start()

    def _run(self, make, steps):
        try:
            for s in steps:
                item = make(s)
                while not self._stop.is_set():
                    try:
                        self._q.put((s, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as e:  # handed to the consumer, raised there
            self._q.put((None, e))

    def get(self):
        s, item = self._q.get()
        if s is None:
            raise item
        return s, item

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)


def val_batches(rows: PackedRows, rank: int, world: int, micro: int, max_rows: int, *, pad_id: int,
                tags: list[str]) -> list[Batch]:
    """This process's share of the first `max_rows` validation rows (loss on target tokens)."""
    idx = list(range(min(len(rows), max_rows)))[rank::world]
    return [collate(rows.rows(idx[i: i + micro]), pad_id, loss_on="assistant", tags=tags)
            for i in range(0, len(idx), micro)]
