"""Train the music judge's family/instrument MLP (anygpt.eval.judges.music) on the world's music
train split, full batch at a constant learning rate (a few hundred clips)."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from anygpt.eval.judges.checkpoint import save_module
from anygpt.eval.judges.music import WEIGHTS_FILE, MusicJudgeConfig, build_family_model, music_classes
from anygpt.train.judges.contrastive import music_split_features
from anygpt.train.metrics import Metrics


def train_family(world, out, seed: int, epochs: int = 300, log=print, cache: dict | None = None) -> dict:
    """Fit the family/instrument MLP on the world's music train split (features computed once)."""
    start = time.monotonic()
    features, _, attributes = cache["train"] if cache else music_split_features(world, "train")
    classes = music_classes()
    family = torch.tensor([classes["family"].index(a["family"]) for a in attributes])
    instrument = torch.tensor([classes["instrument"].index(a["instrument"]) for a in attributes])
    torch.manual_seed(seed)
    config = MusicJudgeConfig()
    model = build_family_model(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-3)
    generator = torch.Generator().manual_seed(seed)
    metrics = Metrics(None, echo=log, title="music")
    for epoch in range(epochs):  # full batch: a few hundred clips
        model.train()
        noisy = features + 0.03 * torch.randn(features.shape, generator=generator)
        fam_logits, ins_logits = model(noisy)
        loss = F.cross_entropy(fam_logits, family) + F.cross_entropy(ins_logits, instrument)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (epoch + 1) % 100 == 0:
            metrics.log({"step": epoch + 1, "loss": float(loss.detach())})
    save_module(model.eval(), config, out / WEIGHTS_FILE, extra={"seed": seed})
    return {"seconds": round(time.monotonic() - start), "train_clips": len(features)}
