"""Train the image attribute judge on fresh scene renders (every colour-shape pair allowed)."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from anygpt.eval.judges.checkpoint import save_module
from anygpt.eval.judges.image import (
    CELL_HEADS,
    IMAGE_SIDE,
    ImageJudge,
    ImageJudgeConfig,
    attribute_accuracy,
    build_model,
    split_cell_logits,
    vocabularies,
)
from anygpt.train.metrics import Metrics
from anygpt.train.schedule import lr_at, set_lr
from anygpt.world import render_scene, sample_scene

WARMUP = 50  # steps


def render_training_scenes(n: int, rng: random.Random) -> tuple[np.ndarray, list[dict]]:
    """n fresh scenes with every colour-shape pair allowed: (n, 64, 64, 3) uint8 and attributes."""
    images, attributes = np.zeros((n, IMAGE_SIDE, IMAGE_SIDE, 3), np.uint8), []
    for i in range(n):
        scene = sample_scene(rng, set(), novel=False)
        images[i] = np.asarray(render_scene(scene, IMAGE_SIDE))
        attributes.append(scene)
    return images, attributes


def scene_targets(attributes: list[dict]):
    """(n, 9, 5) cell targets [present, shape, colour, size, pattern] (-100: no object) and (n, 2)."""
    voc = vocabularies()
    cells = torch.full((len(attributes), len(voc["position"]), 1 + len(CELL_HEADS)), -100, dtype=torch.long)
    cells[..., 0] = 0
    background = torch.zeros((len(attributes), 2), dtype=torch.long)
    for i, scene in enumerate(attributes):
        for obj in scene["objects"]:
            k = voc["position"].index(obj["position"])
            cells[i, k, 0] = 1
            for j, head in enumerate(CELL_HEADS):
                cells[i, k, 1 + j] = voc[head].index(obj[head])
        background[i, 0] = voc["bg_colour"].index(scene["background"]["colour"])
        background[i, 1] = voc["bg_pattern"].index(scene["background"]["pattern"])
    return cells, background


def degrade(images, generator):
    """Light noise and blur, so the judge also reads the slightly soft images a tokenizer gives back."""
    noise = torch.randn(images.shape, generator=generator) * 0.03 * torch.rand((images.shape[0], 1, 1, 1),
                                                                               generator=generator)
    blurred = F.avg_pool2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    mix = (torch.rand((images.shape[0], 1, 1, 1), generator=generator) < 0.3).float() * 0.5
    return (images * (1 - mix) + blurred * mix + noise).clamp(0, 1)


def train_image(out: Path, seed: int, n_scenes: int = 12_000, epochs: int = 5, batch: int = 64,
                lr: float = 3e-3, log=print) -> dict:
    start = time.monotonic()
    torch.manual_seed(seed)
    rng = random.Random(seed)
    images, attributes = render_training_scenes(n_scenes, rng)
    held_images, held_attributes = render_training_scenes(500, random.Random(seed + 1))
    cells, background = scene_targets(attributes)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # (n, 3, 64, 64) uint8
    log(f"image: rendered {n_scenes} scenes in {time.monotonic() - start:.0f} s")

    config = ImageJudgeConfig()
    model = build_model(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    steps = epochs * (n_scenes // batch)
    step = 0
    metrics = Metrics(None, echo=log, title="image")
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(n_scenes, generator=generator)
        total = 0.0
        for b in range(n_scenes // batch):
            idx = order[b * batch:(b + 1) * batch]
            inputs = degrade(x[idx].float() / 255.0, generator)
            cell_logits, bg_logits = model(inputs)
            heads = split_cell_logits(cell_logits)
            target = cells[idx]
            loss = F.binary_cross_entropy_with_logits(heads["present"], target[..., 0].float())
            for j, head in enumerate(("shape", "colour", "size", "pattern")):
                loss = loss + F.cross_entropy(heads[head].flatten(0, 1), target[..., 1 + j].flatten(),
                                              ignore_index=-100)
            n_bg = len(vocabularies()["bg_colour"])
            loss = loss + F.cross_entropy(bg_logits[:, :n_bg], background[idx, 0]) \
                + F.cross_entropy(bg_logits[:, n_bg:], background[idx, 1])
            set_lr(optimizer, lr_at(step, lr=lr, steps=steps, warmup=WARMUP))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            step += 1
        judge = ImageJudge(model, config)
        acc = attribute_accuracy(judge.attributes(list(held_images)), held_attributes)
        metrics.log({"step": step, "epoch": epoch + 1, "loss": total / (n_scenes // batch),
                     "held_out_mean": acc["mean"], "held_out_scene": acc["scene"],
                     "seconds": round(time.monotonic() - start)})
    save_module(model.eval(), config, out / "image_attributes.safetensors", extra={"seed": seed})
    return {"seconds": round(time.monotonic() - start), "held_out_render_acc": acc}


