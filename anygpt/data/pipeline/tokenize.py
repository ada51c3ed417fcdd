"""Stage 1: raw records -> unit shards (media encoded to codes by the bundle's codecs, text kept).

Records are cut into fixed chunks of `chunk_size` in input order; chunk i always holds the same
records, and its shard is written atomically with a statistics file that marks it done. A job that
crashes is simply run again: finished chunks are skipped, unfinished ones redone from scratch, so
no record is lost or written twice. Chunks run in local worker processes (`engine="local"`) or as
Ray Data tasks on a cluster (`engine="ray"`); both call the same `encode_chunk`, on one torch thread
wherever it runs: a codec's nearest-code search can fall either way on a near tie when the thread
count changes the order of a sum, so one thread makes the codes the same for any `workers` or engine.

Text is stored as text: the text tokenizer and the templates are applied by the next stage, so the
same unit shards serve pretraining (both directions) and instruction tuning.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from anygpt import bundles, media
from anygpt.data.pipeline import shards
from anygpt.data.pipeline.records import RawUnit, RecordError, input_files, iter_records, parse_record
from anygpt.errors import AnyGPTError
from anygpt.layout import LayoutConfig, VocabLayout


@dataclass
class TokenizeConfig:
    inputs: list[str]  # .jsonl / .json files or folders of them
    out: str  # unit shard folder
    bundle: str = "debug"  # whose codecs (and layout) encode the media
    dataset: str = ""  # dataset name stored in every row (default: the out folder's name)
    workers: int = 1  # local processes or Ray workers; 1 runs in this process
    chunk_size: int = 256  # records per shard
    engine: str = "local"  # "local" or "ray"
    ray_address: str | None = None  # None starts a local Ray instance with `workers` CPUs
    max_seconds: dict[str, float] = field(default_factory=dict)  # crop audio, e.g. {"music": 5.0}
    fail_after_chunks: int | None = None  # testing: crash after this many chunks are written

    def __post_init__(self):
        self.dataset = self.dataset or Path(self.out).name
        if self.engine not in ("local", "ray"):
            raise AnyGPTError(f"unknown engine {self.engine!r}: expected local or ray")
        if self.chunk_size < 1 or self.workers < 1:
            raise AnyGPTError("chunk_size and workers must be positive")


# --- codecs without the language model ------------------------------------------------------------

def load_codecs(bundle):
    """(layout, {modality: codec slot}, description) of a built-in bundle, a bundle folder (its LLM
    is not loaded: tokenizing media needs only the codecs) or an already loaded Bundle."""
    if isinstance(bundle, bundles.Bundle):
        codecs, layout, bundle = bundle.codecs, bundle.layout, bundle.name
    elif bundle in bundles.bundle_names():
        b = bundles.load_bundle(bundle)
        codecs = b.codecs
        layout = b.layout
    else:
        path = bundles.packaged_bundles().get(str(bundle), Path(bundle))  # a packaged name ("tiny") or a folder
        manifest = bundles.read_manifest(path)
        try:
            layout = VocabLayout(LayoutConfig.from_dict(manifest["layout"]), manifest["layout"]["base_vocab_size"])
        except (AnyGPTError, TypeError, ValueError, KeyError) as e:
            raise AnyGPTError(f"{path}: bad layout in the manifest ({e})") from None
        codecs = bundles.load_codec_slots(path)  # paths confined to the bundle, weights safetensors
    describe = {
        "bundle": bundle,
        "layout": {**layout.config.to_dict(), "base_vocab_size": layout.base_vocab_size},
        "codecs": {m: {"name": s.name, "config": s.config} for m, s in codecs.items()},
    }
    return layout, codecs, describe


# --- one chunk ----------------------------------------------------------------------------------

def _encode_media(seg, codecs, layout, max_seconds) -> np.ndarray:
    spec = layout[seg.modality].spec
    if isinstance(seg.source, np.ndarray):
        codes = seg.source
    else:
        if seg.modality not in codecs:
            raise RecordError(f"the bundle has no {seg.modality} codec")
        codec = codecs[seg.modality].get()
        if seg.modality == "image":
            item = media.load_image(seg.source)
        else:
            item = media.load_audio(seg.source, codec.sample_rate, max_seconds=max_seconds.get(seg.modality))
        codes = codec.encode(item).cpu().numpy()[: spec.num_codebooks]
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim != 2 or codes.shape[0] != spec.num_codebooks or codes.shape[1] == 0:
        raise RecordError(f"{seg.modality} codes must have shape ({spec.num_codebooks}, frames>0), got {codes.shape}")
    if codes.min() < 0 or codes.max() >= spec.codebook_size:
        raise RecordError(f"{seg.modality} code outside [0, {spec.codebook_size})")
    return codes


def encode_unit(unit: RawUnit, dataset: str, codecs, layout, max_seconds: dict) -> dict:
    row = {"key": unit.key, "dataset": dataset, "kind": unit.kind, "seg_turn": [], "seg_role": [],
           "seg_modality": [], "seg_text": [], "seg_codes": [], "seg_codebooks": [], "media_tokens": 0}
    for seg in unit.segments:
        codes = None
        if seg.modality != "text":
            codes = _encode_media(seg, codecs, layout, max_seconds)
            row["media_tokens"] += codes.size + 2
        row["seg_turn"].append(seg.turn)
        row["seg_role"].append(seg.role)
        row["seg_modality"].append(seg.modality)
        row["seg_text"].append(seg.text)
        row["seg_codes"].append([] if codes is None else codes.reshape(-1).tolist())
        row["seg_codebooks"].append(0 if codes is None else codes.shape[0])
    return row


def encode_chunk(index: int, records: list, cfg: TokenizeConfig, codecs, layout) -> dict:
    """Encode one chunk of (key, JSON object or error, base folder) and write its shard."""
    rows, errors = [], []
    by_kind: dict[str, int] = {}
    tokens: dict[str, int] = {}
    for key, obj, base in records:
        try:
            if isinstance(obj, (RecordError, str)):
                raise RecordError(str(obj))
            unit = parse_record(obj, key, Path(base))
            row = encode_unit(unit, cfg.dataset, codecs, layout, cfg.max_seconds)
        except AnyGPTError as e:  # bad record, unreadable or silent media: skipped and counted
            errors.append(f"{key}: {e}")
            continue
        rows.append(row)
        by_kind[row["kind"]] = by_kind.get(row["kind"], 0) + 1
        for m, c in zip(row["seg_modality"], row["seg_codes"]):
            if m != "text":
                tokens[m] = tokens.get(m, 0) + len(c) + 2
    stats = {"file": f"{shards.shard_name(index)}.parquet", "records": len(records), "errors": len(errors),
             "error_examples": errors[:5], "skipped": errors, "by_kind": by_kind, "media_tokens": tokens,
             "keys": [r["key"] for r in rows], "chunk_size": cfg.chunk_size, "records_digest": records_digest(records)}
    shards.write_shard(Path(cfg.out), index, rows, shards.UNITS, stats)
    return {k: v for k, v in stats.items() if k not in ("keys", "skipped")} | {"index": index, "rows": len(rows)}


def records_digest(records: list) -> str:
    """What a chunk was made of: the keys of its records, in order (a resumed job must agree)."""
    return hashlib.sha256("\n".join(str(key) for key, _, _ in records).encode()).hexdigest()


def _check_resume(cfg: TokenizeConfig, chunks: list, done: dict) -> None:
    """Refuse to resume when the finished chunks were cut from other records (another --chunk-size or
    other inputs): skipping them would lose records, redoing them would write some twice."""
    n = len(chunks)
    for i, stats in done.items():
        same = i < n and (stats["records_digest"] == records_digest(chunks[i][1]) if "records_digest" in stats
                          else stats["records"] == len(chunks[i][1]) and stats.get("chunk_size", cfg.chunk_size) == cfg.chunk_size)
        if not same:
            was = stats.get("chunk_size")
            how = f"--chunk-size {was}" if was is not None and was != cfg.chunk_size else "other inputs or chunking"
            raise AnyGPTError(f"{cfg.out}: its finished chunks were made with {how}; resume with the same "
                              f"--chunk-size and inputs, or tokenize into a new --out")


# --- the job --------------------------------------------------------------------------------------

def _chunks(cfg: TokenizeConfig):
    chunk, index = [], 0
    for key, obj, base in iter_records(input_files(cfg.inputs)):
        if isinstance(obj, Exception):
            obj = str(obj)
        chunk.append((key, obj, str(base)))
        if len(chunk) == cfg.chunk_size:
            yield index, chunk
            chunk, index = [], index + 1
    if chunk:
        yield index, chunk


class _Progress:
    def __init__(self, total: int, already: int, quiet: bool):
        self.total, self.done, self.units, self.errors = total, already, 0, 0
        self.t0, self.quiet = time.perf_counter(), quiet

    def update(self, stats: dict) -> None:
        self.done += 1
        self.units += stats["rows"]
        self.errors += stats["errors"]
        if not self.quiet:
            rate = self.units / max(time.perf_counter() - self.t0, 1e-9)
            print(f"tokenize: {self.done}/{self.total} chunks, {self.units} units this run, "
                  f"{self.errors} errors, {rate:.1f} units/s", file=sys.stderr, flush=True)


def run_tokenize(cfg: TokenizeConfig, *, quiet: bool = False, bundle=None) -> dict:
    """Tokenize every pending chunk, then write the manifest. Returns the manifest. `bundle`, an
    already loaded Bundle named `cfg.bundle`, saves loading it again in this process."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    layout, codecs, describe = load_codecs(bundle if bundle is not None else cfg.bundle)
    describe["bundle"] = cfg.bundle
    done = shards.done_shards(out)
    chunks = list(_chunks(cfg))
    _check_resume(cfg, chunks, done)
    pending = [(i, c) for i, c in chunks if i not in done]
    progress = _Progress(len(chunks), len(chunks) - len(pending), quiet)
    if not quiet and done:
        print(f"tokenize: resuming, {len(done)} of {len(chunks)} chunks already done", file=sys.stderr)
    if pending:
        if cfg.engine == "ray":
            _run_ray(cfg, pending, progress)
        elif cfg.workers == 1:
            with _one_thread():
                for n, (i, c) in enumerate(pending):
                    if cfg.fail_after_chunks is not None and n >= cfg.fail_after_chunks:
                        raise RuntimeError(f"simulated crash after {n} chunks")
                    progress.update(encode_chunk(i, c, cfg, codecs, layout))
        else:
            _run_local_pool(cfg, pending, progress)
    return _finish(cfg, describe, len(chunks))


def _finish(cfg: TokenizeConfig, describe: dict, n_chunks: int) -> dict:
    done = shards.done_shards(Path(cfg.out))
    missing = sorted(set(range(n_chunks)) - set(done))
    if missing:
        raise AnyGPTError(f"{cfg.out}: chunks {missing[:5]} did not finish; run the same command again")
    stats = [done[i] for i in range(n_chunks)]
    by_kind: dict[str, int] = {}
    tokens: dict[str, int] = {}
    for s in stats:
        for k, v in s["by_kind"].items():
            by_kind[k] = by_kind.get(k, 0) + v
        for k, v in s["media_tokens"].items():
            tokens[k] = tokens.get(k, 0) + v
    manifest = {
        "stage": "units", **describe, "dataset": cfg.dataset,
        "inputs": [str(p) for p in input_files(cfg.inputs)], "chunk_size": cfg.chunk_size,
        "counts": {"records": sum(s["records"] for s in stats), "units": sum(s["rows"] for s in stats),
                   "errors": sum(s["errors"] for s in stats), "by_kind": by_kind, "media_tokens": tokens},
        "error_examples": [e for s in stats for e in s["error_examples"]][:10],
        # every skipped record with its reason ("<file>:<line index>: why")
        "skipped": [e for s in stats for e in s.get("skipped", s["error_examples"])],
        "shards": [{"file": s["file"], "rows": s["rows"]} for s in stats],
        "config": {k: v for k, v in asdict(cfg).items() if k != "fail_after_chunks"},
    }
    shards.write_manifest(Path(cfg.out), manifest)
    return manifest


# --- local processes ------------------------------------------------------------------------------

@contextmanager
def _one_thread():
    """Encode on one torch thread in this process (as the workers do), then restore the count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


_WORKER: dict = {}  # per worker process: the codecs, loaded once by _init_worker


def _init_worker(cfg_dict: dict) -> None:
    torch.set_num_threads(1)
    cfg = TokenizeConfig(**cfg_dict)
    layout, codecs, _ = load_codecs(cfg.bundle)
    _WORKER.update(cfg=cfg, layout=layout, codecs=codecs)


def _work(index: int, records: list) -> dict:
    return encode_chunk(index, records, _WORKER["cfg"], _WORKER["codecs"], _WORKER["layout"])


def _run_local_pool(cfg: TokenizeConfig, pending, progress: _Progress) -> None:
    cfg_dict = asdict(cfg)
    # spawn: workers never inherit a parent's torch thread pool or open files
    with ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("spawn"),
                             initializer=_init_worker, initargs=(cfg_dict,)) as pool:
        todo = iter(pending)
        running = set()
        for _ in range(2 * cfg.workers):  # a bounded number of chunks in flight: constant memory
            item = next(todo, None)
            if item is not None:
                running.add(pool.submit(_work, *item))
        while running:
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                progress.update(fut.result())
                item = next(todo, None)
                if item is not None:
                    running.add(pool.submit(_work, *item))


# --- Ray Data -------------------------------------------------------------------------------------

class _RayChunkWorker:
    """A Ray Data actor: loads the codecs once, then encodes one chunk per call."""

    def __init__(self, cfg_dict: dict):
        _init_worker(cfg_dict)

    def __call__(self, batch: dict) -> dict:
        out = []
        for index, payload in zip(batch["index"], batch["payload"]):
            stats = _work(int(index), json.loads(payload))
            out.append(json.dumps(stats))
        return {"stats": out}


def _run_ray(cfg: TokenizeConfig, pending, progress: _Progress) -> None:
    import ray

    started = False
    if not ray.is_initialized():
        ray.init(address=cfg.ray_address, num_cpus=None if cfg.ray_address else cfg.workers,
                 include_dashboard=False, log_to_driver=False, configure_logging=False)
        started = True
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        items = [{"index": i, "payload": json.dumps(c)} for i, c in pending]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = ds.map_batches(_RayChunkWorker, fn_constructor_kwargs={"cfg_dict": asdict(cfg)},
                            batch_size=1, compute=ray.data.ActorPoolStrategy(size=cfg.workers), num_cpus=1)
        for row in ds.iter_rows():
            progress.update(json.loads(row["stats"]))
    finally:
        if started:
            ray.shutdown()
