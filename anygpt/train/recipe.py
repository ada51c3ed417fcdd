"""Training configuration: one typed dataclass, recipes as TOML files, overrides as KEY=VALUE.

The defaults are the paper's Table 8 (Adam, cosine schedule, 3 % warmup, gradient clipping 1.0,
rows of 4500 tokens); the shipped recipes set the stage-specific values (peak lr 6e-5 for
pretraining, 2e-5 for instruction tuning, loss only on assistant tokens when tuning).
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path

from anygpt.errors import AnyGPTError
from anygpt.settings import parse_assignments


@dataclass
class TrainConfig:
    stage: str = "pretrain"  # a label: "pretrain", "instruct", ...
    bundle: str = "debug"  # start from this bundle (a built-in name or a folder)
    data: str = ""  # a packed folder, or a mixture .toml (mixed and packed into out/data first)
    val_data: str = ""  # a packed folder; default: the mixture's validation split
    out: str = "runs/train"
    # batches
    max_len: int = 4500  # packed row length (Table 8 "max length")
    micro_batch: int = 1  # rows per process per forward pass
    grad_accum: int = 1  # forward passes per optimizer step
    steps: int = 0  # optimizer steps; 0: derived from epochs
    epochs: float = 1.0
    # optimisation (Table 8)
    lr: float = 6e-5  # peak learning rate
    min_lr_ratio: float = 0.0  # cosine decays to lr * min_lr_ratio
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0  # 0: AdamW is Adam
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0
    loss_on: str = "all"  # "all" tokens of each document, or "assistant" tokens only
    # precision and speed
    precision: str = "auto"  # "no" (fp32), "bf16", "fp16"; "auto": the accelerate config's (else fp32)
    compile: str = "auto"  # "auto" (on for CUDA only), "on", "off"
    isolation: str = "auto"  # "mask" (block-diagonal 4D mask), "varlen" (flash attention), "auto"
    attn_implementation: str = ""  # e.g. "flash_attention_2"; "" keeps the bundle's
    # what trains
    finetune: str = "full"  # "full" or "lora"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj",
                                                             "gate_proj", "up_proj", "down_proj"])
    train_new_rows: bool = True  # LoRA: the added vocabulary rows (embedding and output) train too
    # before training: a tonal music codec's layer-1 rows replaced by their instrument + pitch-class
    # fit (train/embeddings.py)
    tonal_fit: bool = False
    # bookkeeping
    seed: int = 0
    log_every: int = 1
    eval_every: int = 0  # 0: only at the start and the end
    eval_max_rows: int = 64  # validation rows per evaluation (all processes together)
    gap_pairs: int = 8  # validation pairs per direction for the conditioning gap (train/conditioning.py); 0: off
    save_every: int = 0  # 0: only at the end
    keep_checkpoints: int = 2
    resume: bool = True  # continue from out/checkpoints/latest when it exists
    export: bool = True  # write the final model as a bundle folder (out/bundle)
    tensorboard: bool = True
    stop_after: int = 0  # stop (as if killed) after this many steps in this run: for resume tests

    def __post_init__(self):
        checks = {"loss_on": ("all", "assistant"), "precision": ("auto", "no", "bf16", "fp16"),
                  "compile": ("auto", "on", "off"), "isolation": ("auto", "mask", "varlen"),
                  "finetune": ("full", "lora")}
        for name, allowed in checks.items():
            if getattr(self, name) not in allowed:
                raise AnyGPTError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.micro_batch < 1 or self.grad_accum < 1 or self.max_len < 2:
            raise AnyGPTError("micro_batch, grad_accum must be >= 1 and max_len >= 2")
        if self.gap_pairs < 0 or self.gap_pairs == 1:
            raise AnyGPTError(f"gap_pairs must be 0 (off) or at least 2, got {self.gap_pairs}")

    def to_dict(self) -> dict:
        return asdict(self)


def recipe_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(__package__).joinpath("recipes").iterdir()
                  if p.name.endswith(".toml"))


def _recipe_text(name_or_path: str) -> str:
    p = Path(name_or_path)
    if p.suffix == ".toml" and p.is_file():
        return p.read_text(encoding="utf-8")
    f = resources.files(__package__).joinpath("recipes", f"{name_or_path}.toml")
    if not f.is_file():
        raise AnyGPTError(f"unknown recipe {name_or_path!r}: not a .toml file and not one of {recipe_names()}")
    return f.read_text(encoding="utf-8")


def load_recipe(name_or_path: str = "pretrain", overrides: dict | None = None,
                sets: list[str] | None = None) -> TrainConfig:
    """A recipe, then `overrides` (typed values), then `sets` ("key=value" strings)."""
    raw = tomllib.loads(_recipe_text(name_or_path))
    types = {f.name: f.type for f in fields(TrainConfig)}
    unknown = set(raw) - set(types)
    if unknown:
        raise AnyGPTError(f"recipe {name_or_path!r} has unknown keys {sorted(unknown)}")
    values = dict(raw)
    for k, v in (overrides or {}).items():
        if k not in types:
            raise AnyGPTError(f"unknown training setting {k!r}")
        if v is not None:
            values[k] = v
    values.update(parse_assignments(sets or [], TrainConfig, what="training setting"))
    return TrainConfig(**values)
