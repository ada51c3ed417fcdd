"""The small-scene recipe: the reader learns each picture's attributes, the renderer learns to draw them.

    world images + their scene attributes -> target codes (N, 38)   (scene_codes)
    step: reader cross-entropy on every code of an augmented picture (shifts of a few pixels, scale,
          brightness: a picture drawn by another program is never placed exactly as the world's)
        + renderer L1 + L2 of the drawing of the target codes against the picture
    export: OUT/export/ (codec.json + weights.safetensors), as every small codec

The attributes are the world's own record of each picture, as flite's phone alignments are for
the speech codec's layer 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from anygpt.codecs.small.scene import BACKGROUND_FACTORS, CELL_FACTORS, CELLS, NONE, SmallSceneCodec
from anygpt.errors import AnyGPTError
from anygpt.train.codecs import loop as tc
from anygpt.train.codecs.config import export_run, finished, loop_spec, run_config
from anygpt.world import iter_items, table

RENDERER_LR_SCALE = 10.0  # the renderer's parameters are pixels and colours: they move faster
SHIFT_PIXELS = 2.5
SCALE_RANGE = 0.08
BRIGHTNESS = 0.06


def scene_classes() -> dict[str, list[str]]:
    """The class names of every factor, from the world's scene tables (cell factors start with none)."""
    t = table("scenes")
    unique = lambda xs: list(dict.fromkeys(xs))
    return {"bg_colour": list(t["backgrounds"]), "bg_pattern": unique(t["background_patterns"]),
            "size": [NONE, *t["sizes"]], "pattern": [NONE, *unique(t["object_patterns"])],
            "colour": [NONE, *t["colours"]], "shape": [NONE, *t["shapes"]]}


def scene_cell(position: str) -> int:
    """A position name ("top left") -> its cell in reading order (0..8)."""
    col, row, _ = table("scenes")["positions"][position]
    return row * 3 + col


def scene_codes(scene: dict, codec: SmallSceneCodec) -> torch.Tensor:
    """A world scene's attributes -> its codes (38,)."""
    names = codec.cfg.classes
    idx = {f: torch.zeros(1, CELLS, dtype=torch.long) for f in CELL_FACTORS}
    for obj in scene["objects"]:
        k = scene_cell(obj["position"])
        for f in CELL_FACTORS:
            idx[f][0, k] = names[f].index(obj[f])
    bg = scene["background"]
    idx["bg_colour"] = torch.tensor([names["bg_colour"].index(bg["colour"])])
    idx["bg_pattern"] = torch.tensor([names["bg_pattern"].index(bg["pattern"])])
    return codec.net.join(idx)[0]


def load_scenes(world: str | Path, split: str, max_items: int | None, codec: SmallSceneCodec):
    """World images -> (uint8 (N, 3, 64, 64), target codes (N, 38))."""
    images, codes = [], []
    for item in iter_items(world, "images", split):
        images.append(torch.from_numpy(np.array(item["image"].convert("RGB"), dtype=np.uint8)).permute(2, 0, 1))
        codes.append(scene_codes(item["attributes"], codec))
        if max_items and len(images) >= max_items:
            break
    if not images:
        raise AnyGPTError(f"{world}: no images in split {split!r}")
    return torch.stack(images), torch.stack(codes)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random shift, scale and brightness of (B, 3, H, W) in [-1, 1] (border pixels repeat)."""
    B = len(x)
    u = torch.rand(B, 4, generator=gen) * 2 - 1
    scale = 1 + SCALE_RANGE * u[:, 0]
    shift = u[:, 1:3] * SHIFT_PIXELS * 2 / x.shape[-1]
    theta = torch.zeros(B, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    y = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    return (y + BRIGHTNESS * u[:, 3, None, None, None]).clamp(-1, 1)


def reader_losses(logits: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
    """Cross-entropy summed over factors, and each factor's accuracy."""
    loss, acc = torch.zeros(()), {}
    for f in (*BACKGROUND_FACTORS, *CELL_FACTORS):
        lg, t = logits[f], target[f]
        loss = loss + F.cross_entropy(lg.reshape(-1, lg.shape[-1]), t.reshape(-1))
        acc[f"acc_{f}"] = (lg.argmax(-1) == t).float().mean().item()
    return loss, acc


def train_scene(world: str | Path, cfg, *, stop_after: int | None = None, progress: bool = True,
                resume: bool = True, data: tuple[torch.Tensor, torch.Tensor] | None = None) -> list[dict]:
    codec = SmallSceneCodec(**{"classes": scene_classes(), **dict(cfg.codec)})
    images, codes = data if data is not None else load_scenes(world, cfg.split, cfg.max_items, codec)
    net = codec.net
    groups = [{"params": list(net.reader.parameters()), "lr_scale": 1.0},
              {"params": list(net.renderer.parameters()), "lr_scale": RENDERER_LR_SCALE}]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
    params = [p for g in groups for p in g["params"]]
    spec = loop_spec(cfg, stop_after, progress, resume)

    def step(s: int, lr: float) -> dict[str, float]:
        for g in opt.param_groups:
            g["lr"] = lr * g["lr_scale"]
        pick = torch.from_numpy(tc.step_rng(cfg.seed, s).integers(len(images), size=cfg.batch))
        x = images[pick].float() / 127.5 - 1.0  # (B, 3, 64, 64)
        target = net.split(codes[pick])
        ce, acc = reader_losses(net.reader(augment(x, tc.step_generator(cfg.seed, s))), target)
        drawn = net.renderer(target) * 2 - 1
        l1, l2 = F.l1_loss(drawn, x), F.mse_loss(drawn, x)
        loss = ce + l1 + l2
        tc.clip_and_step(loss, params, opt, spec.clip_grad)
        return {"loss": loss.item(), "ce": ce.item(), "render_l1": l1.item(), **acc}

    rows = tc.train_loop(net, step, spec, optimizer=opt, config=run_config(cfg, codec), title="small-scene")
    if finished(cfg):
        export_run(codec, cfg, "small-scene")
    return rows
