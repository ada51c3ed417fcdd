"""Train every judge that needs training, deterministically from a seed, and write the shipped files.

    python -m anygpt.eval.judges.train --world DIR --out anygpt/eval/judges/weights [--only image ...]

    asr      world.lm + world.dict      bigram LM over grammar sentences hashed to train (asr_lm.py)
    image    image_attributes           CNN on 12,000 fresh scene renders (no world items needed)
    music    music_family               log-mel CNN on the world's music train split
    clip     clip_analog                image-text contrastive model on fresh scene renders + captions
    clap     clap_analog                audio-text contrastive model on the world's music train split

The world is read only for its train split; validation and test are left for `anygpt eval judges`.
Same seed, same thread count -> same weights (CPU kernels are deterministic for a fixed thread count).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

from anygpt.eval.judges.weights import weights_dir

JUDGES = ("asr", "image", "music", "clip", "clap")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _seed_everything(seed: int):
    import torch

    torch.manual_seed(seed)
    return random.Random(seed), np.random.default_rng(seed)


def _cosine_lr(optimizer, base_lr: float, step: int, total: int, warmup: int = 50) -> None:
    import math

    lr = base_lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / total))
    for group in optimizer.param_groups:
        group["lr"] = lr


# ---------------------------------------------------------------------------------------------
# Image attributes


def render_training_scenes(n: int, rng: random.Random) -> tuple[np.ndarray, list[dict]]:
    """n fresh scenes with every colour-shape pair allowed: (n, 64, 64, 3) uint8 and attributes."""
    from anygpt.world import scenes
    from anygpt.eval.judges.image import IMAGE_SIDE

    images, attributes = np.zeros((n, IMAGE_SIDE, IMAGE_SIDE, 3), np.uint8), []
    for i in range(n):
        scene = scenes.sample_scene(rng, set(), novel=False)
        images[i] = np.asarray(scenes.render_scene(scene, IMAGE_SIDE))
        attributes.append(scene)
    return images, attributes


def scene_targets(attributes: list[dict]):
    """(n, 9, 5) cell targets [present, shape, colour, size, pattern] (-100: no object) and (n, 2)."""
    import torch

    from anygpt.eval.judges.image import CELL_HEADS, vocabularies

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
    import torch
    import torch.nn.functional as F

    noise = torch.randn(images.shape, generator=generator) * 0.03 * torch.rand((images.shape[0], 1, 1, 1),
                                                                               generator=generator)
    blurred = F.avg_pool2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    mix = (torch.rand((images.shape[0], 1, 1, 1), generator=generator) < 0.3).float() * 0.5
    return (images * (1 - mix) + blurred * mix + noise).clamp(0, 1)


def train_image(out: Path, seed: int, n_scenes: int = 12_000, epochs: int = 5, batch: int = 64,
                lr: float = 3e-3) -> dict:
    import torch
    import torch.nn.functional as F

    from anygpt.eval.judges.checkpoint import save_module
    from anygpt.eval.judges.image import (
        ImageJudge,
        ImageJudgeConfig,
        attribute_accuracy,
        build_model,
        split_cell_logits,
        vocabularies,
    )

    start = time.monotonic()
    rng, _ = _seed_everything(seed)
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
            _cosine_lr(optimizer, lr, step, steps)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            step += 1
        judge = ImageJudge(model, config)
        acc = attribute_accuracy(judge.attributes(list(held_images)), held_attributes)
        log(f"image: epoch {epoch + 1}/{epochs} loss {total / (n_scenes // batch):.4f} "
            f"held-out renders mean {acc['mean']:.4f} scene {acc['scene']:.4f} "
            f"({time.monotonic() - start:.0f} s)")
    save_module(model.eval(), config, out / "image_attributes.safetensors", extra={"seed": seed})
    return {"seconds": round(time.monotonic() - start), "held_out_render_acc": acc}


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m anygpt.eval.judges.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--world", type=Path, default=None,
                        help="a world from `anygpt data world` (music and clap read its train split)")
    parser.add_argument("--out", type=Path, default=weights_dir(), help="where to write (default: the shipped folder)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--only", nargs="+", choices=JUDGES, default=list(JUDGES), help="judges to train (default all)")


def run(args: argparse.Namespace) -> int:
    import json

    from anygpt.errors import AnyGPTError

    needs_world = {"music", "clap"} & set(args.only)
    if needs_world and args.world is None:
        raise AnyGPTError(f"--world is needed to train {', '.join(sorted(needs_world))}")
    args.out.mkdir(parents=True, exist_ok=True)
    report, cache = {}, {}
    if needs_world:  # music and clap read the same features: compute them once
        from anygpt.eval.judges.contrastive import music_split_features

        start = time.monotonic()
        cache["train"] = music_split_features(args.world, "train")
        log(f"music features of {len(cache['train'][0])} train clips in {time.monotonic() - start:.0f} s")
    for name in JUDGES:
        if name not in args.only:
            continue
        if name == "asr":
            from anygpt.eval.judges import asr_lm

            report[name] = asr_lm.build(args.out, seed=args.seed)
        elif name == "image":
            report[name] = train_image(args.out, args.seed)
        elif name == "music":
            from anygpt.eval.judges.music import train_family

            report[name] = train_family(args.world, args.out, args.seed, log=log, cache=cache)
        elif name == "clip":
            from anygpt.eval.judges.contrastive import train_clip

            report[name] = train_clip(args.out, args.seed, log=log)
        elif name == "clap":
            from anygpt.eval.judges.contrastive import train_clap

            report[name] = train_clap(args.world, args.out, args.seed, log=log, cache=cache)
        log(f"{name}: {json.dumps(report[name])}")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
