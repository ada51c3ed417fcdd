"""Sharded Parquet output: one folder per kind, shards named <split>-<number>.parquet.

    DIR/manifest.json
    DIR/images/train-00000.parquet  DIR/images/validation-00000.parquet  ...
    DIR/speech/...  DIR/music/...  DIR/conversations/...

Rows arrive in index order and a shard closes after a fixed number of rows, so the same items give
the same shards byte for byte (Parquet stores no dates; the writer version is in its footer).
"""

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

COMMON = [("id", pa.string()), ("index", pa.int64()), ("split", pa.string())]
MEDIA = pa.struct([("ref", pa.string()), ("kind", pa.string()), ("data", pa.binary()),
                   ("sample_rate", pa.int32()), ("description", pa.string()), ("attributes", pa.string())])
SCHEMAS = {
    "images": pa.schema(COMMON + [("image", pa.binary()), ("width", pa.int32()), ("height", pa.int32()),
                                  ("captions", pa.list_(pa.string())), ("attributes", pa.string())]),
    "speech": pa.schema(COMMON + [("audio", pa.binary()), ("sample_rate", pa.int32()), ("seconds", pa.float64()),
                                  ("text", pa.string()), ("speaker", pa.string()), ("attributes", pa.string())]),
    "music": pa.schema(COMMON + [("audio", pa.binary()), ("sample_rate", pa.int32()), ("seconds", pa.float64()),
                                 ("captions", pa.list_(pa.string())), ("piece_id", pa.string()),
                                 ("attributes", pa.string())]),
    "conversations": pa.schema(COMMON + [("script", pa.string()), ("turns", pa.string()),
                                         ("media", pa.list_(MEDIA)), ("attributes", pa.string())]),
}
# Shards stay around 100-300 MB whatever the kind: audio rows are large, image rows small.
ROWS_PER_SHARD = {"images": 5000, "speech": 1000, "music": 300, "conversations": 200}
COMPRESSION = "zstd"  # WAV compresses a little; PNG bytes pass through almost unchanged


def describe_schema(kind: str) -> dict[str, str]:
    return {field.name: str(field.type) for field in SCHEMAS[kind]}


class ShardWriter:
    """Collects the rows of one (kind, split) and writes them as numbered shards."""

    def __init__(self, root: Path, kind: str, split: str, rows_per_shard: int | None = None):
        self.root, self.kind, self.split = root, kind, split
        self.rows_per_shard = rows_per_shard or ROWS_PER_SHARD[kind]
        self.pending: list[dict] = []
        self.shards: list[dict] = []

    def add(self, row: dict) -> None:
        self.pending.append(row)
        if len(self.pending) >= self.rows_per_shard:
            self._flush()

    def close(self) -> list[dict]:
        if self.pending:
            self._flush()
        return self.shards

    def _flush(self) -> None:
        relative = Path(self.kind) / f"{self.split}-{len(self.shards):05d}.parquet"
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist(self.pending, schema=SCHEMAS[self.kind])
        pq.write_table(table, path, compression=COMPRESSION, row_group_size=len(self.pending))
        self.shards.append({"path": relative.as_posix(), "rows": len(self.pending), "bytes": path.stat().st_size,
                            "sha256": _sha256(path)})
        self.pending = []


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
