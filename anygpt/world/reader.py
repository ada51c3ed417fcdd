"""Read a world back: items as dicts with decoded media and parsed attributes.

    for item in iter_items("out/world", "images", "train"):
        item["image"]          # PIL.Image, RGB
        item["captions"]       # list[str]
        item["attributes"]     # dict, as generated
    speech and music items carry "waveform" (float32 (T,)) and "sample_rate" instead of "image";
    conversations carry "turns" (list of dicts) and "media" (ref -> decoded media dict).
"""

import json
from collections.abc import Iterator
from pathlib import Path

from anygpt.world import pngwav
from anygpt.world.build import MANIFEST
from anygpt.errors import AnyGPTError

BATCH_ROWS = 64  # rows decoded at a time: audio rows are large


def load_manifest(world_dir: str | Path) -> dict:
    path = Path(world_dir) / MANIFEST
    if not path.is_file():
        raise AnyGPTError(f"{world_dir} is not a world: no {MANIFEST} (make one with `anygpt data world`)")
    return json.loads(path.read_text(encoding="utf-8"))


def shard_paths(world_dir: str | Path, kind: str, split: str) -> list[Path]:
    manifest = load_manifest(world_dir)
    if kind not in manifest["kinds"]:
        raise AnyGPTError(f"{world_dir} has no {kind}: it holds {', '.join(manifest['kinds'])}")
    entry = manifest["kinds"][kind]["splits"].get(split)
    if entry is None:
        raise AnyGPTError(f"unknown split {split!r}: choose from {', '.join(manifest['kinds'][kind]['splits'])}")
    return [Path(world_dir) / shard["path"] for shard in entry["shards"]]


def iter_rows(world_dir: str | Path, kind: str, split: str) -> Iterator[dict]:
    """Raw rows: media still as bytes, attributes still as JSON text."""
    import pyarrow.parquet as pq

    for path in shard_paths(world_dir, kind, split):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
            yield from batch.to_pylist()


def iter_items(world_dir: str | Path, kind: str, split: str) -> Iterator[dict]:
    """Items in index order, media decoded."""
    for row in iter_rows(world_dir, kind, split):
        yield decode_row(kind, row)


def take_items(world_dir: str | Path, kind: str, split: str, limit: int | None = None) -> list[dict]:
    """The first `limit` (None: all) items of a split, media decoded; AnyGPTError if there are none."""
    items = []
    for item in iter_items(world_dir, kind, split):
        if limit is not None and len(items) >= limit:
            break
        items.append(item)
    if not items:
        raise AnyGPTError(f"{world_dir}: no {kind} in its {split} split")
    return items


def decode_row(kind: str, row: dict) -> dict:
    item = dict(row)
    item["attributes"] = json.loads(row["attributes"])
    if kind == "images":
        item["image"] = pngwav.decode_png(row["image"])
    elif kind in ("speech", "music"):
        item["waveform"], item["sample_rate"] = pngwav.decode_wav(item.pop("audio"))
    elif kind == "conversations":
        item["turns"] = json.loads(row["turns"])
        item["media"] = {entry["ref"]: _decode_media(entry) for entry in row["media"]}
    return item


def _decode_media(entry: dict) -> dict:
    decoded = {"kind": entry["kind"], "description": entry["description"],
               "attributes": json.loads(entry["attributes"])}
    if entry["kind"] == "image":
        decoded["image"] = pngwav.decode_png(entry["data"])
    else:
        decoded["waveform"], decoded["sample_rate"] = pngwav.decode_wav(entry["data"])
    return decoded
