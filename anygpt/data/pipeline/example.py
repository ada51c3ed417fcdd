"""A tiny raw dataset in the tokenizer's input format, made on the spot (for tests, the benchmark and
the README): coloured shapes with captions, tones with descriptions, both as pairs, interleaved
documents and chats (ours and the AnyInstruct layout). The captions follow from the media, so even
a tiny model can lower its validation loss on them.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40)}
SHAPES = ("square", "circle", "stripe")
NOTES = {"low": 220.0, "middle": 440.0, "high": 880.0}


def _image(colour: str, shape: str, path: Path, rng: random.Random) -> None:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (64, 64), (245, 245, 245))
    d = ImageDraw.Draw(img)
    c = COLOURS[colour]
    o = rng.randint(0, 8)
    if shape == "square":
        d.rectangle([12 + o, 12, 48 + o, 48], fill=c)
    elif shape == "circle":
        d.ellipse([10, 10 + o, 50, 50 + o], fill=c)
    else:
        d.rectangle([0, 24 + o, 63, 36 + o], fill=c)
    img.save(path)


def _tone(freq: float, seconds: float, sr: int, path: Path, rng: random.Random) -> None:
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    wav = 0.5 * np.sin(2 * np.pi * freq * t) * (0.8 + 0.2 * rng.random())
    sf.write(path, wav.astype(np.float32), sr)


def write_example_dataset(folder: str | Path, *, pairs: int = 24, docs: int = 4, chats: int = 8,
                          seed: int = 0, speech_seconds: float = 0.4, music_seconds: float = 0.4) -> dict:
    """Write images.jsonl, speech.jsonl, music.jsonl, docs.jsonl, chats.jsonl, anyinstruct.json and
    their media under `folder`; returns {name: path}."""
    folder = Path(folder)
    (folder / "media").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    files = {}

    def dump(name: str, records: list[dict]) -> None:
        p = folder / name
        p.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        files[name.split(".")[0]] = p

    images, speech, music = [], [], []
    for i in range(pairs):
        colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
        _image(colour, shape, folder / "media" / f"img{i}.png", rng)
        images.append({"id": f"img{i}", "image": f"media/img{i}.png", "text": f"A {colour} {shape}."})
        note = rng.choice(list(NOTES))
        _tone(NOTES[note], speech_seconds, 16000, folder / "media" / f"sp{i}.wav", rng)
        speech.append({"id": f"sp{i}", "speech": f"media/sp{i}.wav", "text": f"a {note} hum"})
        _tone(NOTES[note] / 2, music_seconds, 32000, folder / "media" / f"mu{i}.wav", rng)
        music.append({"id": f"mu{i}", "music": f"media/mu{i}.wav", "text": f"A calm {note} drone."})
    dump("images.jsonl", images)
    dump("speech.jsonl", speech)
    dump("music.jsonl", music)
    dump("docs.jsonl", [{"id": f"doc{i}", "segments": [
        {"text": "Here is a picture: "}, {"image": images[i]["image"]},
        {"text": f" It shows {images[i]['text'].lower()} Next, "}, {"image": images[i + 1]["image"]},
        {"text": f" which is {images[i + 1]['text'].lower()}"}]} for i in range(min(docs, pairs - 1))])
    chat_records = []
    for i in range(chats):
        a, b = images[i % pairs], speech[i % pairs]
        chat_records.append({"id": f"chat{i}", "messages": [
            {"role": "user", "content": [{"image": a["image"]}, {"text": " What is this?"}]},
            {"role": "assistant", "content": f"It is {a['text'].lower()}"},
            {"role": "user", "content": [{"text": "And this sound? "}, {"speech": b["speech"]}]},
            {"role": "assistant", "content": f"That is {b['text']}."}]})
    dump("chats.jsonl", chat_records)
    any_instruct = [{"chat": [
        {"role": "USER", "message": f"Draw {images[i]['text'].lower()}"},
        {"role": "AnyGPT", "message": f"Here it is: <image>{images[i]['image']}</image>"}]} for i in range(chats)]
    p = folder / "anyinstruct.json"
    p.write_text(json.dumps(any_instruct), encoding="utf-8")
    files["anyinstruct"] = p
    return files


PRETRAIN_MIXTURE = """\
[mixture]
seed = 0
budget_tokens = {budget}
val_fraction = 0.2

[[datasets]]
name = "images"
units = "units/images"
rate = 0.4
to_text = 0.5

[[datasets]]
name = "speech"
units = "units/speech"
rate = 0.3
to_text = 0.5

[[datasets]]
name = "music"
units = "units/music"
rate = 0.2
to_text = 0.5

[[datasets]]
name = "docs"
units = "units/docs"
rate = 0.1
"""

INSTRUCT_MIXTURE = """\
[mixture]
seed = 0
budget_tokens = {budget}
val_fraction = 0.2

[[datasets]]
name = "chats"
units = "units/chats"
rate = 0.7

[[datasets]]
name = "anyinstruct"
units = "units/anyinstruct"
rate = 0.3
"""
