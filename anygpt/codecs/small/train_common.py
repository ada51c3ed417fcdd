"""The training loop shared by the four small-codec recipes: checkpoint, resume, progress, metrics,
loss plot, export.

    OUT/checkpoint.pt     every tensor of the model (EMA buffers too), the optimizer, the step;
                          written to a temporary file, then renamed (a crash never leaves half a file)
    OUT/metrics.jsonl     one line per step: {"step": 12, "loss": ..., "lr": ..., "seconds": ...}
    OUT/loss.png          every logged curve against the step (matplotlib, Agg)
    OUT/config.json       the resolved recipe configuration
    OUT/export/           codec.json ({"name", "modality", "config"}) + weights.safetensors

Resuming is exact because nothing random is carried from step to step: step s draws its batch and
any model randomness (codebook restarts, masks) from generators seeded by (seed, s), and its
learning rate is a function of s. A run stopped at a checkpoint and restarted reproduces the
losses of an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
PLOT = "loss.png"
EXPORT = "export"
CODEC_JSON = "codec.json"
WEIGHTS = "weights.safetensors"


@dataclass
class LoopSpec:
    out: Path
    steps: int
    lr: float = 1e-3
    warmup: int = 50  # linear warm-up steps, then cosine decay to lr / 10
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
    if step < spec.warmup:
        return spec.lr * (step + 1) / spec.warmup
    progress = (step - spec.warmup) / max(1, spec.steps - spec.warmup)
    return spec.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def full_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer, non-persistent ones (EMA statistics) included."""
    state = {name: p.detach().clone() for name, p in model.named_parameters()}
    state.update({name: b.detach().clone() for name, b in model.named_buffers()})
    return state


@torch.no_grad()
def load_full_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    own = dict(model.named_parameters()) | dict(model.named_buffers())
    missing = sorted(set(own) - set(state))
    if missing:
        raise ValueError(f"checkpoint lacks {missing[:3]} ({len(missing)} tensors)")
    for name, t in own.items():
        t.copy_(state[name])


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_metrics(out: Path) -> list[dict]:
    path = Path(out) / METRICS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_metrics(out: Path, title: str = "") -> Path:
    """OUT/metrics.jsonl -> OUT/loss.png, one panel per logged quantity (lr and timing left out)."""
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
        if len(values) >= 20:  # a running mean over 5 % of the run shows the trend
            w = max(2, len(values) // 20)
            smooth = np.convolve(values, np.ones(w) / w, mode="valid")
            ax.plot(steps[w - 1 :], smooth, lw=1.2)
        ax.set_title(key)
        ax.set_xlabel("step")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(out) / PLOT
    tmp = path.with_name("loss.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)
    return path


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
    backward and optimizer step itself), resuming from OUT/checkpoint.pt when there is one.
    Returns the metrics of the steps run here."""
    from tqdm import tqdm

    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic_text(out / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
    start = 0
    ckpt = out / CHECKPOINT
    if spec.resume and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        load_full_state(model, state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
        kept = [r for r in read_metrics(out) if r["step"] < start]  # drop steps after the checkpoint
        _write_atomic_text(out / METRICS, "".join(json.dumps(r) + "\n" for r in kept))
        print(f"resuming from {ckpt} at step {start}")
    elif (out / METRICS).exists():
        (out / METRICS).unlink()

    done: list[dict] = []
    t0 = time.perf_counter()
    bar = tqdm(total=spec.steps, initial=start, disable=not spec.progress, desc=title or "train", dynamic_ncols=True)
    model.train()
    step = start
    with open(out / METRICS, "a", encoding="utf-8") as log:
        while step < spec.steps:
            if spec.stop_after is not None and step - start >= spec.stop_after:
                break
            lr = lr_at(step, spec)
            for group in optimizer.param_groups:
                group["lr"] = lr
            metrics = step_fn(step, lr)
            row = {"step": step, **{k: float(v) for k, v in metrics.items()}, "lr": lr,
                   "seconds": round(time.perf_counter() - t0, 3)}
            log.write(json.dumps(row) + "\n")
            log.flush()
            done.append(row)
            step += 1
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items()}, refresh=False)
            if step % spec.save_every == 0 or step == spec.steps:
                _atomic_save({"step": step, "model": full_state(model), "optimizer": optimizer.state_dict(),
                              "config": json.dumps(config)}, ckpt)
    bar.close()
    model.eval()
    if step > start and step % spec.save_every and step != spec.steps:  # interrupted: keep what was done
        _atomic_save({"step": step, "model": full_state(model), "optimizer": optimizer.state_dict(),
                      "config": json.dumps(config)}, ckpt)
    if read_metrics(out):
        plot_metrics(out, title)
    return done


def clip_and_step(loss: torch.Tensor, params: list[torch.Tensor], optimizer: torch.optim.Optimizer,
                  clip: float) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(params, clip)
    optimizer.step()


# ---------------------------------------------------------------------------------------------
# Export: a codec directory loadable through the registry (and a bundle's CodecSlot)


def export_codec(codec: nn.Module, name: str, out: str | Path, dtype: str = "float16") -> Path:
    """Write OUT/codec.json and OUT/weights.safetensors (the persistent state dict, cast to `dtype`:
    float16 halves the size; loading casts back to the codec's float32)."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cast = {"float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    state = {k: (v.to(cast) if v.is_floating_point() else v).contiguous() for k, v in codec.state_dict().items()}
    tmp = out / (WEIGHTS + ".tmp")
    save_file(state, str(tmp), metadata={"codec": name})
    os.replace(tmp, out / WEIGHTS)
    manifest = {"name": name, "modality": codec.modality, "config": codec.config(), "weights": WEIGHTS,
                "dtype": dtype}
    _write_atomic_text(out / CODEC_JSON, json.dumps(manifest, indent=2) + "\n")
    return out


def load_codec_dir(path: str | Path):
    """A directory written by export_codec -> the codec, built through the registry, weights loaded."""
    from safetensors.torch import load_file

    import anygpt.codecs.small.audio
    import anygpt.codecs.small.image  # noqa: F401  (registers small-image)
    from anygpt.codecs.base import build_codec

    path = Path(path)
    manifest = json.loads((path / CODEC_JSON).read_text(encoding="utf-8"))
    codec = build_codec(manifest["name"], manifest["config"])
    codec.load_state_dict(load_file(str(path / manifest.get("weights", WEIGHTS))), strict=True)
    return codec.eval()


def ship_codecs(exports: dict[str, str | Path], bundle_dir: str | Path, base: str | Path | None = None) -> Path:
    """Copy trained exports {modality: export dir} into BUNDLE/codecs/<modality>.safetensors and write
    BUNDLE/codecs/codecs.json ({modality: {name, config, weights}}, the codecs section of a manifest).
    `base`: a bundle directory whose shipped codecs (its codecs/codecs.json) fill the modalities not in
    `exports` (a codecs-only bundle to evaluate one new codec beside the others).
    Returns the codecs directory. Each export is loaded first, so a broken one is refused."""
    import shutil

    codecs_dir = Path(bundle_dir) / "codecs"
    codecs_dir.mkdir(parents=True, exist_ok=True)
    entries = {}
    if base is not None:
        shipped = json.loads((Path(base) / "codecs" / "codecs.json").read_text(encoding="utf-8"))
        for modality, entry in shipped.items():
            if modality not in exports:
                shutil.copyfile(Path(base) / entry["weights"], Path(bundle_dir) / entry["weights"])
                entries[modality] = entry
    for modality, export in exports.items():
        export = Path(export)
        manifest = json.loads((export / CODEC_JSON).read_text(encoding="utf-8"))
        codec = load_codec_dir(export)
        if codec.modality != modality:
            raise ValueError(f"{export}: a {codec.modality} codec, not {modality}")
        rel = f"codecs/{modality}.safetensors"
        shutil.copyfile(export / manifest.get("weights", WEIGHTS), Path(bundle_dir) / rel)
        entries[modality] = {"name": manifest["name"], "config": manifest["config"], "weights": rel}
    _write_atomic_text(codecs_dir / "codecs.json", json.dumps(entries, indent=2) + "\n")
    return codecs_dir
