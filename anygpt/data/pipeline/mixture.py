"""Stage 2b: unit shards of several datasets -> one mixture of samples, by token budget.

Each dataset gets `rate / sum(rates)` of `budget_tokens` (the paper's Table 7 "sample rate"). A
dataset smaller than its share is oversampled: its units are drawn again in a fresh shuffled order
(each drawing gets a new direction and instruction), one larger is cut short. Samples of all
datasets are interleaved at random in proportion to the rates, so any window of the output is a
small copy of the whole mixture. A fixed share of units (by a hash of their key, so stable across
runs and budgets) is held out for validation, where each pair appears once in each direction.

    [mixture]                     [[datasets]]
    seed = 0                      name = "captions"
    budget_tokens = 2_000_000     units = "shards/captions"   # a unit shard folder (relative to the file)
    val_fraction = 0.05           rate = 0.3
    base_format = "base"          to_text = 0.5               # P(modality -> text) for its pairs
                                  style = "base"              # or "task": pairs as the six task chats
    chat_format = "mmgpt"         # default: the bundle's chat format
"""

from __future__ import annotations

import random
import sys
import tomllib
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

from anygpt.data.pipeline import shards
from anygpt.data.pipeline.samples import Sample, SampleBuilder
from anygpt.errors import AnyGPTError


@dataclass
class DatasetSpec:
    name: str
    units: str  # unit shard folder
    rate: float = 1.0  # share of the token budget (relative to the other datasets)
    to_text: float = 0.5  # probability that a pair becomes modality -> text
    style: str = "base"  # pairs: "base" pretraining templates, or "task": one chat turn with the task prompt

    def __post_init__(self):
        if self.rate < 0 or not 0.0 <= self.to_text <= 1.0:
            raise AnyGPTError(f"dataset {self.name}: rate must be >= 0 and to_text in [0, 1]")
        if self.style not in ("base", "task"):
            raise AnyGPTError(f"dataset {self.name}: style must be 'base' or 'task', not {self.style!r}")


@dataclass
class MixConfig:
    datasets: list[DatasetSpec]
    seed: int = 0
    budget_tokens: int = 0  # 0: one pass over every dataset (rates are then not used)
    val_fraction: float = 0.05
    val_max_units: int = 200  # per dataset
    base_format: str = "base"
    chat_format: str = ""  # "": the bundle's chat format (see run_mix), else a format name
    shard_rows: int = 4096

    @classmethod
    def from_toml(cls, path: str | Path) -> MixConfig:
        path = Path(path)
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        top = raw.get("mixture", {})
        datasets = []
        for d in raw.get("datasets", []):
            d = dict(d)
            units = Path(d["units"])
            d["units"] = str(units if units.is_absolute() else path.parent / units)
            datasets.append(DatasetSpec(**d))
        if not datasets:
            raise AnyGPTError(f"{path}: no [[datasets]]")
        return cls(datasets=datasets, **top)

    def to_dict(self) -> dict:
        return asdict(self)


def is_val(key: str, fraction: float) -> bool:
    return zlib.crc32(key.encode("utf-8")) % 100_000 < fraction * 100_000


class _Source:
    """One dataset's units, drawn in shuffled epochs."""

    def __init__(self, spec: DatasetSpec, rows: list[dict], seed: int):
        self.spec, self.rows = spec, rows
        self.rng = random.Random(f"{seed}:{spec.name}")
        self.order: list[int] = []
        self.drawn = 0
        self.tokens = 0
        self.samples = 0

    def next_row(self) -> dict:
        if not self.order:
            self.order = list(range(len(self.rows)))
            self.rng.shuffle(self.order)
        self.drawn += 1
        return self.rows[self.order.pop()]

    @property
    def epochs(self) -> float:
        return self.drawn / max(len(self.rows), 1)


def _sample_row(s: Sample, key: str, dataset: str) -> dict:
    return {"key": key, "dataset": dataset, "tag": s.tag, "input_ids": s.ids, "roles": s.roles}


class _Writer:
    def __init__(self, folder: Path, rows_per_shard: int):
        self.folder, self.n = folder, rows_per_shard
        self.buf: list[dict] = []
        self.index = 0
        self.files: list[dict] = []

    def add(self, row: dict) -> None:
        self.buf.append(row)
        if len(self.buf) >= self.n:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            shards.write_shard(self.folder, self.index, self.buf, shards.SAMPLES, {})
            self.files.append({"file": f"{shards.shard_name(self.index)}.parquet", "rows": len(self.buf)})
            self.index, self.buf = self.index + 1, []


def _token_modalities(ids: list[int], layout) -> dict[str, int]:
    """How many ids of a sample are text, and how many belong to each modality (codes + start/end)."""
    out = {"text": 0}
    bounds = [(m.first_id, m.end_id, name) for name, m in layout.modalities.items()]
    for i in ids:
        for lo, hi, name in bounds:
            if lo <= i <= hi:
                out[name] = out.get(name, 0) + 1
                break
        else:
            out["text"] += 1
    return out


def run_mix(cfg: MixConfig, tokenizer, layout, out: str | Path, *, quiet: bool = False,
            default_chat_format: str = "mmgpt") -> dict:
    """Write `out/train` and `out/val` sample folders and `out/report.json`; return the report.
    Chats use `cfg.chat_format`, or `default_chat_format` (give the bundle's) when it is empty."""
    out = Path(out)
    cfg.chat_format = cfg.chat_format or default_chat_format
    builder = SampleBuilder(tokenizer, layout, cfg.base_format, cfg.chat_format)
    sources, val_rows = [], []
    for spec in cfg.datasets:
        rows = shards.read_table(spec.units, "units").to_pylist()
        train = [r for r in rows if not is_val(r["key"], cfg.val_fraction)]
        val = [r for r in rows if is_val(r["key"], cfg.val_fraction)][: cfg.val_max_units]
        if not train:
            raise AnyGPTError(f"dataset {spec.name}: no training units in {spec.units}")
        sources.append(_Source(spec, train, cfg.seed))
        val_rows.append((spec, val))

    total_rate = sum(s.spec.rate for s in sources) or 1.0
    budget = {s.spec.name: cfg.budget_tokens * s.spec.rate / total_rate for s in sources}
    rng = random.Random(cfg.seed)
    writer = _Writer(out / "train", cfg.shard_rows)
    by_tag: dict[str, int] = {}
    by_modality: dict[str, int] = {}
    skipped = 0

    def active(s: _Source) -> bool:
        if cfg.budget_tokens:
            return s.tokens < budget[s.spec.name] and s.spec.rate > 0
        return s.drawn < len(s.rows)

    live = [s for s in sources if active(s)]
    while live:
        s = rng.choices(live, weights=[max(x.spec.rate, 1e-9) for x in live])[0]
        row = s.next_row()
        try:
            sample = builder.from_row(row, rng, s.spec.to_text, style=s.spec.style)
        except AnyGPTError:
            skipped += 1  # e.g. a role token inside data text
            if s.samples == 0 and s.drawn > 100:
                raise
        else:
            writer.add(_sample_row(sample, row["key"], s.spec.name))
            s.tokens += len(sample)
            s.samples += 1
            by_tag[sample.tag] = by_tag.get(sample.tag, 0) + len(sample)
            for k, v in _token_modalities(sample.ids, layout).items():
                by_modality[k] = by_modality.get(k, 0) + v
        live = [x for x in live if active(x)]
    writer.flush()

    vwriter = _Writer(out / "val", cfg.shard_rows)
    val_rng = random.Random(f"{cfg.seed}:val")
    for spec, rows in val_rows:
        for row in rows:
            directions = ("to_text", "from_text") if row["kind"] == "pair" else (None,)
            for d in directions:
                try:
                    sample = builder.from_row(row, val_rng, direction=d, style=spec.style)
                    vwriter.add(_sample_row(sample, row["key"], spec.name))
                except AnyGPTError:
                    skipped += 1
    vwriter.flush()

    total = sum(s.tokens for s in sources) or 1
    report = {
        "budget_tokens": cfg.budget_tokens,
        "tokens": total,
        "samples": sum(s.samples for s in sources),
        "skipped": skipped,
        "datasets": {s.spec.name: {"units": len(s.rows), "samples": s.samples, "tokens": s.tokens,
                                   "share": s.tokens / total, "target_share": s.spec.rate / total_rate
                                   if cfg.budget_tokens else None, "epochs": round(s.epochs, 3)}
                     for s in sources},
        "by_tag": {k: {"tokens": v, "share": v / total} for k, v in sorted(by_tag.items())},
        "by_token_modality": {k: {"tokens": v, "share": v / total} for k, v in sorted(by_modality.items())},
        "val_samples": sum(f["rows"] for f in vwriter.files),
    }
    common = {"stage": "samples", "mixture": cfg.to_dict(), "vocab_size": layout.vocab_size}
    shards.write_manifest(out / "train", {**common, "split": "train", "shards": writer.files, "report": report})
    shards.write_manifest(out / "val", {**common, "split": "val", "shards": vwriter.files})
    shards.write_json(report, out / "report.json")
    if not quiet:
        print(format_report(report), file=sys.stderr)
    return report


def format_report(report: dict) -> str:
    lines = [f"mixture: {report['samples']} samples, {report['tokens']:,} tokens "
             f"(budget {report['budget_tokens']:,}), {report['val_samples']} validation samples"]
    lines.append(f"  {'dataset':20s} {'units':>7s} {'samples':>8s} {'tokens':>10s} {'share':>7s} {'target':>7s} {'epochs':>7s}")
    for name, d in report["datasets"].items():
        target = f"{d['target_share']:.3f}" if d["target_share"] is not None else "-"
        lines.append(f"  {name:20s} {d['units']:7d} {d['samples']:8d} {d['tokens']:10,d} {d['share']:7.3f} "
                     f"{target:>7s} {d['epochs']:7.2f}")
    lines.append("  by template: " + ", ".join(f"{k} {v['share']:.3f}" for k, v in report["by_tag"].items()))
    lines.append("  by token:    " + ", ".join(f"{k} {v['share']:.3f}" for k, v in report["by_token_modality"].items()))
    return "\n".join(lines)
