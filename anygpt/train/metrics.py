"""Metrics of every trainer here: one JSON object per line (the record), a progress bar or log lines
(for watching), TensorBoard scalars, loss plots.

    OUT/metrics.jsonl   {"step": 12, "loss": ..., "lr": ...} per logged step
    OUT/tensorboard/    the same scalars (optional)

A resumed run first drops what the interrupted one logged after its checkpoint: it redoes those steps.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from anygpt.train.checkpoint import atomic_write, write_text

METRICS = "metrics.jsonl"


class Metrics:
    """out: the run folder (None: no file, records only echoed); resume_step: the last step whose
    records stay (None: a fresh run, an old file is removed); progress: total steps for a progress bar
    (records then advance it by one); echo: a function given each record as one line."""

    def __init__(self, out: str | Path | None, *, enabled: bool = True, tensorboard: bool = False,
                 resume_step: int | None = None, progress: int | None = None, initial: int = 0, title: str = "",
                 echo: Callable[[str], object] | None = None):
        self.enabled = enabled
        self.path = Path(out) / METRICS if out is not None else None
        self.writer = self.bar = None
        self.title, self.echo = title, echo
        if not enabled:
            return
        if progress is not None:
            from tqdm import tqdm

            self.bar = tqdm(total=progress, initial=initial, desc=title or "train", dynamic_ncols=True, file=sys.stderr)
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.is_file():
            keep = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
            write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))
        elif resume_step is None and self.path.is_file():
            self.path.unlink()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(Path(out) / "tensorboard"))
            except ImportError:
                self.writer = None

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.writer.add_scalar(k, v, record["step"])
        shown = {k: v for k, v in record.items() if k not in ("step", "lr", "seconds") and isinstance(v, (int, float))}
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in shown.items()}, refresh=False)
        if self.echo is not None:
            self.echo(f"{self.title}: step {record.get('step')} " + " ".join(f"{k} {v:.4f}" for k, v in shown.items()))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.bar is not None:
            self.bar.close()


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a metrics file, or of a run folder's metrics.jsonl ([] when there is none)."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_losses(metrics_path: str | Path, out_png: str | Path) -> Path | None:
    """Training loss per step and validation losses per evaluation, in one PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    records = read_metrics(metrics_path)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [r for r in records if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), label="train", lw=1)
    if val:
        ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", label="validation")
        for key in sorted({k for r in val for k in r if k.startswith("val/")}):
            pts = [(r["step"], r[key]) for r in val if key in r]
            ax.plot(*zip(*pts), "--", lw=0.8, label=key[4:])
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return Path(out_png)


def plot_panels(out: str | Path, title: str = "", name: str = "loss.png") -> Path:
    """OUT/metrics.jsonl -> OUT/loss.png, one panel per logged quantity (lr and timing left out), each
    with a running mean over 5 % of the run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(out)
    keys = [k for k in (rows[0] if rows else {}) if k not in ("step", "lr", "seconds")]
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(3.2 * max(1, len(keys)), 3), squeeze=False)
    steps = [r["step"] for r in rows]
    for ax, key in zip(axes[0], keys):
        values = [r[key] for r in rows]
        ax.plot(steps, values, lw=0.6, alpha=0.4)
        if len(values) >= 20:
            w = max(2, len(values) // 20)
            smooth = np.convolve(values, np.ones(w) / w, mode="valid")
            ax.plot(steps[w - 1 :], smooth, lw=1.2)
        ax.set_title(key)
        ax.set_xlabel("step")
    fig.suptitle(title)
    fig.tight_layout()
    path = atomic_write(Path(out) / name, lambda tmp: fig.savefig(tmp, dpi=80))
    plt.close(fig)
    return path
