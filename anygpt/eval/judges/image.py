"""Image attribute judge: a small CNN that reads a world scene back into its attributes.

    judge = ImageJudge.load()                       # shipped weights, image_attributes.safetensors
    judge.attributes([pil, ...])  -> [{"count": 2, "background": {"colour": "navy", "pattern": "plain"},
                                       "objects": [{"shape", "colour", "size", "position", "pattern"}, ...]}]
    attribute_accuracy(predicted, truth) -> {"count": .., "shape": .., ..., "mean": ..}

Scenes put each object on one cell of a 3x3 grid (scenes.json "positions"), so the network predicts,
for every cell, "empty or an object" and that object's shape, colour, size and pattern, plus the
background's colour and pattern; objects come out in reading order, as the world lists them.

    image (B, 3, 64, 64) -> conv trunk -> features (B, C, 16, 16)
        -> a 7x7 patch around each cell centre (grid_sample) -> (B, 9, C*49) -> shared cell MLP
        -> global mean                                         -> (B, C)      -> background head

It is trained on fresh renders of scenes drawn with every colour-shape pair allowed (the world's
held-out pairs included: a judge must recognise them), never on world items (anygpt/train/judges/image.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from anygpt.eval.judges.checkpoint import load_module
from anygpt.labels import scene_table

WEIGHTS_FILE = "image_attributes.safetensors"
IMAGE_SIDE = 64  # the judge sees every image at the world's size
FEATURE_SIDE = 16  # trunk output: two stride-2 convolutions, 4 image pixels per feature
PATCH = 7  # feature pixels per side read around each cell centre: 28 image pixels, a large object


@functools.cache
def vocabularies() -> dict[str, list[str]]:
    """Class names of every head, in a fixed order (the order of the output logits)."""
    t = scene_table()
    positions = sorted(t["positions"], key=lambda p: (t["positions"][p][1], t["positions"][p][0]))
    return {"shape": sorted(t["shapes"]), "colour": sorted(t["colours"]), "size": ["small", "medium", "large"],
            "pattern": ["solid", "striped", "dotted"], "position": positions,
            "bg_colour": sorted(t["backgrounds"]), "bg_pattern": sorted(set(t["background_patterns"]))}


CELL_HEADS = ("shape", "colour", "size", "pattern")


@dataclass(frozen=True)
class ImageJudgeConfig:
    channels: tuple[int, ...] = (24, 32, 48)  # trunk widths: two at 32 pixels, then 16 pixels
    hidden: int = 128  # head MLP width


def build_model(config: ImageJudgeConfig):
    import torch.nn.functional as F
    from torch import nn

    voc = vocabularies()
    c1, c2, c3 = config.channels

    def block(cin, cout, stride=1, dilation=1):
        return [nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    class SceneNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = nn.Sequential(*block(3, c1, 2), *block(c1, c2), *block(c2, c3, 2),
                                       *block(c3, c3, dilation=2), *block(c3, c3, dilation=4))
            self.register_buffer("grid", cell_grid(), persistent=False)  # (1, 9*P, P, 2)
            self.cell_hidden = nn.Sequential(nn.Linear(c3 * PATCH * PATCH, config.hidden), nn.ReLU())
            self.cell_out = nn.Linear(config.hidden, 1 + sum(len(voc[h]) for h in CELL_HEADS))
            self.bg_head = nn.Sequential(nn.Linear(c3, config.hidden), nn.ReLU(),
                                         nn.Linear(config.hidden, len(voc["bg_colour"]) + len(voc["bg_pattern"])))

        def features(self, images):  # images (B, 3, 64, 64) in [0, 1] -> (B, 9, hidden), (B, C)
            features = self.trunk(images * 2 - 1)  # (B, C, 16, 16)
            b, c = features.shape[:2]
            patches = F.grid_sample(features, self.grid.expand(b, -1, -1, -1), align_corners=False)  # (B, C, 9P, P)
            patches = patches.view(b, c, 9, PATCH, PATCH).permute(0, 2, 1, 3, 4).flatten(2)  # (B, 9, C*P*P)
            return self.cell_hidden(patches), features.mean((2, 3))

        def forward(self, images):  # -> cell logits (B, 9, 1+24), background logits (B, 13)
            cells, pooled = self.features(images)
            return self.cell_out(cells), self.bg_head(pooled)

    return SceneNet()


def cell_grid():
    """(1, 9*P, P, 2) grid_sample coordinates: a PxP patch of feature pixels around each cell centre."""
    import torch

    t = scene_table()
    centres = t["cell_centres"]
    offsets = (torch.arange(PATCH, dtype=torch.float32) - (PATCH - 1) / 2) / FEATURE_SIDE  # image fractions
    patches = []
    for name in vocabularies()["position"]:
        col, row, _ = t["positions"][name]
        ys, xs = torch.meshgrid(centres[row] + offsets, centres[col] + offsets, indexing="ij")  # (P, P)
        patches.append(torch.stack([xs, ys], dim=-1) * 2 - 1)  # grid_sample wants x, y in [-1, 1]
    return torch.cat(patches, dim=0)[None]


def split_cell_logits(cell_logits):
    """(B, 9, 1+24) -> {"present": (B, 9), "shape": (B, 9, 8), ...}."""
    voc = vocabularies()
    out = {"present": cell_logits[..., 0]}
    start = 1
    for head in CELL_HEADS:
        out[head] = cell_logits[..., start:start + len(voc[head])]
        start += len(voc[head])
    return out


def images_to_tensor(images):
    """PIL images or HxWx3 uint8 arrays -> (B, 3, 64, 64) float in [0, 1] (resized if needed)."""
    import torch
    from PIL import Image

    arrays = []
    for image in images:
        if isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        image = image.convert("RGB")
        if image.size != (IMAGE_SIDE, IMAGE_SIDE):
            image = image.resize((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.LANCZOS)
        arrays.append(np.asarray(image))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0


class ImageJudge:
    """The trained scene reader; `load()` takes the shipped weights."""

    def __init__(self, model, config: ImageJudgeConfig):
        self.model, self.config = model.eval(), config

    @classmethod
    def load(cls, folder=None) -> ImageJudge:
        model, config, _ = load_module(WEIGHTS_FILE, ImageJudgeConfig, build_model, folder)
        return cls(model, config)

    def attributes(self, images, batch_size: int = 256) -> list[dict]:
        import torch

        voc = vocabularies()
        out: list[dict] = []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                cell_logits, bg_logits = self.model(images_to_tensor(images[start:start + batch_size]))
                heads = split_cell_logits(cell_logits)
                n_bg = len(voc["bg_colour"])
                for b in range(cell_logits.shape[0]):
                    objects = []
                    for k, position in enumerate(voc["position"]):
                        if heads["present"][b, k] > 0:
                            obj = {h: voc[h][int(heads[h][b, k].argmax())] for h in CELL_HEADS}
                            objects.append({"shape": obj["shape"], "colour": obj["colour"], "size": obj["size"],
                                            "position": position, "pattern": obj["pattern"]})
                    out.append({"count": len(objects), "objects": objects, "background": {
                        "colour": voc["bg_colour"][int(bg_logits[b, :n_bg].argmax())],
                        "pattern": voc["bg_pattern"][int(bg_logits[b, n_bg:].argmax())]}})
        return out


ATTRIBUTES = ("count", "bg_colour", "bg_pattern", "position", "shape", "colour", "size", "pattern")


def attribute_accuracy(predicted: list[dict], truth: list[dict]) -> dict[str, float]:
    """Per-attribute accuracy of predicted scene attributes against the truth, plus their mean.

    count and background: one judgement per image. Objects are matched by position: "position" is
    the fraction of true objects whose cell holds a predicted object, and shape/colour/size/pattern
    count an unmatched true object as wrong. "scene" is the fraction of images read entirely right.
    """
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} predictions for {len(truth)} truths")
    hits = {name: 0 for name in ATTRIBUTES}
    totals = {name: 0 for name in ATTRIBUTES}
    exact = 0
    for pred, true in zip(predicted, truth, strict=True):
        wrong = 0
        for name, ok in (("count", pred["count"] == true["count"]),
                         ("bg_colour", pred["background"]["colour"] == true["background"]["colour"]),
                         ("bg_pattern", pred["background"]["pattern"] == true["background"]["pattern"])):
            hits[name] += ok
            totals[name] += 1
            wrong += not ok
        by_cell = {obj["position"]: obj for obj in pred["objects"]}
        for obj in true["objects"]:
            match = by_cell.get(obj["position"])
            for name in ("position", "shape", "colour", "size", "pattern"):
                ok = match is not None and (name == "position" or match[name] == obj[name])
                hits[name] += ok
                totals[name] += 1
                wrong += not ok
        exact += wrong == 0
    scores = {name: hits[name] / totals[name] for name in ATTRIBUTES if totals[name]}
    scores["mean"] = float(np.mean([scores[name] for name in ATTRIBUTES if name in scores]))
    scores["scene"] = exact / max(1, len(truth))
    return scores
