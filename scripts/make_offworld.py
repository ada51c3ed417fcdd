"""Write the off-world check set: pictures, speech and prompts that the world generator did not make.

    python scripts/make_offworld.py [--out tests/fixtures/offworld] [--seed 0]

Every item the models train and are judged on comes from the world (anygpt/world/). This set
speaks the world's vocabulary (scenes.json names and RGB values, words the world's sentences use), so
the same judges score it, but each item is made by another program:

    images/NN.png   64x64 RGB drawn by matplotlib's Agg rasteriser straight at 64 px (the world draws
                    with PIL at 4x and downsamples): centres up to 2 px off the 3x3 cell centres, sizes
                    scaled by 0.95-1.05, own outlines (Bezier heart, fatter star, wider cross arms,
                    narrower diamond), own background stripe, dot and checker periods and gradient
    speech/NN.wav   16 kHz mono 16-bit: espeak-ng voices (the world has none) and flite at rates and
                    pitches voices.json does not use, speaking hand-written sentences
    prompts         text-to-image requests in other words than scenes.json's caption templates
                    ("big" for large, "in the middle" for centre, ...), each stating every attribute
    manifest.json   every item: kind, file, truth (attributes or transcript), how it was made, sha256

It reads only the world's tables (anygpt.world.table), never its generators. Deterministic: a
seeded random.Random draws the jitter and the tools write byte-identical files for the same versions
(tests/test_offworld.py regenerates the set and compares hashes). About 5 s on one core.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import json
import math
import random
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
from PIL import Image

from anygpt.world import table

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "offworld"
SIDE = 64  # pixels: the world's image size, which the image judge reads
SAMPLE_RATE = 16_000  # Hz: the world's speech rate and the ASR judge's
PEAK = 0.8  # peak amplitude of every clip (the world normalises to 0.9)
# The image judge saw only objects on the cell centres: on 160 renders of this set's scenes (other
# seeds) its shape accuracy was 0.98 with no shift, 0.95 with shifts up to 1.5 px, 0.91 up to 2 px and
# 0.76 up to 3 px; its mean over every attribute stayed above 0.95.
OFFSET_PX = 2.0  # largest shift of an object's centre from its cell centre, per axis
SIZE_SCALE = (0.95, 1.05)  # range of the factor on scenes.json's radius (fraction of the side)
EDGE_PX = 0.5  # an object stays this far inside the picture after its shift
WORLD_MIN_GAP = 0.02  # two objects' circles at the cell centres stay this far apart (fraction of the side)
MIN_GAP_PX = 1.5  # two objects' circumscribed circles stay this far apart after their shifts
BG_SHADE, OBJECT_SHADE, GRADIENT_SHADE = 0.2, 0.45, 0.4  # how far a pattern's second tone moves
BG_PERIOD_PX = 7.0  # background stripes, dots and checks (the world's: 8 px)
# An object's texture is what "striped" and "dotted" mean to the image judge: it read our first
# textures (6 px "/" stripes, 5 px dots) as striped 1 in 4 and dotted 0 in 3, so stripes and dots
# keep the world's period and direction (side / 12, "\" diagonals), drawn here by matplotlib.
PATTERN_PERIOD_PX = SIDE / 12
DOT_RADIUS_PX = PATTERN_PERIOD_PX / 4

# ----------------------------------------------------------------------------------------------
# The set, written by hand. Objects: (shape, colour, size, position, pattern), in reading order.

SCENES = [  # (background colour, background pattern, objects)
    ("white", "plain", [("circle", "red", "large", "centre", "solid")]),
    ("light grey", "plain", [("square", "blue", "medium", "top left", "solid")]),
    ("beige", "plain", [("triangle", "green", "small", "bottom right", "solid")]),
    ("navy", "plain", [("star", "yellow", "large", "centre", "solid")]),
    ("light blue", "gradient", [("hexagon", "purple", "medium", "right", "striped")]),
    ("black", "plain", [("cross", "white", "medium", "left", "solid")]),
    ("light green", "plain", [("heart", "brown", "large", "bottom", "dotted")]),
    ("dark grey", "checkered", [("diamond", "yellow", "large", "top", "solid")]),
    ("white", "striped", [("star", "black", "medium", "bottom left", "solid")]),
    ("beige", "dotted", [("circle", "blue", "large", "top right", "striped")]),
    ("navy", "gradient", [("triangle", "orange", "medium", "centre", "solid")]),
    ("dark grey", "plain", [("heart", "pink", "medium", "centre", "solid")]),
    ("white", "plain", [("triangle", "red", "large", "centre", "solid")]),  # held-out pairs from here
    ("light blue", "plain", [("star", "blue", "medium", "bottom", "solid")]),
    ("beige", "plain", [("circle", "green", "medium", "top left", "solid")]),
    ("black", "plain", [("square", "yellow", "large", "right", "solid")]),
    ("white", "gradient", [("heart", "purple", "large", "centre", "dotted")]),
    ("light green", "plain", [("hexagon", "orange", "medium", "top right", "solid")]),
    ("white", "plain", [("square", "red", "small", "top left", "solid"),
                        ("circle", "blue", "medium", "bottom right", "solid")]),
    ("navy", "plain", [("star", "white", "medium", "top", "solid"), ("heart", "yellow", "medium", "bottom", "solid")]),
    ("light blue", "plain", [("diamond", "pink", "medium", "left", "solid"),
                             ("cross", "green", "medium", "right", "solid")]),
    ("beige", "checkered", [("hexagon", "black", "large", "top left", "striped"),
                            ("circle", "red", "small", "bottom right", "solid")]),
    ("dark grey", "plain", [("circle", "orange", "small", "top right", "solid"),
                            ("circle", "orange", "small", "bottom left", "solid")]),
    ("light blue", "plain", [("cross", "brown", "medium", "top right", "solid"),
                             ("triangle", "purple", "medium", "bottom left", "solid")]),
]

PROMPTS = [  # (request, background colour, background pattern, objects): each request says everything
    ("Draw a big red circle in the middle of a plain white background.",
     "white", "plain", [("circle", "red", "large", "centre", "solid")]),
    ("Please make a picture of two medium blue squares, one at the upper left and one at the lower right, "
     "on a plain navy background.",
     "navy", "plain", [("square", "blue", "medium", "top left", "solid"),
                       ("square", "blue", "medium", "bottom right", "solid")]),
    ("Paint a little yellow star near the top edge, on a plain black background.",
     "black", "plain", [("star", "yellow", "small", "top", "solid")]),
    ("I would like a medium-sized green triangle on the left-hand side over a light grey background with "
     "horizontal stripes.",
     "light grey", "striped", [("triangle", "green", "medium", "left", "solid")]),
    ("Show me a large purple hexagon with dots, placed at the lower left, against plain beige.",
     "beige", "plain", [("hexagon", "purple", "large", "bottom left", "dotted")]),
    ("Could you draw a tiny white cross near the bottom edge, on a dark grey backdrop with no pattern?",
     "dark grey", "plain", [("cross", "white", "small", "bottom", "solid")]),
    ("Make an image: a big orange heart covered in stripes, in the middle, over a light blue gradient.",
     "light blue", "gradient", [("heart", "orange", "large", "centre", "striped")]),
    ("A medium brown diamond in the upper right corner on a checkered light green background, please.",
     "light green", "checkered", [("diamond", "brown", "medium", "top right", "solid")]),
    ("Draw a red triangle, medium size, right in the centre, on plain white.",
     "white", "plain", [("triangle", "red", "medium", "centre", "solid")]),
    ("Picture a large blue star at the upper left on a plain beige background.",
     "beige", "plain", [("star", "blue", "large", "top left", "solid")]),
    ("Put a little green circle at the lower right, on a plain light grey background.",
     "light grey", "plain", [("circle", "green", "small", "bottom right", "solid")]),
    ("Draw a big yellow square on the right-hand side of a plain navy canvas.",
     "navy", "plain", [("square", "yellow", "large", "right", "solid")]),
    ("Create a medium purple heart on the left-hand side, on a white background covered in dots.",
     "white", "dotted", [("heart", "purple", "medium", "left", "solid")]),
    ("Draw a little pink circle at the upper left and a big black square at the lower right, both on "
     "plain white.",
     "white", "plain", [("circle", "pink", "small", "top left", "solid"),
                        ("square", "black", "large", "bottom right", "solid")]),
    ("Please draw an orange hexagon of medium size near the top edge and a little blue cross near the "
     "bottom edge, on a plain light green background.",
     "light green", "plain", [("hexagon", "orange", "medium", "top", "solid"),
                              ("cross", "blue", "small", "bottom", "solid")]),
    ("Draw three little red stars in a row along the top, on a plain beige background.",
     "beige", "plain", [("star", "red", "small", "top left", "solid"), ("star", "red", "small", "top", "solid"),
                        ("star", "red", "small", "top right", "solid")]),
]

# Sentences over words the world's sentences use (the ASR judge's dictionary holds them all), in
# frames of our own. Voices: espeak-ng (voice, words per minute, pitch 0-99) and flite (voice,
# duration_stretch, mean pitch in Hz or None); the world speaks flite at stretch 0.85, 1.0 and 1.2
# only, and sets the pitch of slt (150, 230 Hz), awb (150 Hz) and kal16 (220 Hz) only.
SPEECH = [
    ("Anna and her cousin walked to the market after lunch.", "espeak-ng", ("en-us+klatt3", 150, 50)),
    ("The little kitten is sleeping behind the old piano.", "espeak-ng", ("en-gb-x-rp", 150, 45)),
    ("Why did the driver stop near the bridge?", "espeak-ng", ("en-gb-scotland", 150, 40)),
    ("Please bring me two spoons and a clean plate.", "espeak-ng", ("en-us+f3", 150, 60)),
    ("The farmer sold twelve eggs and some fresh honey at the market.", "espeak-ng", ("en-us+klatt2", 150, 40)),
    ("My grandmother always reads a newspaper in the morning.", "espeak-ng", ("en-us-nyc", 165, 50)),
    ("Peter painted the old harbour on Sunday.", "espeak-ng", ("en-us+klatt", 145, 55)),
    ("The children were swimming in the lake when it started raining.", "espeak-ng", ("en-029", 145, 50)),
    ("Where is the yellow umbrella?", "flite", ("kal", 1.4, None)),
    ("Henry has never seen a wild fox in the forest.", "flite", ("kal16", 0.75, None)),
    ("We will visit the museum next week with our teacher.", "flite", ("awb", 1.0, 95)),
    ("The noisy ducks followed the boy to the river.", "flite", ("rms", 1.45, None)),
    ("She wrote a short letter to her friend in the village.", "flite", ("slt", 0.72, None)),
    ("The pilot and the nurse ate pizza at the station.", "flite", ("slt", 1.0, 290)),
    ("It is getting cold, so the girls found their warm scarves.", "flite", ("rms", 1.0, 140)),
    ("Did you hear the violin at the concert last night?", "flite", ("kal16", 1.35, 80)),
]

SIZE_WORDS = {"small": "little", "medium": "medium-sized", "large": "big"}
WHERE_WORDS = {"top left": "at the upper left", "top": "near the top edge", "top right": "at the upper right",
               "left": "on the left-hand side", "centre": "in the middle", "right": "on the right-hand side",
               "bottom left": "at the lower left", "bottom": "near the bottom edge",
               "bottom right": "at the lower right"}
NUMBER_WORDS = {2: "two", 3: "three"}


# ----------------------------------------------------------------------------------------------
# Attributes, in the world's scene dict format


def scene_dict(bg_colour: str, bg_pattern: str, objects: list[tuple]) -> dict:
    """The world's scene format: group when every object is the same colour and shape."""
    t = table("scenes")
    held_out = {tuple(p) for p in t["held_out_colour_shape"]}
    objs = [dict(zip(("shape", "colour", "size", "position", "pattern"), o, strict=True)) for o in objects]
    pairs = {(o["colour"], o["shape"]) for o in objs}
    return {"count": len(objs), "group": len(objs) > 1 and len(pairs) == 1,
            "novel_combination": bool(pairs & held_out),
            "background": {"colour": bg_colour, "pattern": bg_pattern}, "objects": objs}


def check_scene(scene: dict) -> None:
    """The world's rules: its names, reading order, visible colours, no overlaps, small means solid."""
    t = table("scenes")
    bg = scene["background"]
    assert bg["colour"] in t["backgrounds"] and bg["pattern"] in t["background_patterns"], bg
    cells = [t["positions"][o["position"]][:2] for o in scene["objects"]]
    assert cells == sorted(cells, key=lambda c: (c[1], c[0])) and len(set(map(tuple, cells))) == len(cells), cells
    for o in scene["objects"]:
        assert o["shape"] in t["shapes"] and o["colour"] in t["colours"] and o["size"] in t["sizes"], o
        assert o["pattern"] in t["object_patterns"], o
        assert o["pattern"] == "solid" or (o["size"] != "small" and not scene["group"]), o
        assert math.dist(t["colours"][o["colour"]], t["backgrounds"][bg["colour"]]) >= t["min_contrast"], o
    centres = [(t["cell_centres"][c], t["cell_centres"][r]) for c, r in cells]
    radii = [t["sizes"][o["size"]] for o in scene["objects"]]
    for i in range(len(centres)):
        for j in range(i + 1, len(centres)):
            assert math.dist(centres[i], centres[j]) - radii[i] - radii[j] >= WORLD_MIN_GAP, scene


# ----------------------------------------------------------------------------------------------
# Captions in our own words


def object_words(obj: dict) -> str:
    pattern = {"solid": "", "striped": " with stripes", "dotted": " with dots"}[obj["pattern"]]
    return f"{SIZE_WORDS[obj['size']]} {obj['colour']} {obj['shape']}{pattern}"


def with_article(words: str) -> str:
    return ("an " if words[0] in "aeiou" else "a ") + words


def background_words(colour: str, pattern: str) -> str:
    bright = is_bright(table("scenes")["backgrounds"][colour])
    return {"plain": f"a plain {colour} backdrop", "striped": f"a {colour} backdrop with horizontal stripes",
            "dotted": f"a {colour} backdrop with dots", "checkered": f"a {colour} checkerboard backdrop",
            "gradient": f"a {colour} backdrop that turns {'darker' if bright else 'lighter'} towards the bottom"}[pattern]


def caption(scene: dict, index: int) -> str:
    objects, bg = scene["objects"], background_words(**scene["background"])
    if scene["group"]:
        o = objects[0]
        plural = table("scenes")["shapes"][o["shape"]]["plural"]
        wheres = " and ".join(WHERE_WORDS[p["position"]] for p in objects)
        text = f"{NUMBER_WORDS[len(objects)]} {SIZE_WORDS[o['size']]} {o['colour']} {plural}, {wheres}, on {bg}"
    elif len(objects) == 2:
        a, b = objects
        text = (f"{with_article(object_words(a))} {WHERE_WORDS[a['position']]} and "
                f"{with_article(object_words(b))} {WHERE_WORDS[b['position']]}, on {bg}")
    elif index % 2:
        o = objects[0]
        text = f"on {bg}, {with_article(object_words(o))} sits {WHERE_WORDS[o['position']]}"
    else:
        o = objects[0]
        text = f"one {object_words(o)} {WHERE_WORDS[o['position']]}, against {bg}"
    return text[0].upper() + text[1:] + "."


# ----------------------------------------------------------------------------------------------
# Drawing with matplotlib (coordinates in pixels, y down)


def is_bright(rgb: list[int]) -> bool:
    return sum(rgb) > 360


def shade(rgb: list[int], amount: float) -> tuple[float, ...]:
    """A second tone of a colour for patterns, as 0-1 floats: towards black if bright, else white."""
    target = 0.0 if is_bright(rgb) else 255.0
    return tuple((c + (target - c) * amount) / 255 for c in rgb)


def rgb01(rgb: list[int]) -> tuple[float, ...]:
    return tuple(c / 255 for c in rgb)


def outline(shape: str, cx: float, cy: float, r: float):
    """A matplotlib Path of the shape, inside a circle of radius r around (cx, cy)."""
    from matplotlib.path import Path as MplPath

    def polygon(points):
        vertices = [(cx + x * r, cy + y * r) for x, y in points]
        return MplPath(vertices + vertices[:1], closed=True)  # closed: the last vertex is not drawn

    def ring(n, start_deg, radius=1.0):
        return [(radius * math.cos(math.radians(start_deg + 360 * k / n)),
                 radius * math.sin(math.radians(start_deg + 360 * k / n))) for k in range(n)]

    if shape == "circle":
        return MplPath.circle((cx, cy), r)
    if shape == "square":
        h = 0.72
        return polygon([(-h, -h), (h, -h), (h, h), (-h, h)])
    if shape == "triangle":  # apex up, centroid 0.06 r below the centre
        return polygon([(x, y + 0.06) for x, y in ring(3, -90)])
    if shape == "diamond":
        return polygon([(0, -1), (0.64, 0), (0, 1), (-0.64, 0)])
    if shape == "hexagon":  # flat top: the judge read a hexagon standing on a vertex as a circle (0 in 10)
        return polygon(ring(6, 0))
    if shape == "star":
        outer, inner = ring(5, -90), ring(5, -54, 0.47)
        return polygon([p for pair in zip(outer, inner, strict=True) for p in pair])
    if shape == "cross":
        w, a = 0.36, 0.9
        return polygon([(-w, -a), (w, -a), (w, -w), (a, -w), (a, w), (w, w), (w, a), (-w, a), (-w, w),
                        (-a, w), (-a, -w), (-w, -w)])
    if shape == "heart":  # two cubic Bezier lobes from the bottom tip through the top dip
        pts = [(0, 0.88), (-0.3, 0.55), (-0.98, 0.18), (-0.98, -0.3), (-0.98, -0.78), (-0.38, -0.95), (0, -0.5),
               (0.38, -0.95), (0.98, -0.78), (0.98, -0.3), (0.98, 0.18), (0.3, 0.55), (0, 0.88)]
        codes = [MplPath.MOVETO] + [MplPath.CURVE4] * 12
        return MplPath([(cx + x * r, cy + y * r) for x, y in pts], codes)
    raise ValueError(f"unknown shape {shape!r}")


def stripes(period: float, slope: float) -> list[list[tuple[float, float]]]:
    """Half-period bands across the picture, x = k + slope * y."""
    bands = []
    k = -SIDE * abs(slope) - period
    while k < SIDE + period:
        bands.append([(k, 0), (k + period / 2, 0), (k + period / 2 + slope * SIDE, SIDE), (k + slope * SIDE, SIDE)])
        k += period
    return bands


def dots(period: float, radius: float, offset: float) -> list:
    from matplotlib.patches import Circle

    centres = np.arange(offset, SIDE + period, period)
    return [Circle((x, y), radius) for y in centres for x in centres]


def draw_background(ax, colour: str, pattern: str) -> None:
    from matplotlib.collections import PatchCollection, PolyCollection
    from matplotlib.patches import Rectangle

    rgb = table("scenes")["backgrounds"][colour]
    other = shade(rgb, BG_SHADE)
    if pattern == "gradient":  # top: the colour; bottom: its shade
        ramp = np.linspace(0.0, 1.0, SIDE)[:, None, None]  # (H, 1, 1)
        pixels = np.asarray(rgb01(rgb)) * (1 - ramp) + np.asarray(shade(rgb, GRADIENT_SHADE)) * ramp  # (H, 1, 3)
        ax.imshow(pixels, extent=(0, SIDE, SIDE, 0), aspect="auto", interpolation="bilinear")
        return
    ax.add_patch(Rectangle((0, 0), SIDE, SIDE, facecolor=rgb01(rgb), edgecolor="none"))
    if pattern == "striped":  # horizontal bands
        bands = [[(0, y), (SIDE, y), (SIDE, y + BG_PERIOD_PX / 2), (0, y + BG_PERIOD_PX / 2)]
                 for y in np.arange(0, SIDE, BG_PERIOD_PX)]
        ax.add_collection(PolyCollection(bands, facecolors=[other], edgecolors="none"))
    elif pattern == "dotted":
        ax.add_collection(PatchCollection(dots(BG_PERIOD_PX, 1.5, BG_PERIOD_PX / 2), facecolors=[other],
                                          edgecolors="none"))
    elif pattern == "checkered":
        n = math.ceil(SIDE / BG_PERIOD_PX)
        squares = [[(i * BG_PERIOD_PX, j * BG_PERIOD_PX), ((i + 1) * BG_PERIOD_PX, j * BG_PERIOD_PX),
                    ((i + 1) * BG_PERIOD_PX, (j + 1) * BG_PERIOD_PX), (i * BG_PERIOD_PX, (j + 1) * BG_PERIOD_PX)]
                   for j in range(n) for i in range(n) if (i + j) % 2]
        ax.add_collection(PolyCollection(squares, facecolors=[other], edgecolors="none"))
    elif pattern != "plain":
        raise ValueError(f"unknown background pattern {pattern!r}")


def draw_object(ax, obj: dict, cx: float, cy: float, r: float) -> None:
    from matplotlib.collections import PatchCollection, PolyCollection
    from matplotlib.patches import PathPatch

    rgb = table("scenes")["colours"][obj["colour"]]
    patch = PathPatch(outline(obj["shape"], cx, cy, r), facecolor=rgb01(rgb), edgecolor="none")
    ax.add_patch(patch)
    other = shade(rgb, OBJECT_SHADE)
    if obj["pattern"] == "striped":  # diagonals running down to the right
        fill = PolyCollection(stripes(PATTERN_PERIOD_PX, 1.0), facecolors=[other], edgecolors="none")
    elif obj["pattern"] == "dotted":
        fill = PatchCollection(dots(PATTERN_PERIOD_PX, DOT_RADIUS_PX, PATTERN_PERIOD_PX / 2), facecolors=[other],
                               edgecolors="none")
    else:
        return
    ax.add_collection(fill)
    fill.set_clip_path(patch)


def place(scene: dict, rng: random.Random) -> list[tuple[float, float, float]]:
    """(cx, cy, r) in pixels per object: the cell centre shifted, the radius scaled, kept in frame."""
    t = table("scenes")
    placed = []
    for obj in scene["objects"]:
        col, row, _ = t["positions"][obj["position"]]
        r = t["sizes"][obj["size"]] * SIDE * rng.uniform(*SIZE_SCALE)
        cx, cy = (t["cell_centres"][i] * SIDE + rng.uniform(-OFFSET_PX, OFFSET_PX) for i in (col, row))
        low, high = r + EDGE_PX, SIDE - r - EDGE_PX
        placed.append((min(max(cx, low), high), min(max(cy, low), high), r))
    for (ax, ay, ar), (bx, by, br) in itertools.combinations(placed, 2):
        assert math.dist((ax, ay), (bx, by)) - ar - br >= MIN_GAP_PX, scene
    return placed


def render(scene: dict, placed: list[tuple[float, float, float]]) -> Image.Image:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1), dpi=SIDE)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    draw_background(ax, **scene["background"])
    for obj, (cx, cy, r) in zip(scene["objects"], placed, strict=True):
        draw_object(ax, obj, cx, cy, r)
    ax.set_xlim(0, SIDE)  # after drawing: imshow would move the limits
    ax.set_ylim(SIDE, 0)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3]  # (64, 64, 3)
    assert pixels.shape == (SIDE, SIDE, 3), pixels.shape
    return Image.fromarray(pixels.copy())


# ----------------------------------------------------------------------------------------------
# Speech


def tool_version(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # flite --version exits 1
    return " ".join((result.stdout + result.stderr).split())


def synthesize(text: str, program: str, settings: tuple) -> np.ndarray:
    """Speak `text` -> float32 (T,) at SAMPLE_RATE, peak PEAK."""
    import soxr

    with tempfile.TemporaryDirectory(prefix="offworld-") as folder:
        path = Path(folder) / "speech.wav"
        if program == "espeak-ng":
            voice, wpm, pitch = settings
            command = ["espeak-ng", "-v", voice, "-s", str(wpm), "-p", str(pitch), "-w", str(path), text]
        else:
            voice, stretch, pitch_hz = settings
            command = ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch}"]
            command += ["--setf", f"int_f0_target_mean={pitch_hz}"] if pitch_hz is not None else []
            command += ["-t", text, "-o", str(path)]
        subprocess.run(command, capture_output=True, check=True)
        with wave.open(str(path), "rb") as f:
            assert f.getnchannels() == 1 and f.getsampwidth() == 2, path
            rate = f.getframerate()
            samples = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").astype(np.float64) / 32768
    if rate != SAMPLE_RATE:
        samples = soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ")
    return (samples * (PEAK / np.abs(samples).max())).astype(np.float32)


def wav_bytes(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
        f.writeframes(np.round(samples * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def speech_made(program: str, settings: tuple, versions: dict) -> dict:
    if program == "espeak-ng":
        voice, wpm, pitch = settings
        return {"program": versions[program], "voice": voice, "words_per_minute": wpm, "pitch": pitch}
    voice, stretch, pitch_hz = settings
    return {"program": versions[program], "voice": voice, "duration_stretch": stretch, "pitch_hz": pitch_hz}


# ----------------------------------------------------------------------------------------------


def write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def make(out: Path, seed: int = 0) -> dict:
    """Write the set under `out` (replacing images/, speech/ and manifest.json); the manifest."""
    import matplotlib

    for tool in ("espeak-ng", "flite"):
        if shutil.which(tool) is None:
            raise SystemExit(f"make_offworld: {tool} is not installed (apt-get install {tool})")
    versions = {"espeak-ng": tool_version(["espeak-ng", "--version"]).split(" Data at")[0],
                "flite": tool_version(["flite", "--version"]).split("version: ")[-1].split(" (")[0]}
    for sub in ("images", "speech"):
        shutil.rmtree(out / sub, ignore_errors=True)
    rng = random.Random(seed)
    items = []
    for i, (bg_colour, bg_pattern, objects) in enumerate(SCENES):
        scene = scene_dict(bg_colour, bg_pattern, objects)
        check_scene(scene)
        file = f"images/{i:02d}.png"
        placed = place(scene, rng)
        digest = write(out / file, png_bytes(render(scene, placed)))
        items.append({"id": f"image-{i:02d}", "kind": "image", "file": file, "attributes": scene,
                      "caption": caption(scene, i), "sha256": digest,
                      "made": {"program": f"matplotlib {matplotlib.__version__} (Agg)",
                               "centre_radius_px": [[round(v, 2) for v in p] for p in placed]}})
    for i, (text, program, settings) in enumerate(SPEECH):
        file = f"speech/{i:02d}.wav"
        samples = synthesize(text, program, settings)
        digest = write(out / file, wav_bytes(samples))
        items.append({"id": f"speech-{i:02d}", "kind": "speech", "file": file, "transcript": text,
                      "samples": len(samples), "seconds": round(len(samples) / SAMPLE_RATE, 3),
                      "sha256": digest,
                      "made": speech_made(program, settings, versions)})
    for i, (text, bg_colour, bg_pattern, objects) in enumerate(PROMPTS):
        scene = scene_dict(bg_colour, bg_pattern, objects)
        check_scene(scene)
        items.append({"id": f"prompt-{i:02d}", "kind": "prompt", "file": None, "prompt": text,
                      "attributes": scene, "made": {"program": "hand-written"}})
    manifest = {"name": "offworld", "seed": seed, "image_side": SIDE, "sample_rate": SAMPLE_RATE,
                "made_by": "scripts/make_offworld.py", "items": items}
    write(out / "manifest.json", (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode())
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder to write (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pictures' jitter")
    args = parser.parse_args()
    manifest = make(args.out, args.seed)
    kinds = [item["kind"] for item in manifest["items"]]
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out}: {kinds.count('image')} images, {kinds.count('speech')} clips, "
          f"{kinds.count('prompt')} prompts, {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
