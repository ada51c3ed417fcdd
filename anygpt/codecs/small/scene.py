"""small-scene: a semantic image tokenizer for the world's scene grammar, codes an LLM can read.

A pixel VQ (small-image) hands the LLM 32 codes of local appearance: colour and shape are spread
over arbitrary code ids, and a small LLM does not learn to read or write them. Here, as SEED's codes
carry meaning rather than pixels, every code is one attribute of the scene, in a fixed order:

    codes (1, 2 + 9 * 4) = 38
      [bg colour] [bg pattern]                               the background
      cell 1..9 in reading order (top left .. bottom right): [size] [pattern] [colour] [shape]
                                                             ("none" four times for an empty cell)

    image 64x64 RGB                     (B, 3, 64, 64)
      trunk   conv, two stride-2 convs  (B, C, 16, 16)
      cells   a PATCH x PATCH window around each cell centre (grid_sample) -> cell MLP -> 4 heads
      global  4x4 average pool          -> background MLP -> 2 heads
      code    argmax of each head, offset into its factor's id range (ids below FACTOR_SPAN total)

    codes -> renderer (every part learnt from pixels):
      background  mix(base[colour], second[colour, pattern], mask[pattern])          (3, 64, 64)
      each object fill = mix(rgb[colour], shade[colour], fill_mask[pattern])
                  alpha = sprite[shape, size] moved to its cell centre, composited in reading order

Factors are separate codes, so a colour-shape pair never seen in training is still written and
drawn (the renderer multiplies a shape's alpha by a colour, it never learns pairs). The tokenizer
keeps what a scene says, not its pixels: a picture off the grammar comes back as the nearest scene,
as SEED's decoder draws an image of the same meaning rather than the same pixels. The class names
live in the config, so `describe(codes)` reads codes back as attributes without the world.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from anygpt.codecs.base import check_codes, register_codec
from anygpt.codecs.small.image import image_to_tensor, tensor_to_image

BACKGROUND_FACTORS = ("bg_colour", "bg_pattern")
CELL_FACTORS = ("size", "pattern", "colour", "shape")  # the order of a caption's words: "small striped red star"
FACTORS = BACKGROUND_FACTORS + CELL_FACTORS
CELLS = 9  # a 3x3 grid, reading order
NONE = "none"  # class 0 of every cell factor: an empty cell
PATCH = 7  # feature pixels per side read around a cell centre (28 image pixels: a large object)
FEATURE_SIDE = 16


@dataclass(frozen=True)
class SceneCodecConfig:
    classes: dict[str, tuple[str, ...]]  # factor -> class names; cell factors start with NONE
    cell_centres: tuple[float, ...] = (0.23, 0.5, 0.77)  # of the image side, per row and column
    image_size: int = 64
    codebook_size: int = 1024  # the layout's image codebook; the codes use the first `span` ids
    channels: tuple[int, ...] = (32, 64, 96)
    hidden: int = 192
    sprite_side: int = 32  # pixels: the largest object fits
    seed: int = 0

    def __post_init__(self):
        missing = [f for f in FACTORS if f not in self.classes]
        if missing:
            raise ValueError(f"small-scene: classes lack {', '.join(missing)}")
        for f in CELL_FACTORS:
            if self.classes[f][0] != NONE:
                raise ValueError(f"small-scene: {f}'s first class must be {NONE!r}")
        if self.span > self.codebook_size:
            raise ValueError(f"small-scene: {self.span} classes do not fit a codebook of {self.codebook_size}")
        if len(self.cell_centres) ** 2 != CELLS:
            raise ValueError("small-scene: three cell centres per axis")

    @property
    def offsets(self) -> dict[str, int]:
        """Each factor's first code id: factors in FACTORS order, back to back."""
        out, at = {}, 0
        for f in FACTORS:
            out[f] = at
            at += len(self.classes[f])
        return out

    @property
    def span(self) -> int:
        return sum(len(self.classes[f]) for f in FACTORS)

    @property
    def slot_factors(self) -> tuple[str, ...]:
        """The factor of every code position: (38,)."""
        return BACKGROUND_FACTORS + CELL_FACTORS * CELLS

    @property
    def tokens_per_item(self) -> int:
        return len(self.slot_factors)


def cell_grid(centres: tuple[float, ...]) -> torch.Tensor:
    """Cell centres in grid_sample coordinates ([-1, 1], x then y), reading order: (9, 2)."""
    c = torch.tensor([2 * v - 1 for v in centres])
    return torch.stack([c.repeat(3), c.repeat_interleave(3)], dim=-1)


class SceneReader(nn.Module):
    """The encoder: per-cell and background logits for every factor."""

    def __init__(self, c: SceneCodecConfig):
        super().__init__()
        c1, c2, c3 = c.channels
        self.trunk = nn.Sequential(
            nn.Conv2d(3, c1, 3, padding=1), nn.GELU(),
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.GELU(),  # 32x32
            nn.Conv2d(c2, c3, 4, stride=2, padding=1), nn.GELU(),  # 16x16
            nn.Conv2d(c3, c3, 3, padding=1), nn.GELU(),
        )
        step = 2.0 / FEATURE_SIDE  # one feature pixel in grid_sample units
        offsets = (torch.arange(PATCH) - PATCH // 2) * step
        window = torch.stack(torch.meshgrid(offsets, offsets, indexing="xy"), dim=-1)  # (P, P, 2)
        self.register_buffer("window", cell_grid(c.cell_centres)[:, None, None] + window, persistent=False)
        self.cell = nn.Sequential(nn.Linear(c3 * PATCH * PATCH, c.hidden), nn.GELU(), nn.Linear(c.hidden, c.hidden),
                                  nn.GELU())
        self.background = nn.Sequential(nn.Linear(c3 * 16, c.hidden), nn.GELU(), nn.Linear(c.hidden, c.hidden),
                                         nn.GELU())
        self.heads = nn.ModuleDict({f: nn.Linear(c.hidden, len(c.classes[f])) for f in FACTORS})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 3, 64, 64) in [-1, 1] -> {factor: logits}: background (B, n), cells (B, 9, n)."""
        feat = self.trunk(x)  # (B, C, 16, 16)
        B = len(x)
        grid = self.window.flatten(0, 1)[None].expand(B, -1, -1, -1)  # (B, 9 * P, P, 2)
        patches = F.grid_sample(feat, grid, align_corners=False)  # (B, C, 9 * P, P)
        patches = patches.view(B, feat.shape[1], CELLS, PATCH, PATCH).permute(0, 2, 1, 3, 4).flatten(2)
        cells = self.cell(patches)  # (B, 9, hidden)
        bg = self.background(F.adaptive_avg_pool2d(feat, 4).flatten(1))  # (B, hidden)
        out = {f: self.heads[f](bg) for f in BACKGROUND_FACTORS}
        out.update({f: self.heads[f](cells) for f in CELL_FACTORS})
        return out


class SceneRenderer(nn.Module):
    """The decoder: draws a scene from per-factor class indices, every part a learnt parameter."""

    def __init__(self, c: SceneCodecConfig):
        super().__init__()
        n = {f: len(c.classes[f]) for f in FACTORS}
        S, s = c.image_size, c.sprite_side
        self.bg_base = nn.Parameter(torch.full((n["bg_colour"], 3), 0.5))
        self.bg_second = nn.Parameter(torch.full((n["bg_colour"], n["bg_pattern"], 3), 0.5))
        self.bg_mask = nn.Parameter(torch.zeros(n["bg_pattern"], S, S))  # logits
        self.rgb = nn.Parameter(torch.full((n["colour"], 3), 0.5))
        self.shade = nn.Parameter(torch.full((n["colour"], 3), 0.5))
        self.fill_mask = nn.Parameter(torch.zeros(n["pattern"], S, S))  # logits, in image coordinates
        self.sprite = nn.Parameter(torch.full((n["shape"], n["size"], s, s), -2.0))  # alpha logits
        # where output pixel p samples the sprite of cell k: (p - centre_k) in sprite half-sides
        pixels = (torch.arange(S) + 0.5) / S * 2 - 1  # pixel centres, grid_sample units of the image
        yy, xx = torch.meshgrid(pixels, pixels, indexing="ij")
        image_grid = torch.stack([xx, yy], dim=-1)  # (S, S, 2)
        grid = (image_grid[None] - cell_grid(c.cell_centres)[:, None, None]) * (S / s)
        self.register_buffer("grid", grid, persistent=False)  # (9, S, S, 2)

    def forward(self, idx: dict[str, torch.Tensor]) -> torch.Tensor:
        """{factor: class indices} (background (B,), cells (B, 9)) -> (B, 3, S, S) in [0, 1]."""
        m = torch.sigmoid(self.bg_mask[idx["bg_pattern"]])[:, None]  # (B, 1, S, S)
        base = self.bg_base[idx["bg_colour"]][..., None, None]  # (B, 3, 1, 1)
        second = self.bg_second[idx["bg_colour"], idx["bg_pattern"]][..., None, None]
        image = base * (1 - m) + second * m
        B = len(image)
        alpha = torch.sigmoid(self.sprite[idx["shape"], idx["size"]])  # (B, 9, s, s)
        alpha = F.grid_sample(alpha.flatten(0, 1)[:, None], self.grid.repeat(B, 1, 1, 1), align_corners=False)
        alpha = alpha.view(B, CELLS, 1, *image.shape[-2:]) * (idx["shape"] > 0)[..., None, None, None].float()
        fm = torch.sigmoid(self.fill_mask[idx["pattern"]])[:, :, None]  # (B, 9, 1, S, S)
        fill = self.rgb[idx["colour"]][..., None, None] * (1 - fm) + self.shade[idx["colour"]][..., None, None] * fm
        for k in range(CELLS):  # objects never overlap; reading order all the same
            image = image * (1 - alpha[:, k]) + fill[:, k] * alpha[:, k]
        return image


class SceneNet(nn.Module):
    def __init__(self, c: SceneCodecConfig):
        super().__init__()
        self.cfg = c
        self.reader = SceneReader(c)
        self.renderer = SceneRenderer(c)

    def split(self, codes: torch.Tensor) -> dict[str, torch.Tensor]:
        """codes (B, 38) -> {factor: class indices}: background (B,), cells (B, 9)."""
        off = self.cfg.offsets
        bg = {f: codes[:, i] - off[f] for i, f in enumerate(BACKGROUND_FACTORS)}
        cells = codes[:, len(BACKGROUND_FACTORS):].view(len(codes), CELLS, len(CELL_FACTORS))
        return bg | {f: cells[..., j] - off[f] for j, f in enumerate(CELL_FACTORS)}

    def join(self, idx: dict[str, torch.Tensor]) -> torch.Tensor:
        """The inverse of `split`."""
        off = self.cfg.offsets
        bg = [idx[f][:, None] + off[f] for f in BACKGROUND_FACTORS]
        cells = torch.stack([idx[f] + off[f] for f in CELL_FACTORS], dim=-1).flatten(1)  # (B, 36)
        return torch.cat([*bg, cells], dim=1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 64, 64) in [-1, 1] -> codes (B, 38); an empty cell is all NONE."""
        logits = self.reader(x)
        idx = {f: v.argmax(-1) for f, v in logits.items()}
        empty = idx["shape"] == 0
        for f in CELL_FACTORS:
            idx[f] = idx[f].masked_fill(empty, 0)
        return self.join(idx)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, 38) -> (B, 3, 64, 64) in [-1, 1]."""
        return self.renderer(self.split(codes)) * 2 - 1


def scene_code_ranges(cfg: SceneCodecConfig) -> list[tuple[int, int]]:
    """[low, high) of the valid code ids at every position: (38,) pairs."""
    off = cfg.offsets
    return [(off[f], off[f] + len(cfg.classes[f])) for f in cfg.slot_factors]


@register_codec("small-scene", "image")
class SmallSceneCodec(nn.Module):
    """38 attribute codes per image from a trained scene reader; a trained renderer draws them."""

    name = "small-scene"

    def __init__(self, classes: dict[str, list[str]], cell_centres: list[float] | tuple[float, ...] = (0.23, 0.5, 0.77),
                 image_size: int = 64, codebook_size: int = 1024, channels: list[int] | tuple[int, ...] = (32, 64, 96),
                 hidden: int = 192, sprite_side: int = 32, seed: int = 0):
        super().__init__()
        self.cfg = SceneCodecConfig({f: tuple(v) for f, v in classes.items()}, tuple(cell_centres), image_size,
                                    codebook_size, tuple(channels), hidden, sprite_side, seed)
        self.modality = "image"
        self.codebook_size = codebook_size
        self.num_codebooks = 1
        self.frame_rate = None
        self.tokens_per_item = self.cfg.tokens_per_item
        self.sample_rate = None
        self._ranges = torch.tensor(scene_code_ranges(self.cfg))  # (38, 2)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = SceneNet(self.cfg)
        self.eval()

    def config(self) -> dict:
        c = self.cfg
        return {"classes": {f: list(v) for f, v in c.classes.items()}, "cell_centres": list(c.cell_centres),
                "image_size": c.image_size, "codebook_size": c.codebook_size, "channels": list(c.channels),
                "hidden": c.hidden, "sprite_side": c.sprite_side, "seed": c.seed}

    @torch.no_grad()
    def encode(self, media: Any) -> torch.Tensor:
        """RGB image (PIL, or an HxWx3 uint8 array) -> codes (1, 38)."""
        return self.net.encode(image_to_tensor(media, self.cfg.image_size, self.name)[None])

    def fit(self, codes: Any) -> torch.Tensor:
        """Codes (1, 38) with every id that is not of its position's factor replaced by that factor's
        class 0 (an empty cell, the first background): a generated image always draws."""
        codes = check_codes(codes, self.name, 1, self.codebook_size, length=self.tokens_per_item)
        low, high = self._ranges.T
        return torch.where((codes < low) | (codes >= high), low, codes)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, *, voice: np.ndarray | None = None, seed: int | None = None) -> Image.Image:
        """Codes (1, 38) -> 64x64 RGB image (see `fit`); voice and seed are unused."""
        return tensor_to_image(self.net.decode(self.fit(codes))[0])

    def describe(self, codes: torch.Tensor) -> dict:
        """Codes (1, 38) -> the scene they say: {"background": {...}, "objects": [{..., "cell": k}]}."""
        idx = self.net.split(self.fit(codes))
        names = self.cfg.classes
        scene = {"background": {"colour": names["bg_colour"][int(idx["bg_colour"][0])],
                                "pattern": names["bg_pattern"][int(idx["bg_pattern"][0])]}, "objects": []}
        for k in range(CELLS):
            if int(idx["shape"][0, k]):
                scene["objects"].append({"cell": k, **{f: names[f][int(idx[f][0, k])] for f in CELL_FACTORS}})
        return scene
