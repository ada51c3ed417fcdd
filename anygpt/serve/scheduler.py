"""The server's decoding loop: one thread owns the model and decodes every request in one running batch.

    HTTP handlers ──submit(Job)──> inbox ──> worker thread (the only one that runs the model)
                                              │ each job goes through the phases of generate/engine.py:
                                              │   a sampled or greedy stretch ──> a shared Engine: rows join
                                              │                                   and leave at every step
                                              │   beam-searched text ──────────> one beam search for all the
                                              │                                   jobs waiting for one
                                              └ every new token ──> job.on_token (called on this thread)

Requests that arrive together, or while others run, decode in the same batch: a new job joins the
running engine at its next step instead of waiting for the others to finish; jobs waiting for a
beam phase are gathered for up to `beam_wait_s` while the engine is busy, then searched together. Jobs with the same
sampling settings share one engine; other settings get an engine of their own (at most
`max_engines`, stepped in turn). The key/value caches of recent replies are kept (`history_slots`),
so a request that repeats an earlier conversation computes only its new tokens.

Overload is refused, not queued without end: `submit` raises Overloaded past `max_jobs` jobs in the
system. A job that fails takes only its own engine's jobs down, never the thread.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Callable

import torch

from anygpt.generate.config import DecodingConfig
from anygpt.generate.decoder import KVPrefix
from anygpt.generate.engine import Row, cache_for_beams, extend_row, in_span, run_beam_phase, span_constraint
from anygpt.generate.kvengine import Engine, Handle, Request, common_prefix
from anygpt.generate.processors import SpanTracker


class Overloaded(Exception):
    """The server has as many jobs as it accepts."""


@dataclass
class Job:
    """One reply to generate. `on_token(id)` and `on_done()` are called from the worker thread."""

    prompt: list[int]
    decoding: DecodingConfig  # its max_new_tokens is this job's budget
    allowed_starts: tuple[str, ...] | None = None
    on_token: Callable[[int], None] | None = None
    on_done: Callable[[], None] | None = None
    ids: list[int] = field(default_factory=list)  # new ids so far
    error: BaseException | None = None
    cancelled: bool = False  # set by the caller: the job stops at its next phase boundary
    finished: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.monotonic)
    cached_prompt: int = 0  # prompt tokens whose cache came from an earlier reply
    # worker state
    row: Row | None = None
    handle: Handle | None = None
    eos: tuple[int, ...] = ()
    waiting_since: float = 0.0  # when it began to wait for a beam phase


def engine_key(decoding: DecodingConfig) -> str:
    """What an engine is built for: the sampling settings, whatever the job's budget and seed."""
    return json.dumps(replace(decoding, max_new_tokens=1, seed=None).to_dict(), sort_keys=True)


def batch_key(decoding: DecodingConfig) -> str:
    """Jobs whose beam phases can run as one batch: the same settings and budget."""
    return json.dumps(replace(decoding, seed=None).to_dict(), sort_keys=True)


class Scheduler:
    def __init__(self, model, layout, *, stop_ids: list[int], pad_id: int, max_batch: int = 8,
                 max_jobs: int = 32, max_engines: int = 4, history_slots: int = 8, beam_wait_s: float = 0.25):
        self.model, self.layout = model, layout
        self.stop_ids, self.pad_id = list(stop_ids), pad_id
        self.max_batch, self.max_jobs, self.max_engines = max_batch, max_jobs, max_engines
        self.vocab = model.get_output_embeddings().weight.shape[0]
        self.tracker = SpanTracker(layout)
        self.end_ids = [m.end_id for m in layout.modalities.values()]
        self.inbox: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.engines: OrderedDict[str, Engine] = OrderedDict()  # by engine_key
        self.running: list[Job] = []  # in an engine phase
        self.beam_waiting: list[Job] = []  # waiting for a beam phase
        self.history: OrderedDict[int, KVPrefix] = OrderedDict()  # caches of recent replies
        self.history_slots = history_slots
        self.beam_wait_s = beam_wait_s
        self._count = 0  # jobs submitted and not finished
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.steps = 0  # engine steps taken (for tests and metrics)
        self.peak_batch = 0  # most rows decoded in one step

    # --- called from any thread -------------------------------------------------------------------
    def start(self) -> "Scheduler":
        self._thread = threading.Thread(target=self._loop, name="anygpt-decode", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        self.inbox.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, job: Job) -> Job:
        with self._lock:
            if self._count >= self.max_jobs:
                raise Overloaded(f"the server is busy ({self._count} requests in progress); try again shortly")
            self._count += 1
        self.inbox.put(job)
        return job

    @property
    def load(self) -> int:
        return self._count

    # --- the worker thread ------------------------------------------------------------------------
    def _loop(self) -> None:
        torch.set_grad_enabled(False)
        while not self._stopping:
            # a failure outside any one batch fails every job in flight, never the thread
            self._guarded(self._round, self.running + self.beam_waiting, None, reset=True)

    def _round(self) -> None:
        self._take(block=not (self.running or self.beam_waiting))
        if self._beams_due():
            self._beam_phases()
        for key, engine in list(self.engines.items()):
            if engine.busy:
                self._guarded(lambda: self._step(engine), None, key)

    def _take(self, block: bool) -> None:
        try:
            job = self.inbox.get(timeout=0.5) if block else self.inbox.get_nowait()
        except queue.Empty:
            return
        while job is not None or not self.inbox.empty():
            if job is not None:
                self._guarded(lambda j=job: self._admit(j), [job], None)
            try:
                job = self.inbox.get_nowait()
            except queue.Empty:
                break

    def _admit(self, job: Job) -> None:
        row = Row(list(job.prompt), job.allowed_starts)
        best, start = None, 0
        for entry in self.history.values():  # the longest cached prefix of this prompt
            n = common_prefix(entry.ids, row.ids, limit=len(row.ids) - 1)
            if n > start:
                best, start = entry, n
        if best is not None:
            row.cache = best if start == best.length else KVPrefix(best.ids[:start], best.state)
        job.cached_prompt = start
        job.row = row
        self._next_phase(job)

    def _next_phase(self, job: Job) -> None:
        r = job.row
        if job.cancelled or r.done or r.generated >= job.decoding.max_new_tokens:
            self._finish(job)
            return
        beam_text = job.decoding.text.num_beams > 1
        if beam_text and not in_span(self.tracker, r):
            cache_for_beams(self._engine(job.decoding), r)
            job.waiting_since = time.monotonic()
            self.beam_waiting.append(job)
            return
        job.eos = tuple(self.stop_ids + (self.end_ids if beam_text else []))
        budget = job.decoding.max_new_tokens - r.generated
        job.handle = self._engine(job.decoding).submit(Request(
            r.ids, r.allowed_starts, max_new_tokens=budget, span_budget=budget, stop_ids=job.eos,
            prefix=r.cache, keep_cache=True, on_token=self._stream(job)))
        self.running.append(job)

    def _stream(self, job: Job):
        def on_token(tok: int) -> None:
            job.ids.append(tok)
            if job.on_token is not None:
                job.on_token(tok)
        return on_token

    def _engine(self, decoding: DecodingConfig) -> Engine:
        key = engine_key(decoding)
        if key not in self.engines:
            idle = [k for k, e in self.engines.items() if not e.busy]
            while len(self.engines) >= self.max_engines and idle:
                del self.engines[idle.pop(0)]
            self.engines[key] = Engine(self.model, self.layout, replace(decoding, seed=None), stop_ids=self.stop_ids,
                                       max_batch=self.max_batch)
        self.engines.move_to_end(key)
        return self.engines[key]

    def _step(self, engine: Engine) -> None:
        self.peak_batch = max(self.peak_batch, min(len(engine.rows) + len(engine.waiting), self.max_batch))
        engine.step()
        self.steps += 1
        for job in [j for j in self.running if j.handle is not None and j.handle.done]:
            self.running.remove(job)
            h, job.handle = job.handle, None
            job.row.cache = h.cache
            extend_row(job.row, h.ids, job.decoding, list(job.eos), self.stop_ids)
            self._next_phase(job)

    def _beams_due(self) -> bool:
        """Beam phases run when the engine has nothing to do, when a batch of them is waiting, or
        when the first has waited `beam_wait_s`: under load they gather into fewer, larger searches
        (a search costs much the same for 1 row as for 8), alone they start at once."""
        if not self.beam_waiting:
            return False
        if len(self.beam_waiting) >= self.max_batch or not any(e.busy for e in self.engines.values()):
            return True
        return time.monotonic() - self.beam_waiting[0].waiting_since >= self.beam_wait_s

    def _beam_phases(self) -> None:
        waiting, self.beam_waiting = self.beam_waiting, []
        groups: dict = {}
        for job in waiting:
            groups.setdefault((batch_key(job.decoding), job.allowed_starts), []).append(job)
        for jobs in groups.values():
            for i in range(0, len(jobs), self.max_batch):
                batch = jobs[i: i + self.max_batch]
                self._guarded(lambda b=batch: self._beam_phase(b, b[0].decoding, b[0].allowed_starts), batch, None)

    def _beam_phase(self, jobs: list[Job], decoding: DecodingConfig, starts) -> None:
        eos = self.stop_ids + [m.start_id for m in self.layout.modalities.values()]
        streams = {id(j.row): self._stream(j) for j in jobs}
        run_beam_phase(self.model, [j.row for j in jobs], decoding, eos, self.stop_ids, self.pad_id,
                       span_constraint(self.layout, decoding, starts, self.vocab), lambda row: streams[id(row)])
        for job in jobs:
            self._next_phase(job)

    def _finish(self, job: Job) -> None:
        if job.row is not None and job.row.cache is not None and job.row.cache.length > 0:
            self.history[id(job)] = job.row.cache
            while len(self.history) > self.history_slots:
                self.history.popitem(last=False)
        with self._lock:
            self._count -= 1
        job.finished.set()
        if job.on_done is not None:
            job.on_done()

    def _guarded(self, work: Callable[[], None], jobs: list[Job] | None, engine: str | None,
                 reset: bool = False) -> None:
        """Run `work`; on an error fail `jobs` (None: every job of `engine`, which is dropped; with
        `reset`, every engine is dropped) and carry on."""
        try:
            work()
        except Exception as e:  # noqa: BLE001 - one bad batch must not stop the server
            traceback.print_exc()
            if jobs is None:
                jobs = [j for j in self.running if j.handle is not None and engine_key(j.decoding) == engine]
            if engine is not None:
                self.engines.pop(engine, None)
            if reset:
                self.engines.clear()
            for job in list(jobs):
                if job in self.running:
                    self.running.remove(job)
                if job in self.beam_waiting:
                    self.beam_waiting.remove(job)
                if not job.finished.is_set():
                    job.error = e
                    self._finish(job)
