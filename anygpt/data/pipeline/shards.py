"""Parquet shards and their manifests, shared by every stage. Every file is written atomically
(to a temporary name in the same folder, then renamed), so a crash never leaves a half shard.

    DIR/manifest.json           {"anygpt_shards": 1, "stage": "units"|"samples"|"packed", ...}
    DIR/shard-00000.parquet     one chunk of rows
    DIR/shard-00000.json        its statistics, written after the Parquet file: a chunk is done
                                exactly when this file exists (what a resumed job skips)

Schemas (one row each):
    units    key, dataset, kind, seg_turn[], seg_role[], seg_modality[], seg_text[],
             seg_codes[][] (codes, row-major (K, T) flattened), seg_codebooks[] (K), media_tokens
    samples  key, dataset, tag ("image/to_text", "chat", "interleaved"), input_ids[], roles[]
    packed   input_ids[], roles[], doc_lens[], doc_tags[]   (sum(doc_lens) == len(input_ids) <= max_len)
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from anygpt.errors import AnyGPTError

FORMAT = 1
MANIFEST = "manifest.json"

UNITS = pa.schema([
    ("key", pa.string()), ("dataset", pa.string()), ("kind", pa.string()),
    ("seg_turn", pa.list_(pa.int32())), ("seg_role", pa.list_(pa.string())),
    ("seg_modality", pa.list_(pa.string())), ("seg_text", pa.list_(pa.string())),
    ("seg_codes", pa.list_(pa.list_(pa.int32()))), ("seg_codebooks", pa.list_(pa.int32())),
    ("media_tokens", pa.int32()),
])
SAMPLES = pa.schema([
    ("key", pa.string()), ("dataset", pa.string()), ("tag", pa.string()),
    ("input_ids", pa.list_(pa.int32())), ("roles", pa.list_(pa.int8())),
])
PACKED = pa.schema([
    ("input_ids", pa.list_(pa.int32())), ("roles", pa.list_(pa.int8())),
    ("doc_lens", pa.list_(pa.int32())), ("doc_tags", pa.list_(pa.string())),
])


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def write_table(table: pa.Table, path: Path) -> None:
    tmp = _tmp(path)
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def write_json(obj, path: Path) -> None:
    tmp = _tmp(path)
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def write_shard(folder: Path, index: int, rows: list[dict], schema: pa.Schema, stats: dict) -> None:
    """The Parquet file first, then its statistics: the .json marks the chunk as done."""
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=schema)
    write_table(table, folder / f"{shard_name(index)}.parquet")
    write_json({**stats, "index": index, "rows": len(rows)}, folder / f"{shard_name(index)}.json")


def done_shards(folder: Path) -> dict[int, dict]:
    """Statistics of every finished chunk in `folder`, by chunk index."""
    out = {}
    for p in sorted(Path(folder).glob("shard-*.json")):
        stats = json.loads(p.read_text(encoding="utf-8"))
        if (p.with_suffix(".parquet")).is_file():
            out[stats["index"]] = stats
    return out


def write_manifest(folder: Path, manifest: dict) -> None:
    Path(folder).mkdir(parents=True, exist_ok=True)
    write_json({"anygpt_shards": FORMAT, **manifest}, Path(folder) / MANIFEST)


def read_manifest(folder: str | Path, stage: str | None = None) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise AnyGPTError(f"{folder}: no {MANIFEST} (not a finished shard folder)")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("anygpt_shards") != FORMAT:
        raise AnyGPTError(f"{folder}: not an anygpt shard folder of format {FORMAT}")
    if stage is not None and manifest.get("stage") != stage:
        raise AnyGPTError(f"{folder}: holds {manifest.get('stage')} shards, expected {stage}")
    return manifest


def read_table(folder: str | Path, stage: str | None = None, columns: list[str] | None = None) -> pa.Table:
    """All shards of a finished folder, in shard order, as one table."""
    manifest = read_manifest(folder, stage)
    files = [Path(folder) / s["file"] for s in manifest["shards"]]
    if not files:
        schema = {"units": UNITS, "samples": SAMPLES, "packed": PACKED}[manifest["stage"]]
        return schema.empty_table() if columns is None else schema.empty_table().select(columns)
    return pa.concat_tables([pq.read_table(f, columns=columns) for f in files])


def iter_batches(folder: str | Path, stage: str, batch_rows: int = 1024):
    """Stream the rows of a finished folder as lists of dicts (constant memory)."""
    manifest = read_manifest(folder, stage)
    for s in manifest["shards"]:
        pf = pq.ParquetFile(Path(folder) / s["file"])
        for batch in pf.iter_batches(batch_size=batch_rows):
            yield batch.to_pylist()
