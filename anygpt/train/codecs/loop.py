"""The training loop shared by the small-codec recipes: checkpoint, resume, progress, metrics, loss plot.

    OUT/checkpoints/      step-N/ (training.pt: every tensor of the model, EMA buffers too, the
                          optimizer, RNG; trainer_state.json: the step), `latest` (anygpt.train.checkpoint)
    OUT/metrics.jsonl     one line per step: {"step": 12, "loss": ..., "lr": ..., "seconds": ...}
    OUT/loss.png          every logged curve against the step (matplotlib, Agg)
    OUT/config.json       the resolved recipe configuration
    OUT/export/           codec.json ({"name", "modality", "config"}) + weights.safetensors (export.py)

Resuming is exact because nothing random is carried from step to step: step s draws its batch and
any model randomness (codebook restarts, masks) from generators seeded by (seed, s), and its
learning rate is a function of s (anygpt.train.schedule). A run stopped at a checkpoint and
restarted reproduces the losses of an uninterrupted one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from anygpt.train import checkpoint, schedule
from anygpt.train.metrics import Metrics, plot_panels, read_metrics

LR_FLOOR = 0.1  # the cosine decays to lr / 10
CHECKPOINT = "checkpoints/latest"  # names the newest OUT/checkpoints/step-N/
PLOT = "loss.png"


@dataclass
class LoopSpec:
    out: Path
    steps: int
    lr: float = 1e-3
    warmup: int = 50  # linear warm-up steps, then cosine decay to lr * LR_FLOOR
    save_every: int = 200
    seed: int = 0
    resume: bool = True
    stop_after: int | None = None  # leave after this many steps of this process (tests an interruption)
    progress: bool = True
    clip_grad: float = 1.0


def step_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step) % (2**63)


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(step_seed(seed, step))


def step_rng(seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng([seed, step])


def lr_at(step: int, spec: LoopSpec) -> float:
    return schedule.lr_at(step, lr=spec.lr, steps=spec.steps, warmup=spec.warmup, floor=LR_FLOOR)


def saved_step(out: str | Path) -> int:
    """The step of OUT's latest checkpoint (0: none)."""
    ckpt = checkpoint.latest(out)
    return int(checkpoint.read_state(ckpt)["step"]) if ckpt is not None else 0


def train_loop(
    model: nn.Module,
    step_fn: Callable[[int, float], dict[str, float]],
    spec: LoopSpec,
    *,
    optimizer: torch.optim.Optimizer,
    config: dict,
    title: str = "",
) -> list[dict]:
    """Run steps [start, spec.steps) of `step_fn(step, lr) -> {name: float}` (it does the forward,
    backward and optimizer step itself; the optimizer's groups are set to lr beforehand), resuming
    from OUT's latest checkpoint when there is one. Returns the metrics of the steps run here."""
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint.write_text(out / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
    start = 0
    ckpt = checkpoint.latest(out) if spec.resume else None
    if ckpt is not None:
        start = int(checkpoint.load_training(ckpt, model, optimizer)["step"])
        print(f"resuming from {ckpt} at step {start}")
    metrics = Metrics(out, resume_step=start - 1 if ckpt is not None else None,
                      progress=spec.steps if spec.progress else None, initial=start, title=title)

    def save(step: int) -> None:
        checkpoint.save(out, step, {"config": json.dumps(config)},
                        lambda folder: checkpoint.save_training(folder, model, optimizer), keep=1)

    done: list[dict] = []
    t0 = time.perf_counter()
    model.train()
    step = start
    while step < spec.steps:
        if spec.stop_after is not None and step - start >= spec.stop_after:
            break
        lr = lr_at(step, spec)
        schedule.set_lr(optimizer, lr)
        row = {"step": step, **{k: float(v) for k, v in step_fn(step, lr).items()}, "lr": lr,
               "seconds": round(time.perf_counter() - t0, 3)}
        metrics.log(row)
        done.append(row)
        step += 1
        if step % spec.save_every == 0 or step == spec.steps:
            save(step)
    metrics.close()
    model.eval()
    if step > start and step % spec.save_every and step != spec.steps:  # interrupted: keep what was done
        save(step)
    if read_metrics(out):
        plot_panels(out, title, PLOT)
    return done


def clip_and_step(loss: torch.Tensor, params: list[torch.Tensor], optimizer: torch.optim.Optimizer,
                  clip: float) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(params, clip)
    optimizer.step()
