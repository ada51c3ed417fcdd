"""Procedural image scenes: one to three coloured shapes on a background, with captions.

A scene is a plain JSON-ready dict of attributes. `render_scene` draws it and `caption_scene` words
it, both from the attributes alone, so a conversation can describe a scene first and render it
afterwards (the paper's two-stage recipe), and judges can be checked against the attributes.

    {"count": 2, "group": false, "novel_combination": false,
     "background": {"colour": "beige", "pattern": "striped"},
     "objects": [{"shape": "star", "colour": "red", "size": "small", "position": "top left",
                  "pattern": "solid"}, ...]}          # objects in reading order
"""

import math
import random

import numpy as np
from PIL import Image, ImageDraw

from anygpt.world import tables
from anygpt.world.words import article, capitalise, join_list

SUPERSAMPLE = 4  # draw at 4x and downsample: anti-aliased edges at 64 px
OVERLAP_MARGIN = 0.02  # minimum gap between two objects, as a fraction of the image side
MAX_TRIES = 200


def scene_tables() -> dict:
    return tables.load("scenes")


def colour_shape_pairs(scene: dict) -> set[tuple[str, str]]:
    return {(obj["colour"], obj["shape"]) for obj in scene["objects"]}


# ----------------------------------------------------------------------------------------------
# Sampling


def sample_scene(rng: random.Random, held_out: set[tuple[str, str]], *, novel: bool) -> dict:
    """A random scene. `novel=False`: no held-out colour-shape pair appears; `novel=True`: at least
    one does (only test items are sampled that way)."""
    t = scene_tables()
    for _ in range(MAX_TRIES):
        scene = _try_scene(rng, t, held_out, novel)
        if scene is not None:
            return scene
    raise RuntimeError("could not sample a scene; check scenes.json")  # a bug in the tables


def _try_scene(rng: random.Random, t: dict, held_out: set, novel: bool) -> dict | None:
    count = rng.choices([1, 2, 3], weights=[4, 3.5, 2.5])[0]
    group = count >= 2 and rng.random() < 0.3
    background = {"colour": rng.choice(sorted(t["backgrounds"])),
                  "pattern": rng.choice(t["background_patterns"])}
    bg_rgb = t["backgrounds"][background["colour"]]
    visible = [c for c in sorted(t["colours"])
               if _distance(t["colours"][c], bg_rgb) >= t["min_contrast"]]
    shapes = sorted(t["shapes"])
    allowed = [(c, s) for c in visible for s in shapes if (c, s) not in held_out]
    novel_pairs = [(c, s) for (c, s) in sorted(held_out) if c in visible]
    if novel and not novel_pairs:
        return None

    pairs = []
    if group:
        pairs = [rng.choice(novel_pairs if novel else allowed)] * count
    else:
        for i in range(count):
            pool = novel_pairs if (novel and i == 0) else allowed
            pairs.append(rng.choice(pool))
        if len(set(pairs)) < count:  # identical twins belong to "group" scenes
            return None

    cells = rng.sample(sorted(t["positions"]), count)
    sizes = [rng.choice(sorted(t["sizes"])) for _ in range(count)]
    if group and rng.random() < 0.5:
        sizes = [sizes[0]] * count
    objects = []
    for (colour, shape), cell, size in zip(pairs, cells, sizes, strict=True):
        pattern = "solid" if (group or size == "small") else rng.choice(t["object_patterns"])
        objects.append({"shape": shape, "colour": colour, "size": size, "position": cell,
                        "pattern": pattern})
    if _overlaps(objects, t):
        return None
    objects.sort(key=lambda o: (t["positions"][o["position"]][1], t["positions"][o["position"]][0]))
    scene = {"count": count, "group": group, "background": background, "objects": objects}
    scene["novel_combination"] = bool(colour_shape_pairs(scene) & held_out)
    return scene


def _distance(a: list[int], b: list[int]) -> float:
    return math.dist(a, b)


def _centre(obj: dict, t: dict) -> tuple[float, float]:
    col, row, _ = t["positions"][obj["position"]]
    return t["cell_centres"][col], t["cell_centres"][row]


def _overlaps(objects: list[dict], t: dict) -> bool:
    for i, a in enumerate(objects):
        for b in objects[i + 1:]:
            gap = math.dist(_centre(a, t), _centre(b, t)) - t["sizes"][a["size"]] - t["sizes"][b["size"]]
            if gap < OVERLAP_MARGIN:
                return True
    return False


# ----------------------------------------------------------------------------------------------
# Rendering


def render_scene(scene: dict, size: int) -> Image.Image:
    """Draw a scene as an RGB image of size x size pixels; deterministic in the attributes."""
    t = scene_tables()
    side = size * SUPERSAMPLE
    canvas = _background(scene["background"], side, t)
    for obj in scene["objects"]:
        cx, cy = _centre(obj, t)
        radius = t["sizes"][obj["size"]] * side
        mask = Image.new("L", (side, side), 0)
        ImageDraw.Draw(mask).polygon(_outline(obj["shape"], cx * side, cy * side, radius), fill=255)
        fill = _pattern_fill(obj["pattern"], t["colours"][obj["colour"]], side)
        canvas.paste(fill, (0, 0), mask)
    return canvas.resize((size, size), Image.Resampling.LANCZOS)


def _shade(rgb: list[int], amount: float) -> tuple[int, int, int]:
    """A visibly different tone of the same colour: darker for light colours, lighter for dark."""
    target = 0 if sum(rgb) > 300 else 255
    return tuple(int(round(c + (target - c) * amount)) for c in rgb)


def _background(background: dict, side: int, t: dict) -> Image.Image:
    rgb = t["backgrounds"][background["colour"]]
    other = _shade(rgb, 0.18)
    pattern = background["pattern"]
    if pattern == "gradient":
        ramp = np.linspace(0.0, 1.0, side)[:, None, None]  # (H, 1, 1): top to bottom
        pixels = np.asarray(rgb)[None, None] * (1 - ramp) + np.asarray(_shade(rgb, 0.45)) * ramp
        return Image.fromarray(np.broadcast_to(pixels, (side, side, 3)).round().astype(np.uint8))
    image = Image.new("RGB", (side, side), tuple(rgb))
    draw = ImageDraw.Draw(image)
    period = side // 8
    if pattern == "striped":
        for y in range(0, side, period):
            draw.rectangle([0, y, side, y + period // 2 - 1], fill=other)
    elif pattern == "dotted":
        for y in range(period // 2, side, period):
            for x in range(period // 2, side, period):
                draw.ellipse([x - period // 6, y - period // 6, x + period // 6, y + period // 6], fill=other)
    elif pattern == "checkered":
        for y in range(0, side, period):
            for x in range(0, side, period):
                if (x // period + y // period) % 2:
                    draw.rectangle([x, y, x + period - 1, y + period - 1], fill=other)
    return image


def _pattern_fill(pattern: str, rgb: list[int], side: int) -> Image.Image:
    fill = Image.new("RGB", (side, side), tuple(rgb))
    other = _shade(rgb, 0.5)
    draw = ImageDraw.Draw(fill)
    period = side // 12
    if pattern == "striped":  # diagonal stripes, so they read differently from striped backgrounds
        for k in range(-side, side, period):
            draw.polygon([(k, 0), (k + period // 2, 0), (k + period // 2 + side, side), (k + side, side)], fill=other)
    elif pattern == "dotted":
        for y in range(period // 2, side, period):
            for x in range(period // 2, side, period):
                draw.ellipse([x - period // 4, y - period // 4, x + period // 4, y + period // 4], fill=other)
    return fill


def _regular(cx: float, cy: float, radius: float, n: int, start_deg: float) -> list[tuple[float, float]]:
    return [(cx + radius * math.cos(math.radians(start_deg + 360 * k / n)),
             cy + radius * math.sin(math.radians(start_deg + 360 * k / n))) for k in range(n)]


def _outline(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """Polygon vertices in pixels; every shape fits in a circle of radius r around (cx, cy)."""
    if shape == "circle":
        return _regular(cx, cy, r, 96, 0)
    if shape == "square":
        return _regular(cx, cy, r, 4, 45)
    if shape == "triangle":  # pointing up, nudged down so it looks centred
        return _regular(cx, cy + 0.12 * r, r, 3, -90)
    if shape == "diamond":
        return [(cx, cy - r), (cx + 0.7 * r, cy), (cx, cy + r), (cx - 0.7 * r, cy)]
    if shape == "hexagon":
        return _regular(cx, cy, r, 6, 0)
    if shape == "star":
        outer, inner = _regular(cx, cy, r, 5, -90), _regular(cx, cy, 0.42 * r, 5, -54)
        return [p for pair in zip(outer, inner, strict=True) for p in pair]
    if shape == "cross":
        w, a = 0.32 * r, 0.95 * r  # half the arm width, arm reach
        return [(cx - w, cy - a), (cx + w, cy - a), (cx + w, cy - w), (cx + a, cy - w), (cx + a, cy + w),
                (cx + w, cy + w), (cx + w, cy + a), (cx - w, cy + a), (cx - w, cy + w), (cx - a, cy + w),
                (cx - a, cy - w), (cx - w, cy - w)]
    if shape == "heart":  # the classic parametric heart, scaled to radius r
        points = []
        for k in range(96):
            s = 2 * math.pi * k / 96
            x = 16 * math.sin(s) ** 3
            y = 13 * math.cos(s) - 5 * math.cos(2 * s) - 2 * math.cos(3 * s) - math.cos(4 * s)
            points.append((cx + r * x / 17, cy - r * (y + 2.5) / 17))
        return points
    raise ValueError(f"unknown shape {shape!r}")


# ----------------------------------------------------------------------------------------------
# Captions



def object_phrase(obj: dict, *, size: bool = True) -> str:
    """'small striped red circle': size, pattern, colour, shape (pattern only when not solid)."""
    words = [obj["size"]] if size else []
    if obj["pattern"] != "solid":
        words.append(obj["pattern"])
    return " ".join(words + [obj["colour"], obj["shape"]])


def background_phrase(background: dict) -> str:
    """'striped beige', 'light blue gradient', 'plain white'."""
    pattern, colour = background["pattern"], background["colour"]
    if pattern == "gradient":
        return f"{colour} gradient"
    return f"{pattern} {colour}"


def where_phrase(position: str) -> str:
    return scene_tables()["positions"][position][2]



def relation(first: dict, second: dict) -> str:
    """Where `first` is relative to `second`, for objects in reading order."""
    t = scene_tables()
    (c1, r1, _), (c2, r2, _) = t["positions"][first["position"]], t["positions"][second["position"]]
    horizontal = "to the left of" if c1 < c2 else "to the right of" if c1 > c2 else ""
    vertical = "above" if r1 < r2 else "below" if r1 > r2 else ""
    return " and ".join(p for p in (vertical, horizontal) if p)



def caption_scene(scene: dict) -> list[str]:
    """Several differently worded captions; every one names each object's colour and shape."""
    t = scene_tables()
    templates = t["captions"]
    objects = scene["objects"]
    count_word = t["count_words"][scene["count"]]
    background = background_phrase(scene["background"])
    slots = {"background": background, "a_background": article(background),
             "A_background": capitalise(article(background)),
             "count": count_word, "Count": capitalise(count_word)}
    if scene["count"] == 1:
        obj = objects[0]
        slots.update(thing=object_phrase(obj, size=False), a_thing=article(object_phrase(obj)),
                     size=obj["size"], where=where_phrase(obj["position"]))
        chosen = templates["single"]
    elif scene["group"]:
        sizes = [o["size"] for o in objects]
        if len(set(sizes)) == 1:
            size_text = f"all of them {sizes[0]}"
        else:
            distinct = sorted(set(sizes), key=sizes.index)
            size_text = join_list([f"{t['count_words'][sizes.count(s)]} {s}" for s in distinct])
        slots.update(colour=objects[0]["colour"], shapes=t["shapes"][objects[0]["shape"]]["plural"],
                     sizes=size_text)
        chosen = templates["group"]
    else:
        placed = [f"{article(object_phrase(o))} {where_phrase(o['position'])}" for o in objects]
        slots.update(objects=join_list([article(object_phrase(o)) for o in objects]), objects_where=join_list(placed))
        chosen = list(templates["multi"])
        if scene["count"] == 2:
            slots.update(first=article(object_phrase(objects[0])), second=article(object_phrase(objects[1])),
                         relation=relation(objects[0], objects[1]))
            chosen += templates["pair"]
    return [capitalise(template.format(**slots)) for template in chosen]
