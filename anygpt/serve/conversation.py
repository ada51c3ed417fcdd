"""OpenAI chat messages -> one prompt of token ids.

    {"role": "system" | "developer", "content": "..."}             replaces the format's system line
    {"role": "user", "content": "..." | [parts]}                   parts: text, image_url (data: URLs
                                                                     only), input_audio (base64)
    {"role": "assistant", "content": "...", "audio": {"id": R}}    an earlier reply: by its id (R, or
                                                                     the extension "reply_id") the exact
                                                                     ids it was generated as; otherwise
                                                                     its text

Everything a client sends is the user's: text is encoded so that it cannot produce control or code
ids (prompts/user_text.py); only the prompt builder places role tokens and spans. Media are checked
(type, size, duration) and encoded by the bundle's codecs here, before any generation starts.

Extension: an `input_audio` part may say `"modality": "music"` (default "speech").
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace

from anygpt import media
from anygpt.bundles import Bundle
from anygpt.chat import ChatSession, check_want, encode_media, max_input_seconds
from anygpt.errors import AnyGPTError
from anygpt.prompts import Media, Piece, UserText, encode_pieces, fill, user_pieces
from anygpt.serve.errors import APIError, bad_request

INPUT_AUDIO_FORMATS = ("wav", "mp3", "flac", "ogg")
DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(;[\w=.+-]+)*;base64,(.*)$", re.S)


@dataclass(frozen=True)
class Limits:
    """What one request may ask for."""

    max_audio_seconds: float = 30.0  # per audio input (music inputs are cut to the span limit)
    max_media_bytes: int = 10 * 2**20  # per decoded image or audio input
    max_image_pixels: int = 4096 * 4096
    max_messages: int = 64
    max_text_chars: int = 20_000  # per text part


@dataclass(frozen=True)
class StoredReply:
    want: str | None  # the reply modality that was forced (its span start is part of the prompt)
    ids: list[int]  # the generated ids, stop token excluded


class ReplyStore:
    """The most recent replies, by id, so that a client that sends one back (OpenAI's audio.id)
    continues from the exact ids rather than from their text."""

    def __init__(self, size: int = 512):
        self.size = size
        self._items: OrderedDict[str, StoredReply] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, reply_id: str, reply: StoredReply) -> None:
        with self._lock:
            self._items[reply_id] = reply
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def get(self, reply_id: str) -> StoredReply | None:
        with self._lock:
            return self._items.get(reply_id)


@dataclass
class Turn:
    role: str  # "user" or "assistant"
    content: list[Piece] = field(default_factory=list)
    reply: StoredReply | None = None  # an assistant turn known by id


@dataclass
class Conversation:
    system: str | None
    turns: list[Turn]


def reply_modality(modalities) -> str | None:
    """OpenAI's `modalities` -> the reply to force: None (the model chooses), "text", "speech"
    (OpenAI's "audio"), or the extensions "image" and "music"."""
    if modalities is None:
        return None
    if not isinstance(modalities, list) or not all(isinstance(m, str) for m in modalities):
        raise bad_request("modalities must be a list of strings", param="modalities")
    names = {"audio": "speech", "speech": "speech", "image": "image", "music": "music"}
    unknown = [m for m in modalities if m != "text" and m not in names]
    if unknown:
        raise bad_request(f"unknown modality {unknown[0]!r}; use text, audio, image or music", param="modalities")
    media_ = {names[m] for m in modalities if m != "text"}
    if len(media_) > 1:
        raise bad_request("a reply carries one kind of media: ask for one of audio, image, music", param="modalities")
    return media_.pop() if media_ else "text"


def parse_messages(bundle: Bundle, messages, *, limits: Limits, store: ReplyStore) -> Conversation:
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages must be a non-empty list", param="messages")
    if len(messages) > limits.max_messages:
        raise APIError(413, f"at most {limits.max_messages} messages per request", param="messages")
    system, turns = None, []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad_request(f"{where} must be an object", param=where)
        role = m.get("role")
        if role in ("system", "developer"):
            if turns:
                raise bad_request(f"{where}: a {role} message must come before the conversation", param=where)
            system = _text_only(m.get("content"), where, limits)
        elif role == "user":
            turns.append(Turn("user", _user_content(bundle, m.get("content"), where, limits)))
        elif role == "assistant":
            turns.append(_assistant_turn(m, where, limits, store))
        else:
            raise bad_request(f"{where}: unknown role {role!r}; use system, user or assistant", param=where)
    if not turns or turns[-1].role != "user":
        raise bad_request("the last message must be the user's", param="messages")
    return Conversation(system, turns)


def _assistant_turn(m: dict, where: str, limits: Limits, store: ReplyStore) -> Turn:
    audio = m.get("audio")
    ref = m.get("reply_id") or (audio.get("id") if isinstance(audio, dict) else None)
    if isinstance(ref, str) and (stored := store.get(ref)) is not None:
        return Turn("assistant", reply=stored)
    content = m.get("content")
    if content is None and ref is not None:
        raise bad_request(f"{where}: reply {ref!r} is unknown here (expired or from another server); "
                          "send its text as content", param=where)
    return Turn("assistant", [UserText(_text_only(content, where, limits))])


def _text_only(content, where: str, limits: Limits) -> str:
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
    if not isinstance(parts, list) or not all(isinstance(p, dict) and p.get("type") == "text" for p in parts):
        raise bad_request(f"{where}: content must be text", param=where)
    return _text({"text": "".join(_text(p, where, limits) for p in parts)}, where, limits)


def _text(part: dict, where: str, limits: Limits) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise bad_request(f"{where}: a text part needs a string 'text'", param=where)
    if len(text) > limits.max_text_chars:
        raise APIError(413, f"{where}: text longer than {limits.max_text_chars} characters", param=where)
    return text


def _user_content(bundle: Bundle, content, where: str, limits: Limits) -> list[Piece]:
    if isinstance(content, str):
        return [_text({"text": content}, where, limits)]
    if not isinstance(content, list) or not content:
        raise bad_request(f"{where}: content must be a string or a non-empty list of parts", param=where)
    pieces: list[Piece] = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        if not isinstance(part, dict):
            raise bad_request(f"{at} must be an object", param=at)
        kind = part.get("type")
        if kind == "text":
            piece: Piece = _text(part, at, limits)
        elif kind == "image_url":
            piece = image_input(bundle, part.get("image_url"), at, limits)
        elif kind == "input_audio":
            piece = audio_input(bundle, part.get("input_audio"), at, limits)
        else:
            raise bad_request(f"{at}: unknown part type {kind!r}; use text, image_url or input_audio", param=at)
        if pieces and _needs_space(pieces[-1], piece):
            pieces.append(" ")
        pieces.append(piece)
    return pieces


def _needs_space(before: Piece, after: Piece) -> bool:
    if isinstance(before, Media) and isinstance(after, Media):
        return True
    if isinstance(before, Media):
        return not after[:1].isspace()
    if isinstance(after, Media):
        return not before[-1:].isspace()
    return False


def decode_base64(data, where: str, limits: Limits) -> bytes:
    if not isinstance(data, str) or not data:
        raise bad_request(f"{where}: expected base64 data", param=where)
    if len(data) * 3 // 4 > limits.max_media_bytes:
        raise APIError(413, f"{where}: larger than {limits.max_media_bytes // 2**20} MB", param=where)
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"{where}: not valid base64", param=where) from None


def data_url_bytes(url, where: str, limits: Limits) -> bytes:
    """The bytes of a base64 data: URL; any other URL is refused (this server fetches nothing)."""
    match = DATA_URL.match(url) if isinstance(url, str) else None
    if match is None:
        raise bad_request(f"{where}: only base64 data: URLs are accepted (data:image/png;base64,...); "
                          "this server fetches nothing", param=where)
    return decode_base64(match.group(3), where, limits)


def image_input(bundle: Bundle, spec, where: str, limits: Limits) -> Media:
    url = spec.get("url") if isinstance(spec, dict) else spec
    if not isinstance(url, str):
        raise bad_request(f"{where}: image_url needs a url", param=where)
    return encode_image_bytes(bundle, data_url_bytes(url, where, limits), where, limits)


def encode_image_bytes(bundle: Bundle, data: bytes, where: str, limits: Limits) -> Media:
    from PIL import Image

    _need_codec(bundle, "image", where)
    try:
        with Image.open(io.BytesIO(data)) as probe:  # the header only: refuse huge pictures unread
            pixels = probe.width * probe.height
    except Exception:  # noqa: BLE001 - the full read below says what is wrong
        pixels = 0
    if pixels > limits.max_image_pixels:
        raise APIError(413, f"{where}: picture of {pixels} pixels; at most {limits.max_image_pixels}", param=where)
    return _encoded(bundle, "image", media.image_from_bytes(data, source=where), where)


def audio_input(bundle: Bundle, spec, where: str, limits: Limits) -> Media:
    if not isinstance(spec, dict):
        raise bad_request(f"{where}: input_audio needs data and format", param=where)
    fmt, modality = spec.get("format", "wav"), spec.get("modality", "speech")
    if fmt not in INPUT_AUDIO_FORMATS:
        raise bad_request(f"{where}: audio format {fmt!r} not supported; use {', '.join(INPUT_AUDIO_FORMATS)}",
                          param=where)
    if modality not in ("speech", "music"):
        raise bad_request(f"{where}: modality must be speech or music", param=where)
    return encode_audio_bytes(bundle, decode_base64(spec.get("data"), where, limits), modality, where, limits)


def encode_audio_bytes(bundle: Bundle, data: bytes, modality: str, where: str, limits: Limits) -> Media:
    if len(data) > limits.max_media_bytes:
        raise APIError(413, f"{where}: larger than {limits.max_media_bytes // 2**20} MB", param=where)
    _need_codec(bundle, modality, where)
    try:
        seconds = media.audio_seconds(data)
    except Exception:  # noqa: BLE001 - the full read below says what is wrong
        seconds = 0.0
    cut = max_input_seconds(bundle, modality)  # music is cut to its span limit, as the CLI cuts it
    if cut is None and seconds > limits.max_audio_seconds:
        raise bad_request(f"{where}: {seconds:.1f} s of audio; at most {limits.max_audio_seconds:g} s", param=where)
    rate = bundle.codec(modality).sample_rate
    wav = media.audio_from_bytes(data, rate, source=where, max_seconds=cut or limits.max_audio_seconds)
    return _encoded(bundle, modality, wav, where)


def _need_codec(bundle: Bundle, modality: str, where: str) -> None:
    if modality not in bundle.codecs:
        raise bad_request(f"{where}: this model has no {modality} codec", param=where)


def _encoded(bundle: Bundle, modality: str, source, where: str) -> Media:
    try:
        return encode_media(bundle, modality, source)
    except AnyGPTError as e:
        raise bad_request(f"{where}: {e}", param=where) from None


def prompt_ids(bundle: Bundle, conv: Conversation, want: str | None) -> list[int]:
    """The prompt's ids: the bundle's chat format over the whole conversation (a base format takes
    one user message, as `anygpt chat` does)."""
    try:
        check_want(bundle, want)
    except AnyGPTError as e:
        raise bad_request(str(e), param="modalities") from None
    fmt, layout, tok = bundle.prompt_format, bundle.layout, bundle.tokenizer
    if fmt.kind == "base":
        if len(conv.turns) != 1 or conv.system is not None:
            raise bad_request(f"bundle {bundle.name!r} is a base model: send one user message", param="messages")
        try:
            return ChatSession(bundle).prompt_ids(conv.turns[0].content, want)
        except AnyGPTError as e:
            raise bad_request(str(e), param="messages") from None
    ids: list[int] = [tok.bos_token_id] if fmt.add_bos and tok.bos_token_id is not None else []
    pending: list[Piece] = fill(fmt.system_template, system=UserText(conv.system)) if conv.system is not None \
        else fmt.system_pieces()
    for i, turn in enumerate(conv.turns):
        if i and conv.turns[i - 1].role == "assistant":
            pending.append(fmt.turn_separator)
        if turn.role == "user":
            pending += fmt.user_pieces(user_pieces(turn.content))
        elif turn.reply is not None:  # the exact ids of an earlier reply
            ids += encode_pieces(pending + fmt.reply_prefix(layout, turn.reply.want), tok, layout)
            ids += turn.reply.ids
            pending = [fmt.assistant_end]
        else:
            pending += fmt.assistant_pieces(turn.content)
    return ids + encode_pieces(pending + fmt.reply_prefix(layout, want), tok, layout)


def text_sampling(decoding, temperature, top_p):
    """OpenAI's temperature and top_p apply to the text of the reply (media keep the bundle's
    settings): either one turns beam search off and samples text with them."""
    if temperature is None and top_p is None:
        return decoding
    for name, value, low in (("temperature", temperature, 0.0), ("top_p", top_p, 0.0)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not low <= value <= (2.0 if name == "temperature" else 1.0)):
            raise bad_request(f"{name} must be a number in [0, {2 if name == 'temperature' else 1}]", param=name)
    if temperature == 0:  # OpenAI's greedy
        return replace(decoding, text=replace(decoding.text, do_sample=False, num_beams=1))
    text = replace(decoding.text, do_sample=True, num_beams=1, temperature=float(temperature or 1.0),
                   top_p=float(top_p) if top_p else 1.0)
    return replace(decoding, text=text)
