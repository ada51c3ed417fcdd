"""The learning-rate schedule of every trainer here (the LLM, the small codecs, the judges).

    lr
    |   /'''--..
    |  /        ''-.
    | /             '-._
    |/                  ''--..______ lr * floor
    +---------------------------------> step
     0  warmup                    steps

Linear warm-up over `warmup` steps (step s gets lr * (s + 1) / warmup), then a half cosine from lr
down to lr * floor at `steps`. A pure function of the step, so a resumed run reproduces the rates of
an uninterrupted one.
"""

from __future__ import annotations

import math


def lr_at(step: int, *, lr: float, steps: int, warmup: int = 0, floor: float = 0.0) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def set_lr(optimizer, lr: float) -> None:
    """Every parameter group at `lr` (times its "lr_scale", when it has one)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
