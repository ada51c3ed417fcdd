"""The raw input formats the tokenizer reads, parsed into `Unit`s (codec-independent).

One JSON object per line of a `.jsonl` file (media paths are relative to that file's folder):

    pair         {"id": "a1", "image": "img/a1.png", "text": "A red kite."}
                 (exactly one of "image" / "speech" / "music", and "text")
    interleaved  {"id": "d1", "segments": [{"text": "Look:"}, {"image": "img/x.png"}, {"text": "..."}]}
    chat         {"id": "c1", "messages": [{"role": "system", "content": "..."},
                                           {"role": "user", "content": [{"speech": "q.wav"}]},
                                           {"role": "assistant", "content": "Sure. "}, ...]}
                 ("content" is a string or a list of segments like those of "segments")

A media value is a file path, or {"codes": [[...], ...]} with codes already made by the bundle's
codec ((num_codebooks, frames), or a flat list for one codebook).

The AnyInstruct JSON layout (a `.json` list or `.jsonl` lines) is read too: an entry holds "chat"
(or "conversation") turns with "role" ("USER"/"Human" -> user, anything else -> assistant) and
"message"; media sit inline as <image>path</image>, <speech>path</speech>, <music>path</music>, or
in the turn's own "image"/"speech"/"music" keys (put after its text). This follows the layout as
described for fnlp/AnyInstruct; the released files themselves were not inspected here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from anygpt.errors import AnyGPTError

MEDIA_KEYS = ("image", "speech", "music")
KINDS = ("pair", "interleaved", "chat")
USER_ROLES = {"user", "human", "[human]"}
ASSISTANT_ROLES = {"assistant", "anygpt", "mmgpt", "gpt", "bot", "model", "[mmgpt]", "[anygpt]"}
_INLINE_MEDIA = re.compile(r"<(image|speech|music)>(.*?)</\1>", re.S)


class RecordError(AnyGPTError):
    """A raw record that cannot be turned into a unit (skipped and counted by the tokenizer)."""


@dataclass
class RawSegment:
    turn: int  # message index in a chat; 0 otherwise
    role: str  # "system" / "user" / "assistant" in chats, "" otherwise
    modality: str  # "text" or a media modality
    text: str = ""
    source: object = None  # media: a Path, or codes already made


@dataclass
class RawUnit:
    key: str  # unique and stable: "<file name>:<line>" unless the record has an "id"
    kind: str  # one of KINDS
    segments: list[RawSegment] = field(default_factory=list)


def _media(value, base: Path):
    if isinstance(value, dict) and "codes" in value:
        return _codes(value["codes"])
    if isinstance(value, str) and value:
        p = Path(value)
        return p if p.is_absolute() else base / p
    raise RecordError(f"a media value must be a path or {{'codes': ...}}, got {value!r:.60}")


def _codes(value) -> np.ndarray:
    """{"codes": ...}: a flat list of whole numbers (one codebook) or equal-length lists of them."""
    rows = value if isinstance(value, list) and value and all(isinstance(r, list) for r in value) else [value]
    if not all(isinstance(r, list) and all(isinstance(k, int) and not isinstance(k, bool) for k in r) for r in rows):
        raise RecordError(f"codes must be a list of whole numbers or a list of such lists, got {value!r:.60}")
    if len({len(r) for r in rows}) > 1:
        raise RecordError(f"codes: ragged codebooks of lengths {sorted({len(r) for r in rows})}")
    try:
        return np.asarray(rows, dtype=np.int64)  # (K, T)
    except OverflowError:
        raise RecordError("codes: a value does not fit in 64 bits") from None


def _segments(items, base: Path, turn: int = 0, role: str = "") -> list[RawSegment]:
    if isinstance(items, str):
        return [RawSegment(turn, role, "text", items)]
    if not isinstance(items, list):
        raise RecordError(f"content must be a string or a list of segments, got {type(items).__name__}")
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(RawSegment(turn, role, "text", item))
            continue
        if not isinstance(item, dict):
            raise RecordError(f"a segment must be a string or an object, got {item!r:.60}")
        keys = [k for k in ("text", *MEDIA_KEYS) if k in item]
        if len(keys) != 1:
            raise RecordError(f"a segment needs exactly one of text/image/speech/music, got {sorted(item)}")
        k = keys[0]
        if k == "text" and not isinstance(item[k], str):
            raise RecordError(f"a text segment must hold a string, got {item[k]!r:.60}")
        out.append(RawSegment(turn, role, "text", item[k]) if k == "text"
                   else RawSegment(turn, role, k, source=_media(item[k], base)))
    return out


def _role(name: str) -> str:
    low = str(name).strip().lower()
    if low == "system":
        return "system"
    if low in USER_ROLES:
        return "user"
    if low in ASSISTANT_ROLES:
        return "assistant"
    raise RecordError(f"unknown chat role {name!r}")


def _anyinstruct_message(turn: dict, base: Path, i: int, role: str) -> list[RawSegment]:
    message = turn.get("message", turn.get("content", ""))
    if not isinstance(message, str):
        raise RecordError(f"a turn's message must be a string, got {message!r:.60}")
    segs: list[RawSegment] = []
    pos = 0
    for m in _INLINE_MEDIA.finditer(message):
        if message[pos:m.start()]:
            segs.append(RawSegment(i, role, "text", message[pos:m.start()]))
        segs.append(RawSegment(i, role, m.group(1), source=_media(m.group(2).strip(), base)))
        pos = m.end()
    if message[pos:]:
        segs.append(RawSegment(i, role, "text", message[pos:]))
    for k in MEDIA_KEYS:
        if turn.get(k):
            segs.append(RawSegment(i, role, k, source=_media(turn[k], base)))
    return segs


def _list_of_objects(value, what: str) -> list[dict]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise RecordError(f"{what} must be a list of objects, got {value!r:.60}")
    return value


def parse_record(obj: dict, key: str, base: Path) -> RawUnit:
    """One JSON object (our layout or AnyInstruct's) -> RawUnit. Raises RecordError, and only that:
    every malformed record is one the tokenizer skips, counts and lists."""
    if not isinstance(obj, dict):
        raise RecordError("a record must be a JSON object")
    try:
        unit = _parse(obj, key, base)
    except RecordError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as e:  # a shape no check above foresaw
        raise RecordError(f"malformed record ({type(e).__name__}: {e})") from None
    _check(unit)
    return unit


def _parse(obj: dict, key: str, base: Path) -> RawUnit:
    key = str(obj.get("id", key))
    if "messages" in obj:
        segs = []
        for i, msg in enumerate(_list_of_objects(obj["messages"], "messages")):
            if "content" not in msg or "role" not in msg:
                raise RecordError(f"message {i} needs a role and a content")
            segs += _segments(msg["content"], base, i, _role(msg["role"]))
        return RawUnit(key, "chat", segs)
    if "chat" in obj or "conversation" in obj:
        segs = []
        turns = obj.get("chat") if "chat" in obj else obj.get("conversation")
        for i, turn in enumerate(_list_of_objects(turns, "chat")):
            segs += _anyinstruct_message(turn, base, i, _role(turn.get("role", "")))
        return RawUnit(key, "chat", segs)
    if "segments" in obj:
        return RawUnit(key, "interleaved", _segments(obj["segments"], base))
    media = [k for k in MEDIA_KEYS if k in obj]
    if len(media) != 1 or not isinstance(obj.get("text"), str):
        raise RecordError("a pair record needs one of image/speech/music and a text")
    return RawUnit(key, "pair", [RawSegment(0, "", media[0], source=_media(obj[media[0]], base)),
                                 RawSegment(0, "", "text", obj["text"])])


def _check(unit: RawUnit) -> None:
    if not unit.segments:
        raise RecordError(f"{unit.key}: no content")
    if unit.kind == "chat":
        roles = [s.role for s in unit.segments]
        if "assistant" not in roles or "user" not in roles:
            raise RecordError(f"{unit.key}: a chat needs at least one user and one assistant turn")
    if unit.kind == "pair" and not unit.segments[1].text.strip():
        raise RecordError(f"{unit.key}: empty text")


def iter_records(paths: list[Path]) -> Iterator[tuple[str, object, Path]]:
    """(key, parsed JSON or a RecordError, base folder) for every record of every input file, in a
    fixed order: files as given, lines in order. The order defines the chunks (and so resumption)."""
    for path in paths:
        path = Path(path)
        base = path.parent
        if path.suffix == ".json":  # one document: unreadable as a whole, or a list of records
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                raise AnyGPTError(f"{path}: not a readable JSON file ({e})") from None
            if not isinstance(data, list):
                raise AnyGPTError(f"{path}: a .json input must hold a list of records")
            for i, obj in enumerate(data):
                yield f"{path.name}:{i}", obj, base
            continue
        try:
            f = open(path, "rb")  # bytes: a line that is not UTF-8 is one bad record, not a dead job
        except OSError as e:
            raise AnyGPTError(f"{path}: cannot read ({e.strerror})") from None
        with f:
            for i, raw in enumerate(f):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    yield f"{path.name}:{i}", RecordError(f"{path.name}:{i + 1}: not UTF-8 ({e.reason})"), base
                    continue
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except (json.JSONDecodeError, RecursionError) as e:
                    obj = RecordError(f"{path.name}:{i + 1}: bad JSON ({getattr(e, 'msg', 'nested too deep')})")
                yield f"{path.name}:{i}", obj, base


def input_files(inputs: list[str | Path]) -> list[Path]:
    """Files named, or every .jsonl/.json under a folder (sorted, so the order is stable)."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.suffix in (".jsonl", ".json"))
        elif p.is_file():
            out.append(p)
        else:
            raise AnyGPTError(f"{p}: no such input file or folder")
    if not out:
        raise AnyGPTError("no input records found (.jsonl or .json files)")
    return out
