"""A small-codec recipe's settings, and what every recipe does with them around its loop.

    TrainConfig            the settings (`anygpt codecs train KIND --steps ... --set key=value`)
    default_config(kind)   what a full run of KIND uses, overridden
    loop_spec(cfg)         -> loop.LoopSpec; run_config -> OUT/config.json; export_run -> OUT/export/
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from anygpt.errors import AnyGPTError
from anygpt.train.codecs import loop
from anygpt.train.codecs.export import EXPORT, export_codec

KINDS = ("image", "scene", "speech", "music", "soundstorm", "voice", "durations")
CODEC_NAMES = {"image": "small-image", "scene": "small-scene", "speech": "small-speech", "music": "small-music",
               "soundstorm": "small-speech", "voice": "small-speech", "durations": "small-speech"}
# the modality of the codec each recipe trains (its items: the world kind anygpt.world.kind_of names)
MODALITY = {"image": "image", "scene": "image", "speech": "speech", "music": "music", "soundstorm": "speech",
            "voice": "speech", "durations": "speech"}


@dataclass
class TrainConfig:
    """A recipe's settings; `codec` holds the codec's constructor arguments (soundstorm: the path of
    a trained small-speech export instead)."""

    kind: str
    out: str
    steps: int
    batch: int
    lr: float
    warmup: int = 50
    save_every: int = 200
    seed: int = 0
    split: str = "train"
    max_items: int | None = None  # read at most this many world items (None: all)
    crop_seconds: float = 2.0  # speech, music: training crop (shorter clips are padded)
    content_weight: float = 1.0  # speech: phone cross-entropy of the layer-1 content head
    mel_weight: float = 0.0  # speech, music: L1 of log mel-band power of the predicted magnitudes
    commit_weight: float = 0.25
    max_frames: int = 250  # soundstorm, voice: longest training sequence (5 s)
    vq_warmup: int = 0  # speech, music: steps that skip quantization before the codebooks are seeded
    export_dtype: str = "float16"
    init_from: str = ""  # speech: a trained export whose layer 1 (content encoder, codebook, head) is kept frozen;
    # music: a trained export whose codes are kept (encoder, layer 1, codebooks frozen): the decoder trains
    codec: dict | str = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULTS: dict[str, dict[str, Any]] = {  # per kind: steps, batch, lr (what a full run uses)
    "image": {"steps": 4000, "batch": 32, "lr": 2e-3},
    "scene": {"steps": 3000, "batch": 32, "lr": 2e-3},
    "speech": {"steps": 2000, "batch": 16, "lr": 1e-3, "crop_seconds": 2.0, "vq_warmup": 200},
    "music": {"steps": 2000, "batch": 16, "lr": 1e-3, "crop_seconds": 2.0, "vq_warmup": 200},
    "soundstorm": {"steps": 3000, "batch": 8, "lr": 1e-3, "max_frames": 150},
    "voice": {"steps": 2000, "batch": 12, "lr": 1e-3, "max_frames": 100},
    "durations": {"steps": 1500, "batch": 32, "lr": 1e-3, "max_frames": 150},
}


def default_config(kind: str, out: str, **overrides: Any) -> TrainConfig:
    if kind not in KINDS:
        raise AnyGPTError(f"unknown codec kind {kind!r}: choose from {', '.join(KINDS)}")
    values = {**DEFAULTS[kind], **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig(kind=kind, out=str(out), **values)


def loop_spec(cfg: TrainConfig, stop_after: int | None, progress: bool, resume: bool) -> loop.LoopSpec:
    spec = loop.LoopSpec(out=Path(cfg.out), steps=cfg.steps, lr=cfg.lr, warmup=min(cfg.warmup, cfg.steps),
                         save_every=cfg.save_every, seed=cfg.seed, stop_after=stop_after, progress=progress)
    spec.resume = resume
    return spec


def adamw(module: torch.nn.Module, cfg: TrainConfig, betas: tuple[float, float],
          weight_decay: float = 0.0) -> tuple[list[torch.nn.Parameter], torch.optim.AdamW]:
    params = [p for p in module.parameters() if p.requires_grad]
    return params, torch.optim.AdamW(params, lr=cfg.lr, betas=betas, weight_decay=weight_decay)


def export_run(codec, cfg: TrainConfig, name: str) -> Path:
    return export_codec(codec, name, Path(cfg.out) / EXPORT, dtype=cfg.export_dtype)


def run_config(cfg: TrainConfig, codec) -> dict:
    return {"train": cfg.to_dict(), "codec": codec.config()}


def finished(cfg: TrainConfig) -> bool:
    """Whether OUT's latest checkpoint is the run's last step (then the recipe exports)."""
    return loop.saved_step(cfg.out) >= cfg.steps


