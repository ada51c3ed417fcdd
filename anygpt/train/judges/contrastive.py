"""Train the CLIP and CLAP analogs (anygpt.eval.judges.contrastive): symmetric InfoNCE, a learnt
temperature, each step pairing every item with one of its captions drawn at random.

    clip   fresh scene renders and their captions, media features from the trained image judge
    clap   the world's music train split (music_split_features, shared with the music judge's training)
"""

from __future__ import annotations

import random
import time

import numpy as np
import torch

from anygpt.eval.judges.checkpoint import save_module
from anygpt.eval.judges.contrastive import (
    WEIGHTS,
    ContrastiveConfig,
    build_contrastive,
    build_vocab,
    encode_texts,
    image_features,
    retrieval_top1,
)
from anygpt.eval.judges.image import ImageJudge
from anygpt.eval.judges.music import FEATURE_DIM, music_features, to_feature_rate
from anygpt.train.judges.image import render_training_scenes
from anygpt.train.metrics import Metrics
from anygpt.train.schedule import lr_at, set_lr
from anygpt.world import caption_scene, iter_items


def fit(config: ContrastiveConfig, features, captions_per_item: list[list[str]], vocab: list[str], seed: int,
         epochs: int, batch: int = 128, lr: float = 2e-3, log=print):
    """Contrastive training; each step pairs every item with one of its captions, drawn at random."""
    torch.manual_seed(seed)
    model = build_contrastive(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    n = len(features)
    steps, step = epochs * max(1, n // batch), 0
    metrics = Metrics(None, echo=log, title=config.kind)
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(n)
        total = 0.0
        for b in range(max(1, n // batch)):
            idx = order[b * batch:(b + 1) * batch]
            texts = [captions_per_item[i][rng.integers(len(captions_per_item[i]))] for i in idx]
            loss = model.loss(features[torch.from_numpy(idx)], encode_texts(texts, vocab))
            set_lr(optimizer, lr_at(step, lr=lr, steps=steps))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            step += 1
        if (epoch + 1) % max(1, epochs // 5) == 0:
            metrics.log({"step": step, "epoch": epoch + 1, "loss": total / max(1, n // batch)})
    return model.eval()


def held_out_top1(model, features, captions: list[str], vocab: list[str]) -> float:
    with torch.inference_mode():
        return retrieval_top1(model.embed_media(features), model.text(encode_texts(captions, vocab)), captions)


def train_clip(out, seed: int, n_scenes: int = 8_000, epochs: int = 30, log=print) -> dict:
    start = time.monotonic()
    image_model = ImageJudge.load(out).model
    images, attributes = render_training_scenes(n_scenes, random.Random(seed + 2))
    held_images, held_attributes = render_training_scenes(500, random.Random(seed + 3))
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    features = image_features(image_model, x)
    held = image_features(image_model, torch.from_numpy(held_images).permute(0, 3, 1, 2).float() / 255.0)
    captions = [caption_scene(a) for a in attributes]
    vocab = build_vocab([c for cs in captions for c in cs])
    config = ContrastiveConfig(kind="clip", media_dim=features.shape[1], vocab_size=len(vocab))
    log(f"clip: {n_scenes} scenes and features in {time.monotonic() - start:.0f} s, vocab {len(vocab)}")
    model = fit(config, features, captions, vocab, seed, epochs, log=log)
    top1 = held_out_top1(model, held, [caption_scene(a)[0] for a in held_attributes], vocab)
    save_module(model, config, out / WEIGHTS["clip"], extra={"vocab": vocab, "seed": seed})
    return {"seconds": round(time.monotonic() - start), "held_out_render_top1_of_500": top1}


def music_split_features(world, split: str, limit: int | None = None):
    """(features (N, FEATURE_DIM), captions per clip, attributes) of a world's music split."""
    feats, captions, attributes = [], [], []
    for i, item in enumerate(iter_items(world, "music", split)):
        if limit is not None and i >= limit:
            break
        feats.append(music_features(to_feature_rate(item["waveform"], item["sample_rate"])))
        captions.append(list(item["captions"]))
        attributes.append(item["attributes"])
    return torch.from_numpy(np.stack(feats)), captions, attributes


def train_clap(world, out, seed: int, epochs: int = 60, log=print, cache: dict | None = None) -> dict:
    start = time.monotonic()
    features, captions, _ = cache["train"] if cache else music_split_features(world, "train")
    vocab = build_vocab([c for cs in captions for c in cs])
    config = ContrastiveConfig(kind="clap", media_dim=FEATURE_DIM, vocab_size=len(vocab))
    model = fit(config, features, captions, vocab, seed, epochs, batch=64, log=log)
    report = {"seconds": round(time.monotonic() - start), "train_clips": len(features)}
    save_module(model, config, out / WEIGHTS["clap"], extra={"vocab": vocab, "seed": seed})
    return report
