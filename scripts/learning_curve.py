"""Judge scores against training tokens: the tasks of `anygpt eval` on saved training checkpoints.

    python scripts/learning_curve.py --bundle RUN/instruct/bundle --out curve/ \
        --point RUN/snapshots/instruct-200 --point RUN/snapshots/instruct-400 --point RUN/instruct/bundle \
        [--tasks caption t2i asr] [--limit 40] [--tokens-before 7400000]

Each --point is a checkpoint folder of `anygpt train` (its model.safetensors and trainer_state.json)
or a bundle folder (with the metrics of each stage that made it, *metrics.jsonl); its weights are
loaded into --bundle's model (same shape: tokenizer, layout and codecs come from --bundle). The x axis is the tokens the point was trained on: trainer_state.json's
tokens_seen plus --tokens-before (the earlier stage's tokens), or for a bundle the last tokens count
in the metrics.jsonl files in it or beside it. Writes
curve.json (every figure per point) and curve.png (the main figure of each task against tokens).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from anygpt.eval.command import ensure_world
from anygpt.eval.tasks import TASKS, evaluate, modalities


def point_weights(point: Path) -> tuple[dict, int | None]:
    """(state dict, tokens_seen or None) of a checkpoint folder or a bundle folder."""
    from safetensors.torch import load_file

    state_file = point / "trainer_state.json"
    if state_file.is_file():
        return load_file(str(point / "model.safetensors")), json.loads(state_file.read_text())["tokens_seen"]
    # a bundle holding the metrics of every stage that made it (*metrics.jsonl: the tokens of each add
    # up), or an exported bundle beside its run's metrics
    stages = sorted(point.glob("*metrics.jsonl")) or [point.parent / "metrics.jsonl"]
    counts = []
    for metrics in stages:
        seen = [json.loads(line).get("tokens") for line in metrics.read_text().splitlines()] if metrics.is_file() else []
        counts.append(max((t for t in seen if t is not None), default=None))
    tokens = None if None in counts else sum(counts)
    return load_file(str(point / "llm" / "model.safetensors")), tokens


def main() -> int:
    import torch

    from anygpt.bundles import load_bundle

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bundle", required=True)
    p.add_argument("--point", action="append", required=True, type=Path)
    p.add_argument("--tasks", nargs="+", default=["caption", "t2i", "asr"])
    p.add_argument("--limit", type=int, default=40)
    p.add_argument("--tokens-before", type=int, default=0, help="tokens of the stages before the points' stage")
    p.add_argument("--world", type=Path, default=None)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    bundle = load_bundle(args.bundle)
    world = ensure_world(args.world, modalities(args.tasks))
    rows = []
    for point in args.point:
        state, tokens = point_weights(point)
        bundle.model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
        figures = evaluate(bundle, world, args.tasks, limit=args.limit, offworld=False, conditioning=True)
        row = {"point": str(point), "tokens": None if tokens is None else tokens + args.tokens_before,
               **{t: {k: v for k, v in f.items() if k != "items"} for t, f in figures.items()}}
        rows.append(row)
        print(json.dumps({"point": row["point"], "tokens": row["tokens"],
                          **{t: row[t][TASKS[t].headline] for t in args.tasks}}), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "curve.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    plot(rows, args.tasks, args.out / "curve.png")
    return 0


def plot(rows: list[dict], tasks: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [r["tokens"] / 1e6 for r in rows]
    for t in tasks:
        headline = TASKS[t].headline
        ax.plot(xs, [r[t][headline] for r in rows], marker="o", label=f"{t} {headline}")
    ax.set_xlabel("training tokens (millions)")
    ax.set_ylabel("judge score")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
