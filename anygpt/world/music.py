"""Music clips: real pieces from the music21 corpus, rendered by fluidsynth with a GM instrument.

    catalogue()                 every usable piece: Bach chorales, Essen folk songs, O'Neill's Irish
                                tunes, Ryan's Mammoth fiddle tunes, Palestrina, Monteverdi madrigals
    load_piece(ref)             music21 parse -> note events (onset and duration in quarter notes)
    render(piece, program, bpm, seconds, soundfont)
                                our own tiny MIDI file -> fluidsynth -> float32 mono at 32 kHz
    describe(...) / captions()  attributes and captions from what is known, never the title

The whole piece is rendered from its start up to the end of the last clip wanted (looping short
tunes), and clips are cut from that, so notes sound as in a performance across clip boundaries.
"""

import functools
import glob
import os
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anygpt.world import tables
from anygpt.world.splits import hashed_split
from anygpt.world.words import article, capitalise
from anygpt.errors import AnyGPTError
from anygpt.labels import MAJOR_PROFILE, MINOR_PROFILE, TONIC_NAMES, tempo_word

TICKS_PER_QUARTER = 480
DRUM_CHANNEL = 9  # GM channel 10 is percussion: never give a melodic part to it
TARGET_RMS = 0.1  # clips are levelled to about -20 dBFS so instruments sound equally loud
PEAK_LIMIT = 0.99
SOUNDFONT_CANDIDATES = (  # the small MuseScore font first: 6 MB, good enough for toy data
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)
EXCLUDED_ESSEN = ("test", "variant")  # music21's own test files in the Essen folder


def music_table() -> dict:
    return tables.load("music")


def sample_rate() -> int:
    return int(music_table()["sample_rate"])


@dataclass(frozen=True)
class PieceRef:
    piece_id: str  # "bach/bwv10.7", "essenFolksong/han1#12": stable across runs and machines
    source: str  # a key of music.json "sources"
    path: str  # relative to the music21 corpus folder
    number: int | None  # the ABC tune number (X:) inside a collection file


@dataclass(frozen=True)
class Piece:
    ref: PieceRef
    notes: tuple[tuple[float, float, int, int], ...]  # (onset_ql, duration_ql, midi_pitch, part)
    length_ql: float
    key: str  # "B-flat", "F-sharp", "C"
    mode: str  # "major" or "minor"
    meter: str  # "3/4"
    parts: int
    form: str | None  # "reel", "jig", ... for fiddle tunes


# ----------------------------------------------------------------------------------------------
# Tools


def find_soundfont(explicit: str | None = None) -> str:
    if explicit:
        if not Path(explicit).is_file():
            raise AnyGPTError(f"soundfont {explicit} not found")
        return explicit
    for candidate in SOUNDFONT_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    raise AnyGPTError("no General MIDI soundfont found: install one with `apt-get install timgm6mb-soundfont`")


def check_tools(soundfont: str | None = None) -> str:
    """Raise AnyGPTError unless music21, fluidsynth and a GM soundfont are there; return the font."""
    try:
        import music21  # noqa: F401
    except ImportError:
        raise AnyGPTError("music21 is not installed: install it with `pip install music21`") from None
    if shutil.which("fluidsynth") is None:
        raise AnyGPTError("fluidsynth is not installed: install it with `apt-get install fluidsynth`")
    return find_soundfont(soundfont)


def corpus_root() -> Path:
    import music21

    return Path(music21.__file__).parent / "corpus"


# ----------------------------------------------------------------------------------------------
# Catalogue


@functools.cache
def catalogue() -> tuple[PieceRef, ...]:
    """Every piece the generator may draw, sorted by id. Cached per process (about a second)."""
    root = corpus_root()
    table = music_table()
    refs: list[PieceRef] = []

    def files(pattern: str) -> list[str]:
        return sorted(os.path.relpath(p, root) for p in glob.glob(str(root / pattern)))

    for path in files("bach/bwv*.mxl"):
        if re.fullmatch(r"bach/bwv(\d+\.\d+|2[5-9]\d|3\d\d|4[0-3]\d)\.mxl", path):  # chorales, no variants
            refs.append(PieceRef(path[:-4], "bach_chorale", path, None))
    for path in files("essenFolksong/*.abc"):
        stem = Path(path).stem
        if stem.startswith(EXCLUDED_ESSEN):
            continue
        prefix = re.match(r"[A-Za-z]+", stem).group(0)
        source = table["essen_regions"].get(prefix)
        if source:
            refs += [PieceRef(f"{path[:-4]}#{x}", source, path, x) for x in _tune_numbers(root / path)]
    for path in files("oneills1850/*.abc"):
        refs += [PieceRef(f"{path[:-4]}#{x}", "irish_tune", path, x) for x in _tune_numbers(root / path)]
    for path in files("ryansMammoth/*.abc"):
        refs += [PieceRef(f"{path[:-4]}#{x}", "fiddle_tune", path, x) for x in _tune_numbers(root / path)]
    for path in files("palestrina/*.krn"):
        refs.append(PieceRef(path[:-4], "renaissance", path, None))
    for path in files("monteverdi/madrigal*.mxl"):
        refs.append(PieceRef(path[:-4], "madrigal", path, None))
    return tuple(sorted(refs, key=lambda r: r.piece_id))


def ref_by_id(piece_id: str) -> PieceRef:
    return _refs_by_id()[piece_id]


@functools.cache
def _refs_by_id() -> dict[str, PieceRef]:
    return {ref.piece_id: ref for ref in catalogue()}


def _tune_numbers(path: Path) -> list[int]:
    text = path.read_text(encoding="latin-1")
    return sorted({int(m) for m in re.findall(r"^X:\s*(\d+)", text, flags=re.MULTILINE)})


def _abc_tune(path: Path, number: int) -> str:
    """The text of tune X:number, with the file's header lines (before the first X:) kept."""
    text = path.read_text(encoding="latin-1")
    chunks = re.split(r"^(?=X:)", text, flags=re.MULTILINE)
    header = chunks[0] if not chunks[0].startswith("X:") else ""
    for chunk in chunks:
        match = re.match(r"X:\s*(\d+)", chunk)
        if match and int(match.group(1)) == number:
            return header + chunk
    raise KeyError(f"{path} has no tune X:{number}")


# ----------------------------------------------------------------------------------------------
# Parsing


@functools.lru_cache(maxsize=64)  # a worker meets the same piece again in nearby items
def load_piece(ref: PieceRef) -> Piece | None:
    """Parse a piece into note events; None when it cannot be parsed or is too thin to use."""
    import music21
    from music21 import converter

    try:
        if ref.number is not None:
            score = converter.parse(_abc_tune(corpus_root() / ref.path, ref.number), format="abc")
        else:
            score = converter.parse(str(corpus_root() / ref.path), forceSource=True)
        if isinstance(score, music21.stream.Opus):
            score = score.scores[0]
        parts = list(score.parts) or [score]
        notes = []
        for index, part in enumerate(parts):
            notes += _part_notes(part, index)
        signature = score.recurse().getElementsByClass("TimeSignature").first()
    except Exception:  # the corpus has a few files music21 cannot read: skip them, draw another
        return None
    if len(notes) < 12:
        return None
    notes.sort()
    key, mode = find_key(notes)
    form = _form(ref) if ref.source == "fiddle_tune" else None
    return Piece(ref=ref, notes=tuple(notes), length_ql=max(o + d for o, d, _, _ in notes), key=key, mode=mode,
                 meter=signature.ratioString if signature is not None else "4/4", parts=len(parts), form=form)


def _part_notes(part, index: int) -> list[tuple[float, float, int, int]]:
    """Note events of one part, tied notes merged (cheaper than music21's stripTies, which copies)."""
    notes: list[list] = []
    open_ties: dict[int, int] = {}  # midi pitch -> position in notes of the note a tie continues
    for element in part.flatten().notes:
        duration = float(element.quarterLength)
        if duration <= 0:  # grace notes
            continue
        onset = float(element.offset)
        members = element.notes if element.isChord else [element]
        for member in members:
            midi = int(member.pitch.midi)
            tie = member.tie.type if member.tie is not None else None
            if tie in ("stop", "continue") and midi in open_ties:
                held = notes[open_ties[midi]]
                held[1] = onset + duration - held[0]
                if tie == "stop":
                    del open_ties[midi]
                continue
            notes.append([onset, duration, midi, index])
            if tie == "start":
                open_ties[midi] = len(notes) - 1
    return [tuple(note) for note in notes]


# The Aarden-Essen key profiles (anygpt.labels, shared with the music judge); with them this finds the
# same key as music21's analyze("key") at a fraction of the cost.


def find_key(notes) -> tuple[str, str]:
    """(tonic, mode) by the Krumhansl-Schmuckler method: correlate the duration-weighted
    pitch-class histogram with the 24 rotated key profiles and keep the best."""
    histogram = np.zeros(12)
    for _, duration, midi, _ in notes:
        histogram[midi % 12] += duration
    best = (-2.0, "C", "major")
    for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(12):
            score = float(np.corrcoef(histogram, np.roll(profile, tonic))[0, 1])
            if score > best[0] + 1e-12:
                best = (score, TONIC_NAMES[mode][tonic], mode)
    return best[1], best[2]


def _form(ref: PieceRef) -> str | None:
    text = _abc_tune(corpus_root() / ref.path, ref.number)
    match = re.search(r"^R:\s*(.+)$", text, flags=re.MULTILINE)
    rhythm = match.group(1).strip().lower().replace("slipjig", "slip jig") if match else ""
    return rhythm if rhythm in music_table()["fiddle_forms"] else None


# ----------------------------------------------------------------------------------------------
# Rendering


def render(piece: Piece, program: int, bpm: float, seconds: float, soundfont: str) -> np.ndarray:
    """The piece from its first note, played for `seconds` (looped if shorter) -> float32 (T,)."""
    seconds_per_quarter = 60.0 / bpm
    first = piece.notes[0][0]
    needed_ql = seconds / seconds_per_quarter + 1.0
    notes, shift = [], 0.0
    while shift < needed_ql:  # loop short tunes, with one beat of rest between repeats
        notes += [(o - first + shift, d, p, part) for o, d, p, part in piece.notes if o - first + shift < needed_ql]
        shift += piece.length_ql - first + 1.0
    with tempfile.TemporaryDirectory(prefix="anygpt-music-") as folder:
        midi_path, raw_path = Path(folder) / "piece.mid", Path(folder) / "piece.raw"
        midi_path.write_bytes(midi_file(notes, program, bpm))
        command = ["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(sample_rate()), "-o", "synth.cpu-cores=1",
                   "-T", "raw", "-O", "float", "-F", str(raw_path), soundfont, str(midi_path)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not raw_path.exists():
            raise AnyGPTError(f"fluidsynth failed on {piece.ref.piece_id}: {result.stderr.strip()[:200]}")
        stereo = np.frombuffer(raw_path.read_bytes(), dtype="<f4").reshape(-1, 2)  # (T, 2)
    mono = stereo.mean(axis=1, dtype=np.float64)
    wanted = int(round(seconds * sample_rate()))
    if len(mono) < wanted:
        mono = np.pad(mono, (0, wanted - len(mono)))
    return mono[:wanted].astype(np.float32)


def level(samples: np.ndarray) -> np.ndarray:
    """Scale a clip to TARGET_RMS, never past PEAK_LIMIT."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if rms == 0.0:
        return samples
    gain = min(TARGET_RMS / rms, PEAK_LIMIT / peak)
    return (samples * gain).astype(np.float32)


def midi_file(notes: list[tuple[float, float, int, int]], program: int, bpm: float) -> bytes:
    """A format-0 Standard MIDI File: one channel per part, all with the same GM program."""
    channels = [c for c in range(16) if c != DRUM_CHANNEL]
    used = sorted({part for *_, part in notes})
    channel_of = {part: channels[i % len(channels)] for i, part in enumerate(used)}
    events = []  # (tick, order, bytes): note-offs sort before note-ons at the same tick
    for channel in sorted(set(channel_of.values())):
        events.append((0, 0, bytes([0xC0 | channel, program])))
    for onset, duration, pitch, part in notes:
        channel = channel_of[part]
        velocity = 92 if part == used[0] else 76  # the top part (usually the melody) a little louder
        start = int(round(onset * TICKS_PER_QUARTER))
        end = max(start + 1, int(round((onset + duration) * TICKS_PER_QUARTER)))
        events.append((start, 2, bytes([0x90 | channel, pitch, velocity])))
        events.append((end, 1, bytes([0x80 | channel, pitch, 0])))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    tempo = int(round(60_000_000 / bpm))  # microseconds per quarter note
    track = bytearray(_vlq(0) + b"\xff\x51\x03" + tempo.to_bytes(3, "big"))
    now = 0
    for tick, _, data in events:
        track += _vlq(tick - now) + data
        now = tick
    track += _vlq(0) + b"\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_QUARTER)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def _vlq(value: int) -> bytes:
    """MIDI variable-length quantity: 7 bits per byte, high bit set on all but the last."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


# ----------------------------------------------------------------------------------------------
# Attributes and captions


def source_label(piece: Piece) -> str:
    label = music_table()["sources"][piece.ref.source]["label"]
    if piece.form:
        return f"fiddle {piece.form}"
    return label


def texture(parts: int) -> str:
    if parts == 1:
        return "a single melody line"
    words = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
    return f"in {words.get(parts, 'many')}-part harmony"


def describe(piece: Piece, instrument: dict, bpm: int, seconds: float, offset: float) -> dict:
    """The attributes stored with a clip; captions() words them."""
    word = tempo_word(bpm)
    return {"source": piece.ref.source, "source_label": source_label(piece), "piece_id": piece.ref.piece_id,
            "instrument": instrument["name"], "program": instrument["program"], "family": instrument["family"],
            "tempo_bpm": bpm, "tempo_word": word, "key": piece.key, "mode": piece.mode, "meter": piece.meter,
            "parts": piece.parts, "form": piece.form, "mood": music_table()["moods"][piece.mode][word],
            "seconds": round(seconds, 3), "offset_seconds": round(offset, 3)}



def captions(attributes: dict) -> list[str]:
    a = attributes
    mood1, mood2 = a["mood"][0], a["mood"][1]
    source = a["source_label"]
    slots = {"source": source, "a_source": article(source), "A_source": capitalise(article(source)),
             "instrument": a["instrument"], "a_instrument": article(a["instrument"]), "family": a["family"],
             "bpm": a["tempo_bpm"], "tempo_word": a["tempo_word"], "Tempo_word": capitalise(a["tempo_word"]),
             "key": a["key"], "mode": a["mode"], "meter": a["meter"], "texture": texture(a["parts"]),
             "mood1": mood1, "mood2": mood2, "Mood1": capitalise(mood1), "A_mood1": capitalise(article(mood1))}
    return [template.format(**slots) for template in music_table()["captions"]]



# ----------------------------------------------------------------------------------------------
# Drawing pieces for a split


@functools.cache
def pools() -> dict[tuple[str, str], tuple[PieceRef, ...]]:
    """(split, source) -> the pieces of that source whose id hashes to that split."""
    grouped: dict[tuple[str, str], list[PieceRef]] = {}
    for ref in catalogue():
        grouped.setdefault((hashed_split(ref.piece_id), ref.source), []).append(ref)
    return {key: tuple(refs) for key, refs in grouped.items()}


def draw_piece(rng, split: str, *, mode: str | None = None, tries: int = 40) -> Piece:
    """A parsable piece of `split` (optionally of a given mode), sources drawn by their weight."""
    sources = music_table()["sources"]
    names = sorted(sources)
    available = pools()
    for _ in range(tries):
        source = rng.choices(names, weights=[sources[name]["weight"] for name in names])[0]
        refs = available.get((split, source))
        if not refs:
            continue
        piece = load_piece(rng.choice(refs))
        if piece is not None and (mode is None or piece.mode == mode):
            return piece
    raise RuntimeError(f"no usable piece found for split {split!r}")  # only if the corpus is broken


def draw_instrument(rng) -> dict:
    return rng.choice(music_table()["instruments"])


def draw_tempo(rng, piece: Piece, tempo_class: str | None = None) -> int:
    """Beats (quarter notes) per minute: the source's usual range, or the range of a tempo class."""
    if tempo_class is None:
        low, high = music_table()["sources"][piece.ref.source]["tempo"]
        return rng.randint(low, high)
    low = 56
    for limit, word in music_table()["tempo_classes"]:
        if word == tempo_class:
            return rng.randint(low, min(limit - 1, 176))
        low = limit
    raise ValueError(tempo_class)
