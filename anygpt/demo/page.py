"""`anygpt demo`: a fixed set of any-to-any turns, written as PNG/WAV files and an HTML page.

The inputs are held-out items of the evaluation world, generated on the spot, or for a bundle not
trained on the world (debug) a drawn picture, a synthetic voice-like sound and a few synthesized notes;
so the demo needs no files and no network. Each turn uses the released chat model's task prompt.

With world inputs the world knows every single-task turn's answer, and the page sets it beside the
reply, with the evaluation judges' reading of the reply, the figure the task scores in
anygpt/eval/tasks.py and a one-word verdict (VERDICT_RULES):

    turn              expected                         judged by (as the task)           verdict on
    text -> image     the world's picture of caption   image judge: attributes, phrase   attr_acc
    image -> text     the picture's world captions     caption_attr_acc                  attr_acc
    speech -> text    the transcript                   speech_judge.wer                        wer
    text -> speech    the sentence                     pocketsphinx, wer, resemblyzer    wer
    music -> text     the clip's world captions        music_caption_accuracy            attr_acc
    text -> music     the clip the caption describes   music judge: attributes           attr_acc
    conversation      the picture's captions (1/3); open-ended (2/3, 3/3: read, not judged)

Judges load on first use, so the debug path (synthetic inputs: nothing to expect) stays fast.
"""

from __future__ import annotations

import functools
import html
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anygpt import media
from anygpt.bundles import load_bundle
from anygpt.chat import ChatSession, encode_media, write_segments
from anygpt.errors import AnyGPTError
from anygpt.eval.judges import speech as speech_judge
from anygpt.eval.judges.image import ImageJudge, attribute_accuracy
from anygpt.eval.judges.music import MusicJudge, music_attribute_accuracy
from anygpt.eval.judges.music_text import music_caption_accuracy
from anygpt.eval.tasks import EMPTY_SCENE, caption_attr_acc
from anygpt.prompts import Piece, load_tasks
from anygpt.world import (WorldConfig, article, assign_splits, background_phrase, decode_png, decode_wav, find_soundfont,
                          image_rows, join_list, music_rows, object_phrase, speech_rows, where_phrase)

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
    truth: WorldTruth | None = None  # the expected answers; None for synthetic inputs


@dataclass
class WorldTruth:
    """What the world knows about world inputs: every single-task turn's expected answer."""

    caption_image: object  # PIL image: the picture the world drew for `caption`
    caption_scene: dict  # its scene attributes (scenes.json vocabulary)
    image_scene: dict  # the scene of `image`
    image_captions: list[str]  # the world's captions of `image`
    transcript: str  # what `speech` says
    music_attributes: dict  # the attributes of `music` (music.describe)
    music_captions: list[str]  # the world's captions of `music`
    request_music: np.ndarray  # the clip `music_request` was written for, at music_rate
    request_attributes: dict


def synthetic_inputs(speech_rate: int, music_rate: int) -> DemoInputs:
    """Inputs drawn and synthesized here (for bundles not trained on the world, e.g. debug)."""
    return DemoInputs(demo_image(), "a red circle on a light background", demo_voice(speech_rate),
                      demo_voice(speech_rate), "the quick brown fox jumps over the lazy dog",
                      demo_music(music_rate), "a cheerful piano arpeggio", speech_rate, music_rate)


def world_inputs(seed: int = 0, n: int = 400) -> DemoInputs:
    """Held-out items of the evaluation world (seed 0, n=400: its test split, never trained on),
    generated on the spot: a picture and another's caption, two utterances by different speakers and
    a third sentence, a music clip and another clip's caption; with their expected answers."""
    config = WorldConfig(seed=seed, n=n)
    test = {kind: [i for i, s in enumerate(assign_splits(seed, kind, n)) if s == "test"]
            for kind in ("images", "speech")}
    images = [image_rows(config, i, "test")[0] for i in test["images"][:2]]
    speech = [speech_rows(config, i, "test")[0] for i in test["speech"][:6]]
    voice = next(r for r in speech[1:] if r["speaker"] != speech[0]["speaker"])
    groups = [g for g, s in enumerate(assign_splits(seed, "music", -(-n // config.clips_per_render))) if s == "test"]
    font = find_soundfont()
    clips = music_rows(config, groups[0], "test", font)
    other = music_rows(config, groups[1], "test", font)[0] if len(groups) > 1 else clips[-1]
    wav = lambda row: decode_wav(row["audio"])[0]
    truth = WorldTruth(
        decode_png(images[1]["image"]), json.loads(images[1]["attributes"]), json.loads(images[0]["attributes"]),
        images[0]["captions"], speech[0]["text"], json.loads(clips[0]["attributes"]), clips[0]["captions"],
        wav(other), json.loads(other["attributes"]))
    return DemoInputs(
        decode_png(images[0]["image"]), images[1]["captions"][0], wav(speech[0]), wav(voice),
        next(r["text"] for r in speech[2:] if r["text"] != speech[0]["text"]), wav(clips[0]),
        other["captions"][0],
        speech[0]["sample_rate"], clips[0]["sample_rate"], truth)


# ----------------------------------------------------------------------------------------------
# Checks: a turn's expected answer, the judges' reading of its reply, a verdict

# A verdict reads the figure the turn's task scores. Attribute accuracy is taken relative to what the
# same scorer gives the world's own answer (the judges are not perfect, and world captions leave
# attributes unsaid); WER is absolute (the speech judge itself mishears about 0.1 of world speech).
VERDICT_RULES = {
    "attr_acc": {"right": 0.9, "partly right": 0.5},  # at least this fraction of the world answer's score
    "wer": {"right": 0.15, "partly right": 0.5},  # at most this word error rate
}
MUSIC_FIELDS = ("tempo_bpm", "tempo_word", "key", "mode", "family", "instrument")  # what the music judge reads


@dataclass
class Check:
    expected: dict | None = None  # JSON-ready (see _expected_html); None: synthetic input, nothing to expect
    judge: dict = field(default_factory=dict)  # the judges' reading of the reply and the task's figures
    verdict: str = "unchecked"  # right, partly right, wrong; open-ended; unchecked (synthetic input)
    because: str = ""  # the figure the verdict reads, in words


def verdict(metric: str, value: float, world: float | None = None) -> tuple[str, str]:
    """(verdict, reason) for a figure of VERDICT_RULES; `world`: the same scorer on the world's answer."""
    rule = VERDICT_RULES[metric]
    if metric == "wer":
        return next((word for word, most in rule.items() if value <= most), "wrong"), f"WER {value:.2f}"
    relative = value / world if world else value  # a scorer that gives the world's answer 0 tells nothing
    reason = f"attribute accuracy {value:.2f}" + ("" if world is None else f" (world's answer: {world:.2f})")
    return next((word for word, least in rule.items() if relative >= least - 1e-9), "wrong"), reason


def scene_phrase(scene: dict) -> str:
    """'a medium purple star in the top right corner and a blue cross at the bottom, on a plain white
    background': a scene's attributes (the world's or the image judge's) in a few words."""
    things = [f"{article(object_phrase(o))} {where_phrase(o['position'])}" for o in scene["objects"]]
    background = article(background_phrase(scene["background"]))
    return f"{join_list(things) if things else 'nothing'}, on {background} background"


def music_phrase(attributes: dict) -> str:
    """'moderate (96 BPM), G major, violin (strings family)': what the music judge reads, in words."""
    a = attributes
    return (f"{a['tempo_word']} ({a['tempo_bpm']:.0f} BPM), {a['key']} {a['mode']}, "
            f"{a['instrument']} ({a['family']} family)")


def _attempt(fn, *args):
    """(value, None), or (None, reason) when a judge rejects its input (silent or empty audio), as
    tasks.py's judges do."""
    try:
        return fn(*args), None
    except (AnyGPTError, ValueError) as e:
        return None, str(e)


def _reply_text(rows: list[dict]) -> str:
    return " ".join(r["text"] for r in rows if r["modality"] == "text").strip()


def _reply_path(rows: list[dict], modality: str) -> str | None:
    """The first decoded segment of `modality` (as tasks.generate takes it), or None."""
    return next((r["path"] for r in rows if r["modality"] == modality), None)


class Checker:
    """Checks each reply against the world's answer, scored the way anygpt/eval/tasks.py scores its
    task; every check takes the reply's rows (chat.write_segments) and returns a Check."""

    def __init__(self, truth: WorldTruth, files: dict[str, str], sentence: str, voice: np.ndarray,
                 speech_rate: int, music_rate: int):
        self.truth, self.files, self.sentence, self.voice = truth, files, sentence, voice
        self.speech_rate, self.music_rate = speech_rate, music_rate

    @functools.cached_property
    def image_judge(self):
        return ImageJudge.load()

    @functools.cached_property
    def music_judge(self):
        return MusicJudge.load()

    def _load_audio(self, path: str, rate: int):
        return _attempt(media.load_audio, path, rate)

    def t2i(self, rows: list[dict]) -> Check:
        truth = self.truth.caption_scene
        expected = {"media": "image", "path": self.files["picture"], "attributes": truth, "phrase": scene_phrase(truth)}
        world = attribute_accuracy(self.image_judge.attributes([self.truth.caption_image]), [truth])["mean"]
        path = _reply_path(rows, "image")
        read = None if path is None else self.image_judge.attributes([media.load_image(path)])[0]
        judge = {"attributes": read, "phrase": None if read is None else scene_phrase(read),  # as eval_t2i:
                 "attr_acc": attribute_accuracy([read or EMPTY_SCENE], [truth])["mean"],  # no image, no scene
                 "attr_acc_world": world}
        return _judged(expected, judge, "attr_acc", None if path else "no image in the reply")

    def caption(self, rows: list[dict]) -> Check:
        captions, scene, text = self.truth.image_captions, self.truth.image_scene, _reply_text(rows)
        judge = {"attr_acc": caption_attr_acc([text], [scene]),
                 "attr_acc_world": caption_attr_acc(captions, [scene] * len(captions))}
        return _judged({"captions": captions}, judge, "attr_acc", None if text else "no text in the reply")

    def asr(self, rows: list[dict]) -> Check:
        text = _reply_text(rows)
        return _judged({"text": self.truth.transcript}, {"wer": speech_judge.wer([text], [self.truth.transcript])}, "wer",
                       None if text else "no text in the reply")

    def tts(self, rows: list[dict]) -> Check:
        judge, problem = self._hear(rows)
        if "transcript" in judge:
            sim, _ = _attempt(speech_judge.speaker_similarity, judge.pop("wav"), self.voice, self.speech_rate)
            judge["speaker_similarity"] = sim
        judge["wer"] = speech_judge.wer([judge.get("transcript") or ""], [self.sentence])
        return _judged({"text": self.sentence}, judge, "wer", problem)

    def music_caption(self, rows: list[dict]) -> Check:
        captions, truth, text = self.truth.music_captions, self.truth.music_attributes, _reply_text(rows)
        judge = {"attr_acc": music_caption_accuracy([text], [truth])["mean"],
                 "attr_acc_world": music_caption_accuracy(captions, [truth] * len(captions))["mean"]}
        return _judged({"captions": captions}, judge, "attr_acc", None if text else "no text in the reply")

    def t2m(self, rows: list[dict]) -> Check:
        truth = {k: self.truth.request_attributes[k] for k in MUSIC_FIELDS}
        expected = {"media": "music", "path": self.files["music"], "attributes": truth, "phrase": music_phrase(truth)}
        world = self._music_accuracy(self.music_judge.attributes([self.truth.request_music], self.music_rate)[0], truth)
        judge, problem = self._read_music(rows)
        # a malformed or rejected reply matches no attribute (as eval_t2m)
        judge.update(attr_acc=self._music_accuracy(judge.get("attributes"), truth), attr_acc_world=world)
        return _judged(expected, judge, "attr_acc", problem)

    def open_music(self, rows: list[dict]) -> Check:
        judge, problem = self._read_music(rows)
        return Check({"open_ended": True}, judge, "open-ended", problem or "")

    def open_speech(self, rows: list[dict]) -> Check:
        judge, problem = self._hear(rows)
        judge.pop("wav", None)
        return Check({"open_ended": True}, judge, "open-ended", problem or "")

    def _hear(self, rows: list[dict]) -> tuple[dict, str | None]:
        """({"transcript", "wav"}, None), or ({"rejected"}, why) when there is nothing to hear."""
        path = _reply_path(rows, "speech")
        if path is None:
            return {}, "no speech in the reply"
        wav, why = self._load_audio(path, self.speech_rate)
        heard, why = (None, why) if wav is None else _attempt(lambda w: speech_judge.asr([w], self.speech_rate)[0], wav)
        return ({"transcript": heard, "wav": wav}, None) if heard is not None else ({"rejected": why}, why)

    def _read_music(self, rows: list[dict]) -> tuple[dict, str | None]:
        path = _reply_path(rows, "music")
        if path is None:
            return {}, "no music in the reply"
        wav, why = self._load_audio(path, self.music_rate)
        read, why = (None, why) if wav is None else _attempt(self.music_judge.attributes, [wav], self.music_rate)
        if read is None:
            return {"rejected": why}, why
        return {"attributes": read[0], "phrase": music_phrase(read[0])}, None

    @staticmethod
    def _music_accuracy(read: dict | None, truth: dict) -> float:
        """The mean of music_attribute_accuracy, as eval_t2m reports attr_acc; 0 for no reading."""
        return 0.0 if read is None else float(np.mean(list(music_attribute_accuracy([read], [truth]).values())))


def _judged(expected: dict, judge: dict, metric: str, problem: str | None) -> Check:
    """A Check with the verdict on judge[metric]; a reply without the wanted output is wrong."""
    word, because = verdict(metric, judge[metric], judge.get(f"{metric}_world"))
    if problem is not None:
        word, because = "wrong", f"{problem}; {because}"
    return Check(expected, judge, word, because)


# ----------------------------------------------------------------------------------------------
# The turns


@dataclass
class Turn:
    title: str
    inputs: list[tuple[str, str]]  # (kind, text or file path) shown on the page
    content: list[Piece]
    want: str | None
    check: Callable[[list[dict]], Check] | None = None  # a Checker method; None: nothing to check
    rows: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    checked: Check = field(default_factory=Check)


def run_demo(bundle_name: str, out: Path) -> int:
    t_load = time.perf_counter()
    bundle = load_bundle(bundle_name)
    load_s = time.perf_counter() - t_load
    if bundle.name == "debug":
        print("Running the debug bundle: the official token layout on random tiny weights. Every step "
              "runs for real, but the outputs are noise; without --bundle the demo runs the trained default (tiny).")
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
    checker = None
    if made.truth is not None:
        files = {"picture": str(media.save_image(made.truth.caption_image, out / "expected" / "picture.png")),
                 "music": str(media.save_audio(out / "expected" / "music.wav", made.truth.request_music,
                                               made.music_rate))}
        checker = Checker(made.truth, files, sentence, voice, sr_speech, sr_music)
    check = lambda name: None if checker is None else getattr(checker, name)

    single = [
        Turn("text -> image", [("text", caption)], tasks["t2i"].chat_pieces(caption), "image", check("t2i")),
        Turn("image -> text", [("image", str(image_path))], tasks["caption"].chat_pieces(image), "text",
             check("caption")),
        Turn("speech -> text", [("speech", str(speech_path))], tasks["asr"].chat_pieces(speech), "text", check("asr")),
        Turn("text -> speech (voice of inputs/voice.wav)", [("text", sentence), ("voice", str(voice_path))],
             tasks["tts"].chat_pieces(sentence), "speech", check("tts")),
        Turn("music -> text", [("music", str(music_path))], tasks["music_caption"].chat_pieces(music), "text",
             check("music_caption")),
        Turn("text -> music", [("text", request)], tasks["t2m"].chat_pieces(request), "music", check("t2m")),
    ]
    conversation = [
        Turn("conversation 1/3: image in, text out", [("image", str(image_path)), ("text", "What is in this picture?")],
             [image, " What is in this picture?"], "text", check("caption")),
        Turn("conversation 2/3: text in, music out", [("text", "Write a short tune that fits it.")],
             ["Write a short tune that fits it."], "music", check("open_music")),
        Turn("conversation 3/3: speech in, speech out", [("speech", str(speech_path))],
             tasks["voice_chat"].chat_pieces(speech), "speech", check("open_speech")),
    ]

    session = ChatSession(bundle, decoding=bundle.decoding.override(seed=DEMO_SEED))
    judge_s = 0.0
    for i, turn in enumerate(single + conversation):
        if i <= len(single):
            session.reset()  # the single-task turns are independent; the conversation starts afresh
        t0 = time.perf_counter()
        reply = session.ask(turn.content, want=turn.want)
        turn.rows = write_segments(bundle, reply.segments, out, voice=voice, seed=DEMO_SEED, stem=f"turn{i + 1}")
        turn.seconds = time.perf_counter() - t0
        if turn.check is not None:  # judged outside the turn's latency
            turn.checked = turn.check(turn.rows)
            judge_s += time.perf_counter() - t0 - turn.seconds
        said = ", ".join(_describe(r) for r in turn.rows) or "(empty reply)"
        verdict_note = "" if turn.checked.verdict == "unchecked" else f"  [{turn.checked.verdict}]"
        print(f"{turn.title:45s} {turn.seconds:6.2f} s  {said}{verdict_note}")

    turns = single + conversation
    total = sum(t.seconds for t in turns)
    judged = f"; judged in {judge_s:.2f} s" if checker is not None else ""
    print(f"bundle loaded in {load_s:.2f} s; {len(turns)} turns in {total:.2f} s on "
          f"{bundle.llm.device}{judged}; page: {out / 'index.html'}")
    summary = {"bundle": bundle.name, "load_seconds": round(load_s, 3), "judge_seconds": round(judge_s, 3),
               "verdict_rules": VERDICT_RULES, "verdicts": _tally(turns),
               "turns": [{"title": t.title, "inputs": t.inputs, "want": t.want, "seconds": round(t.seconds, 3),
                          "segments": t.rows, "expected": t.checked.expected, "judge": t.checked.judge,
                          "verdict": t.checked.verdict, "because": t.checked.because} for t in turns]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "index.html").write_text(_page(bundle, turns, out), encoding="utf-8")
    return 0


def _tally(turns: list[Turn]) -> dict[str, int]:
    return dict(Counter(t.checked.verdict for t in turns))


def _describe(row: dict) -> str:
    if row["modality"] == "text":
        text = row["text"]
        return repr(text if len(text) < 40 else text[:37] + "...")
    return f"{row['modality']} ({row['num_codes']} codes)"


# ----------------------------------------------------------------------------------------------
# The page: plain HTML, inline CSS, media by relative path


VERDICT_COLOURS = {"right": "#c8ecc8", "partly right": "#fbe7a6", "wrong": "#f5c0c0",
                   "open-ended": "#e4e4e4", "unchecked": "#e4e4e4"}
JUDGE_LABELS = (  # (key in Check.judge, label on the page), in the order shown; the scored figure is in
    ("phrase", "judge reads"), ("transcript", "speech judge hears"),  # Check.because
    ("speaker_similarity", "speaker similarity to the voice prompt"), ("rejected", "judge rejected the reply"))


def _media_html(kind: str, path: str | None, out: Path) -> str:
    if path is None:
        return "<em>not decoded</em>"
    rel = html.escape(str(Path(path).resolve().relative_to(out.resolve())))
    if kind == "image":
        return f'<img src="{rel}" width="160">'
    return f'<audio controls src="{rel}"></audio>'


def _expected_html(expected: dict | None, out: Path) -> str:
    if expected is None:
        return "<em>(none, synthetic input)</em>"
    if expected.get("open_ended"):
        return "<em>(open-ended)</em>"
    if "captions" in expected:
        first, *more = expected["captions"]
        rest = "".join(f"<li>{html.escape(c)}</li>" for c in more)
        return html.escape(first) + (f"<details><summary>{len(more)} more world captions</summary><ul>{rest}</ul>"
                                     "</details>" if more else "")
    if "media" in expected:
        return _media_html(expected["media"], expected["path"], out) + \
            f'<div class="note">{html.escape(expected["phrase"])}</div>'
    return html.escape(expected["text"])


def _check_html(check: Check) -> str:
    """The verdict, the figure it reads, and the judges' reading of the reply."""
    judge = check.judge
    lines = [f"<b>{html.escape(check.verdict)}</b>"] + \
        ([f'<span class="note">{html.escape(check.because)}</span>'] if check.because else [])
    for key, label in JUDGE_LABELS:
        if (value := judge.get(key)) is not None:
            shown = f"{value:.2f}" if isinstance(value, float) else value or "(nothing)"
            lines.append(f"{label}: <b>{html.escape(shown)}</b>")
    if judge.get("attributes"):
        lines.append(f"<details><summary>attributes read</summary><pre>"
                     f"{html.escape(json.dumps(judge['attributes'], indent=1))}</pre></details>")
    return "<br>".join(lines)


def _page(bundle, turns: list[Turn], out: Path) -> str:
    rows = []
    for t in turns:
        ins = "<br>".join(
            html.escape(v) if k == "text" else f"{k}:<br>" + _media_html(k if k != "voice" else "speech", v, out)
            for k, v in t.inputs)
        outs = "<br>".join(
            html.escape(r["text"]) if r["modality"] == "text"
            else f"{r['modality']} ({r['num_codes']} codes):<br>" + _media_html(r["modality"], r["path"], out)
            for r in t.rows) or "<em>empty reply</em>"
        c = t.checked
        rows.append(
            f'<tr><td>{html.escape(t.title)}</td><td>{ins}</td><td class="exp">{_expected_html(c.expected, out)}</td>'
            f'<td>{outs}</td><td style="background:{VERDICT_COLOURS[c.verdict]}">{_check_html(c)}</td>'
            f'<td>{t.seconds:.2f} s</td></tr>')
    tally = ", ".join(f"{n} {v}" for v, n in _tally(turns).items())
    acc, wer = VERDICT_RULES["attr_acc"], VERDICT_RULES["wer"]
    rules = (f"Verdicts read the figure the turn's task scores in <code>anygpt eval</code>. Attribute accuracy "
             f"(judges' attributes of the reply against the world's): <b>right</b> at {acc['right']:.0%} or more of "
             f"the same score of the world's own answer, <b>partly right</b> at {acc['partly right']:.0%} or more, "
             f"else <b>wrong</b>. Word error rate: <b>right</b> up to {wer['right']:.2f}, <b>partly right</b> up to "
             f"{wer['partly right']:.2f}, else <b>wrong</b> (the speech judge, pocketsphinx, mishears about 0.1 of "
             f"the words of world speech). A reply without the wanted output is wrong. Speaker similarity "
             f"(resemblyzer) is shown, not scored: about 0.8 to 0.9 for two utterances of one world voice, 0.4 to "
             f"0.7 for two voices. Open-ended turns are read by the judges, not scored.")
    note = html.escape(bundle.description)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>anygpt demo: {html.escape(bundle.name)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:110em}}table{{border-collapse:collapse}}
th{{text-align:left;padding:.4em;border-bottom:2px solid #888}}
td{{border-top:1px solid #ccc;padding:.5em;vertical-align:top;font-size:.92em}}
td.exp{{background:#f3f6fb}}.note{{color:#555;font-size:.88em;margin-top:.3em}}
pre{{font-size:.8em;max-width:24em;white-space:pre-wrap}}audio{{width:14em}}td{{max-width:22em}}</style>
</head><body>
<h1>anygpt demo: bundle {html.escape(bundle.name)}</h1><p>{note}</p>
<p><b>Verdicts:</b> {html.escape(tally)}.</p><p class="note">{rules}</p>
<table><tr><th>turn</th><th>input</th><th>expected</th><th>reply</th><th>verdict and the judges' reading</th>
<th>latency</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""
