"""How readable the music attributes are from a music codec's layer-1 codes, as an LLM would need them.

    bag(codes)      the clip's layer-1 codes (T,) -> their histogram (codebook_size,), summing to 1
    probe           multinomial logistic regression on the bags of the world's train clips, scored on
                    held-out clips (other pieces): family, instrument, key (tonic and mode), mode,
                    tempo word; beside each the majority class of the training clips
    runs            mean frames a layer-1 code holds; distinct layer-1 codes over the held-out clips

    layer1_probe(codec, world) -> {"probe": {attribute: accuracy}, "majority": {...}, "mean_run_frames",
                                   "layer1_codes", "train_n", "test_n"}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from anygpt.labels import PITCH_CLASSES
from anygpt.media import to_waveform
from anygpt.world import take_items

ATTRIBUTES = ("family", "instrument", "key", "mode", "tempo_word")


def label(attributes: dict, name: str) -> str:
    """An attribute as a class name; the key is its tonic pitch class and mode (enharmonics equal)."""
    if name == "key":
        return f"{PITCH_CLASSES[attributes['key']]}-{attributes['mode']}"
    return str(attributes[name])


def bag(codes: torch.Tensor, size: int) -> torch.Tensor:
    """Layer-1 codes (T,) -> normalised histogram (size,)."""
    return torch.bincount(codes, minlength=size)[:size].float() / max(1, len(codes))


def mean_run(codes: torch.Tensor) -> float:
    """Mean number of frames a code holds before it changes."""
    return len(codes) / (int((codes[1:] != codes[:-1]).sum()) + 1)


def fit_logistic(x: torch.Tensor, y: torch.Tensor, classes: int, l2: float = 1e-3, iters: int = 300) -> torch.nn.Linear:
    """Multinomial logistic regression (full batch, L-BFGS, L2 on the weights) of x (N, dims) -> y (N,)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(x.shape[1], classes)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    opt = torch.optim.LBFGS(model.parameters(), max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y) + l2 * model.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return model


def probe_accuracy(train_x: torch.Tensor, train_labels: list[str], test_x: torch.Tensor,
                   test_labels: list[str]) -> tuple[float, float]:
    """(probe accuracy, majority-class accuracy) on the test rows; classes unseen in training count as misses."""
    names = sorted(set(train_labels))
    y = torch.tensor([names.index(v) for v in train_labels])
    scale = train_x.std(0).clamp_min(1e-6)  # codes are used at very different rates
    with torch.no_grad():
        model = fit_logistic(train_x / scale, y, len(names))
        guess = model(test_x / scale).argmax(1).tolist()
    hits = sum(names[g] == t for g, t in zip(guess, test_labels, strict=True))
    majority = max(names, key=train_labels.count)
    return hits / len(test_labels), sum(t == majority for t in test_labels) / len(test_labels)


def encode_clips(codec, items: list[dict]) -> list[torch.Tensor]:
    return [codec.encode(to_waveform((it["waveform"], it["sample_rate"]), codec.sample_rate, source="world music"))[0]
            for it in items]


def layer1_probe(codec, world: str | Path, train_split: str = "train",
                 test_splits: tuple[str, ...] = ("validation", "test")) -> dict:
    """Probe the music codec's layer-1 codes on the world's clips (fit on `train_split`, score on `test_splits`)."""
    train_items = take_items(world, "music", train_split)
    test_items = [it for split in test_splits for it in take_items(world, "music", split)]
    size = codec.codebook_size
    train_codes, test_codes = encode_clips(codec, train_items), encode_clips(codec, test_items)
    train_x = torch.stack([bag(c, size) for c in train_codes])
    test_x = torch.stack([bag(c, size) for c in test_codes])
    probe, majority = {}, {}
    for name in ATTRIBUTES:
        probe[name], majority[name] = probe_accuracy(
            train_x, [label(it["attributes"], name) for it in train_items], test_x,
            [label(it["attributes"], name) for it in test_items])
    return {"probe": probe, "majority": majority,
            "mean_run_frames": float(np.mean([mean_run(c) for c in test_codes])),
            "layer1_codes": int(torch.cat(test_codes).unique().numel()),
            "train_n": len(train_items), "test_n": len(test_items)}
