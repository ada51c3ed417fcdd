"""Checkpoints of every trainer here, one layout, written atomically:

    OUT/checkpoints/step-0000100/   the training state (model, optimizer, RNG of every process)
                                    + trainer_state.json (step and whatever the trainer adds)
    OUT/checkpoints/latest          "step-0000100"

Every process writes into `.tmp-step-N`; when all are done the main process adds trainer_state.json,
renames the folder to `step-N`, then points `latest` at it. A crash at any moment leaves the previous
checkpoint intact. Who writes the state differs, not the layout: the LLM trainer hands accelerate's
`save_state` (every process's shards and RNG), single-process trainers `save_training` (one file).

`atomic_write` is the one tmp-and-rename of the package's trainers: checkpoints, metrics, exports.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

STATE = "trainer_state.json"
TRAINING = "training.pt"


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """`write(tmp)` a file or folder beside `path` (same suffix, so writers that read it still can),
    then rename it over `path`: readers see the old one or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    if tmp.is_dir():  # left by a crash
        shutil.rmtree(tmp)
    write(tmp)
    if tmp.is_dir() and path.is_dir():  # a folder cannot be renamed over a full one
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def checkpoint_dir(out: str | Path) -> Path:
    return Path(out) / "checkpoints"


def latest(out: str | Path) -> Path | None:
    ck = checkpoint_dir(out)
    pointer = ck / "latest"
    if not pointer.is_file():
        return None
    path = ck / pointer.read_text(encoding="utf-8").strip()
    return path if (path / STATE).is_file() else None


def save(out: str | Path, step: int, state: dict, write: Callable[[Path], object], *, keep: int = 2,
         main: bool = True, barrier: Callable[[], object] = lambda: None) -> Path:
    """OUT/checkpoints/step-N from `write(folder)` (called on every process) and `state` (+ step)."""
    ck = checkpoint_dir(out)
    name = f"step-{step:07d}"
    tmp, final = ck / f".tmp-{name}", ck / name
    if main:
        ck.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    barrier()
    write(tmp)
    barrier()
    if main:
        (tmp / STATE).write_text(json.dumps({**state, "step": step}, indent=1) + "\n", encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        write_text(ck / "latest", name + "\n")
        old = sorted(p for p in ck.glob("step-*") if p.is_dir() and p != final)
        for p in old[: max(0, len(old) - (keep - 1))]:
            shutil.rmtree(p, ignore_errors=True)
    barrier()
    return final


def read_state(path: Path) -> dict:
    return json.loads((Path(path) / STATE).read_text(encoding="utf-8"))


def full_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer, non-persistent ones (EMA statistics) included."""
    state = {name: p.detach().clone() for name, p in model.named_parameters()}
    state.update({name: b.detach().clone() for name, b in model.named_buffers()})
    return state


@torch.no_grad()
def load_full_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    own = dict(model.named_parameters()) | dict(model.named_buffers())
    missing = sorted(set(own) - set(state))
    if missing:
        raise ValueError(f"checkpoint lacks {missing[:3]} ({len(missing)} tensors)")
    for name, t in own.items():
        t.copy_(state[name])


def save_training(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """A single process's training state in FOLDER/training.pt: model (full_state), optimizer, RNG."""
    rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    torch.save({"model": full_state(model), "optimizer": optimizer.state_dict(), "rng": rng}, folder / TRAINING)


def load_training(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Restore what save_training wrote; returns the checkpoint's trainer state."""
    saved = torch.load(Path(folder) / TRAINING, map_location="cpu", weights_only=False)
    load_full_state(model, saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["rng"]["torch"])
    np.random.set_state(saved["rng"]["numpy"])
    random.setstate(saved["rng"]["python"])
    return read_state(folder)
