"""`anygpt demo`: a fixed set of any-to-any turns, written as PNG/WAV files and an HTML page.

The inputs are made here (a drawn picture, a synthetic voice-like sound, a few synthesized notes), so
the demo needs no files and no network. Each turn uses the released chat model's task prompt.
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anygpt.prompts import Piece, load_tasks

DEMO_SEED = 0


def demo_image():
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (224, 224), (245, 245, 240))
    ImageDraw.Draw(img).ellipse((56, 56, 168, 168), fill=(200, 30, 30))
    return img


def demo_voice(sample_rate: int, seconds: float = 2.0, f0: float = 140.0) -> np.ndarray:
    """A vowel-like sound: a gliding harmonic tone with syllable-rate loudness (not speech, but
    voiced, so a voice prompt and an ASR input have something to carry)."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    pitch = f0 * (1 + 0.08 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    wav = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 4 * t)) * np.minimum(1, 10 * t) * np.minimum(1, 10 * (seconds - t))
    return (0.3 * wav * envelope / np.abs(wav).max()).astype(np.float32)


def demo_music(sample_rate: int, seconds: float = 3.0, bpm: float = 120.0) -> np.ndarray:
    """An arpeggio of plucked notes (C major), synthesized."""
    beat = 60.0 / bpm / 2
    notes = [60, 64, 67, 72, 67, 64]
    out = np.zeros(int(seconds * sample_rate), dtype=np.float32)
    n = int(beat * sample_rate)
    t = np.arange(n) / sample_rate
    for i in range(int(seconds / beat)):
        f = 440.0 * 2 ** ((notes[i % len(notes)] - 69) / 12)
        tone = (np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t)) * np.exp(-4 * t)
        out[i * n : (i + 1) * n] += 0.4 * tone[: len(out[i * n : (i + 1) * n])]
    return out


@dataclass
class DemoInputs:
    image: object  # PIL image
    caption: str  # a caption to draw (text -> image)
    speech: np.ndarray  # an utterance to transcribe
    voice: np.ndarray  # the voice to speak in (text -> speech, voice chat)
    sentence: str  # a sentence to speak
    music: np.ndarray  # a clip to describe
    music_request: str  # a caption to play (text -> music)
    speech_rate: int
    music_rate: int


def synthetic_inputs(speech_rate: int, music_rate: int) -> DemoInputs:
    """Inputs drawn and synthesized here (for bundles not trained on the world, e.g. debug)."""
    return DemoInputs(demo_image(), "a red circle on a light background", demo_voice(speech_rate),
                      demo_voice(speech_rate), "the quick brown fox jumps over the lazy dog",
                      demo_music(music_rate), "a cheerful piano arpeggio", speech_rate, music_rate)


def world_inputs(seed: int = 0, n: int = 400) -> DemoInputs:
    """Held-out items of the evaluation world (seed 0, n=400: its test split, never trained on),
    generated on the spot: a picture and another's caption, two utterances by different speakers and
    a third sentence, a music clip and another clip's caption."""
    from anygpt.data.world import items, media, music, splits
    from anygpt.data.world.config import WorldConfig

    config = WorldConfig(seed=seed, n=n)
    test = {kind: [i for i, s in enumerate(splits.assign(seed, kind, n)) if s == "test"]
            for kind in ("images", "speech")}
    images = [items.image_rows(config, i, "test")[0] for i in test["images"][:2]]
    speech = [items.speech_rows(config, i, "test")[0] for i in test["speech"][:6]]
    voice = next(r for r in speech[1:] if r["speaker"] != speech[0]["speaker"])
    groups = [g for g, s in enumerate(splits.assign(seed, "music", -(-n // config.clips_per_render))) if s == "test"]
    font = music.find_soundfont()
    clips = items.music_rows(config, groups[0], "test", font)
    other = items.music_rows(config, groups[1], "test", font)[0] if len(groups) > 1 else clips[-1]
    wav = lambda row: media.decode_wav(row["audio"])[0]
    return DemoInputs(
        media.decode_png(images[0]["image"]), images[1]["captions"][0], wav(speech[0]), wav(voice),
        next(r["text"] for r in speech[2:] if r["text"] != speech[0]["text"]), wav(clips[0]),
        other["captions"][0],
        speech[0]["sample_rate"], clips[0]["sample_rate"])


@dataclass
class Turn:
    title: str
    inputs: list[tuple[str, str]]  # (kind, text or file path) shown on the page
    content: list[Piece]
    want: str | None
    rows: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def run_demo(bundle_name: str, out: Path) -> int:
    from anygpt import media
    from anygpt.bundles import load_bundle
    from anygpt.chat import ChatSession, encode_media, write_segments

    t_load = time.perf_counter()
    bundle = load_bundle(bundle_name)
    load_s = time.perf_counter() - t_load
    if bundle.name == "debug":
        print("Running the debug bundle: the official token layout on random tiny weights. Every step "
              "runs for real, but the outputs are noise; the trained default model is not shipped yet.")
    out.mkdir(parents=True, exist_ok=True)
    inputs = out / "inputs"
    tasks = load_tasks()

    sr_speech, sr_music = bundle.codec("speech").sample_rate, bundle.codec("music").sample_rate
    if bundle.name == "debug":
        made = synthetic_inputs(sr_speech, sr_music)
    else:
        t_inputs = time.perf_counter()
        made = world_inputs()
        print(f"demo inputs: held-out items of the evaluation world, made in {time.perf_counter() - t_inputs:.2f} s")
    image_path = media.save_image(made.image, inputs / "picture.png")
    speech_path = media.save_audio(inputs / "speech.wav", made.speech, made.speech_rate)
    voice_path = media.save_audio(inputs / "voice.wav", made.voice, made.speech_rate)
    music_path = media.save_audio(inputs / "music.wav", made.music, made.music_rate)
    voice = media.load_audio(voice_path, sr_speech)
    image = encode_media(bundle, "image", image_path)
    speech = encode_media(bundle, "speech", speech_path)
    music = encode_media(bundle, "music", music_path)
    caption, sentence, request = made.caption, made.sentence, made.music_request

    single = [
        Turn("text -> image", [("text", caption)], tasks["t2i"].chat_pieces(caption), "image"),
        Turn("image -> text", [("image", str(image_path))], tasks["caption"].chat_pieces(image), "text"),
        Turn("speech -> text", [("speech", str(speech_path))], tasks["asr"].chat_pieces(speech), "text"),
        Turn("text -> speech (voice of inputs/voice.wav)", [("text", sentence), ("voice", str(voice_path))],
             tasks["tts"].chat_pieces(sentence), "speech"),
        Turn("music -> text", [("music", str(music_path))], tasks["music_caption"].chat_pieces(music), "text"),
        Turn("text -> music", [("text", request)], tasks["t2m"].chat_pieces(request), "music"),
    ]
    conversation = [
        Turn("conversation 1/3: image in, text out", [("image", str(image_path)), ("text", "What is in this picture?")],
             [image, " What is in this picture?"], "text"),
        Turn("conversation 2/3: text in, music out", [("text", "Write a short tune that fits it.")],
             ["Write a short tune that fits it."], "music"),
        Turn("conversation 3/3: speech in, speech out", [("speech", str(speech_path))],
             tasks["voice_chat"].chat_pieces(speech), "speech"),
    ]

    session = ChatSession(bundle, decoding=bundle.decoding.override(seed=DEMO_SEED))
    for i, turn in enumerate(single + conversation):
        if i < len(single):
            session.reset()  # the single-task turns are independent
        t0 = time.perf_counter()
        reply = session.ask(turn.content, want=turn.want)
        turn.rows = write_segments(bundle, reply.segments, out, voice=voice, seed=DEMO_SEED, stem=f"turn{i + 1}")
        turn.seconds = time.perf_counter() - t0
        made = ", ".join(_describe(r) for r in turn.rows) or "(empty reply)"
        print(f"{turn.title:45s} {turn.seconds:6.2f} s  {made}")

    turns = single + conversation
    total = sum(t.seconds for t in turns)
    print(f"bundle loaded in {load_s:.2f} s; {len(turns)} turns in {total:.2f} s on "
          f"{bundle.model.device}; page: {out / 'index.html'}")
    summary = {"bundle": bundle.name, "load_seconds": round(load_s, 3),
               "turns": [{"title": t.title, "inputs": t.inputs, "want": t.want, "seconds": round(t.seconds, 3),
                          "segments": t.rows} for t in turns]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "index.html").write_text(_page(bundle, turns, out), encoding="utf-8")
    return 0


def _describe(row: dict) -> str:
    if row["modality"] == "text":
        text = row["text"]
        return repr(text if len(text) < 40 else text[:37] + "...")
    return f"{row['modality']} ({row['num_codes']} codes)"


def _media_html(kind: str, path: str | None, out: Path) -> str:
    if path is None:
        return "<em>not decoded</em>"
    rel = html.escape(str(Path(path).resolve().relative_to(out.resolve())))
    if kind == "image":
        return f'<img src="{rel}" width="160">'
    return f'<audio controls src="{rel}"></audio>'


def _page(bundle, turns: list[Turn], out: Path) -> str:
    rows = []
    for t in turns:
        ins = "<br>".join(
            html.escape(v) if k == "text" else f"{k}: " + _media_html(k if k != "voice" else "speech", v, out)
            for k, v in t.inputs)
        outs = "<br>".join(
            html.escape(r["text"]) if r["modality"] == "text"
            else f"{r['modality']} ({r['num_codes']} codes): " + _media_html(r["modality"], r["path"], out)
            for r in t.rows) or "<em>empty reply</em>"
        rows.append(f"<tr><td>{html.escape(t.title)}</td><td>{ins}</td><td>{outs}</td><td>{t.seconds:.2f} s</td></tr>")
    note = html.escape(bundle.description)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>anygpt demo: {html.escape(bundle.name)}</title>
<style>body{{font-family:sans-serif;margin:2em}}td{{border-top:1px solid #ccc;padding:.5em;vertical-align:top}}</style>
</head><body>
<h1>anygpt demo: bundle {html.escape(bundle.name)}</h1><p>{note}</p>
<table><tr><th>turn</th><th>input</th><th>reply</th><th>latency</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""
