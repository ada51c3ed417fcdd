"""Conversations with a bundle: inputs -> prompt ids -> generation -> segments -> files.

The history is kept as token ids: a reply is appended exactly as generated, never re-tokenized from
its text; its key/value cache is kept too, so a new turn computes only its own tokens. Chat formats
keep a multi-turn history; base formats (the pretraining templates) are single turn: each question
is one X-to-text or text-to-X prompt.
"""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from anygpt import media
from anygpt.bundles import Bundle
from anygpt.errors import AnyGPTError
from anygpt.generate.config import DecodingConfig
from anygpt.generate.context import check_input_seconds, context_length, fit
from anygpt.generate.decoder import make_decoder
from anygpt.generate.engine import GenerationRequest, generate
from anygpt.generate.segments import Segment, parse_reply
from anygpt.prompts import Media, Piece, UserText, encode_pieces, load_pool, merge_text, user_pieces

WANTS = ("text", "image", "speech", "music")


@dataclass
class Reply:
    segments: list[Segment]
    ids: list[int]  # generated ids, with the forced span start in front when one was forced


def encode_media(bundle: Bundle, modality: str, source, *, announce: bool = False) -> Media:
    """A file path (or an in-memory image, waveform or (waveform, sample rate) pair) -> Media with the
    bundle's codec. `announce`: warn (warnings.warn) when the input is resized, resampled or cut
    before the codec reads it, as a user's own files should be."""
    codec = bundle.codec(modality)
    if isinstance(source, (str, Path)):
        if modality == "image":
            source = media.load_image(source)
        else:
            if announce:
                import soundfile

                try:
                    info = soundfile.info(str(source))
                    _warn_adjusted(codec, modality, str(source), info.samplerate, info.duration, bundle)
                except (RuntimeError, OSError, ValueError):
                    pass  # load_audio below says what is wrong with the file
            source = media.load_audio(source, codec.sample_rate, max_seconds=max_input_seconds(bundle, modality))
    elif modality != "image" and isinstance(source, tuple):  # (waveform, rate): resampled and cropped as a file
        if announce:
            wav, rate = source
            _warn_adjusted(codec, modality, f"the {modality} input", int(rate), len(wav) / int(rate), bundle)
        source = media.to_waveform(source, codec.sample_rate, max_seconds=max_input_seconds(bundle, modality))
    if modality == "image" and announce:
        size = getattr(codec, "image_size", None) or getattr(getattr(codec, "cfg", None), "image_size", None)
        if size and getattr(source, "size", None) not in (None, (size, size)):
            warnings.warn(f"the picture is {source.size[0]}x{source.size[1]}; the image codec reads it at "
                          f"{size}x{size}", stacklevel=2)
    if modality != "image" and isinstance(source, np.ndarray):  # refused before the codec spends time on it
        check_input_seconds(context_length(bundle.llm), bundle.layout, modality, len(source) / codec.sample_rate)
    return Media(modality, codec.encode(source))


def _warn_adjusted(codec, modality: str, source: str, rate: int, seconds: float, bundle: Bundle) -> None:
    """Say when an audio input is resampled or cropped before its codec reads it."""
    if rate != codec.sample_rate:
        warnings.warn(f"{source} is resampled from {rate} Hz to {codec.sample_rate} Hz", stacklevel=3)
    limit = max_input_seconds(bundle, modality)
    if limit is not None and seconds > limit:
        warnings.warn(f"{source} is cut to its first {limit:g} s (of {seconds:.1f} s)", stacklevel=3)


def max_input_seconds(bundle: Bundle, modality: str) -> float | None:
    # Music inputs are cropped from the start to the span limit (5 s windows in the release).
    return bundle.decoding.max_seconds.get(modality) if modality == "music" else None


def check_want(bundle: Bundle, want: str | None) -> None:
    """AnyGPTError unless `want` (None: the model chooses) is a reply this bundle can give and decode."""
    if want is not None and want not in WANTS:
        raise AnyGPTError(f"unknown output modality {want!r}; choose one of {', '.join(WANTS)}")
    if want not in (None, "text"):
        bundle.layout[want]  # raises for a modality the layout lacks
        if want not in bundle.codecs:  # fail before generating what cannot be decoded
            raise AnyGPTError(f"bundle {bundle.name!r} has no {want} codec to decode a {want} reply")


class ChatSession:
    def __init__(self, bundle: Bundle, *, decoding: DecodingConfig | None = None):
        self.bundle = bundle
        self.decoding = decoding or bundle.decoding
        self.history: list[int] = []
        self._cache = None  # KVPrefix of the history (a prefix of it), from the last reply
        self._decoder = None  # one decoder, hence one cache allocation, for the whole conversation

    def reset(self) -> None:
        self.history = []
        self._cache = None

    def prompt_ids(self, content: list[Piece], want: str | None = None) -> list[int]:
        """Ids of the whole prompt for this user turn (history included). The strings of `content`
        are the user's: they never produce control or code ids (see prompts/user_text.py)."""
        content = user_pieces(content)
        check_want(self.bundle, want)
        b, fmt = self.bundle, self.bundle.prompt_format
        if fmt.kind == "base":
            pieces = self._base_pieces(content, want)
            head: list[int] = []
        else:
            pieces = merge_text(content)
            pieces = (fmt.system_pieces() if not self.history else [fmt.turn_separator]) + \
                fmt.user_pieces(pieces) + fmt.reply_prefix(b.layout, want)
            head = self.history
        bos = [b.tokenizer.bos_token_id] if fmt.add_bos and not head and b.tokenizer.bos_token_id is not None else []
        return head + bos + encode_pieces(pieces, b.tokenizer, b.layout)

    def _base_pieces(self, content: list[Piece], want: str | None) -> list[Piece]:
        fmt, layout = self.bundle.prompt_format, self.bundle.layout
        inputs = [p for p in content if isinstance(p, Media)]
        text = UserText(" ".join(p.text.strip() for p in content if isinstance(p, UserText) and p.text.strip()))
        rng = random.Random(self.decoding.seed or 0)
        if inputs:
            if len(inputs) > 1 or text.text or want not in (None, "text"):
                raise AnyGPTError("a base model takes one media input and answers in text "
                                  "(or text in and one media output); use a chat bundle for more")
            pool = load_pool(inputs[0].modality, "to_text")
            return fmt.base_pieces("to_text", rng.choice(pool), media=inputs[0])
        if want in (None, "text"):
            raise AnyGPTError("a base model needs --want image|speech|music for a text input")
        pool = load_pool(want, "from_text")
        return fmt.base_pieces("from_text", rng.choice(pool), text=text, layout=layout, open_span=want)

    def ask(self, content: list[Piece], *, want: str | None = None,
            on_token: Callable[[int], None] | None = None) -> Reply:
        """One turn; `on_token(token_id)` streams the reply's ids as they are generated."""
        stream = None if on_token is None else (lambda _i, tok: on_token(tok))
        return self.ask_batch([content], want=want, on_token=stream)[0]

    def ask_batch(self, contents: list[list[Piece]], *, want: str | None = None,
                  on_token: Callable[[int, int], None] | None = None) -> list[Reply]:
        """Independent single-turn questions in one batch (the history is neither used nor kept)
        when more than one is given; one question continues the conversation. `on_token(index,
        token_id)` streams each question's reply ids."""
        b = self.bundle
        single = len(contents) == 1
        saved = self.history
        if not single:
            self.history = []
        prompts = [self.prompt_ids(c, want) for c in contents]
        # classifier-free guidance of a media reply contrasts it with the reply to the same prompt
        # without the user's text (media inputs and the history kept)
        guided = want not in (None, "text") and self.decoding.guided(want)
        unconditional = [self.prompt_ids([p for p in c if isinstance(p, Media)], want) if guided else None
                         for c in contents]
        self.history = saved
        allowed = () if want == "text" else None
        prefix = self._cache if single and self.history else None
        requests = [GenerationRequest(p, allowed, prefix, u) for p, u in zip(prompts, unconditional)]
        # the context rule (generate/context.py): refuse what cannot fit, cut the reply budget to fit
        decoding = fit([len(p) for p in prompts], self.decoding, context=context_length(b.llm), layout=b.layout,
                       want=want)
        if self._decoder is None:
            self._decoder = make_decoder(b.llm, rows=len(requests))
        gens = generate(b.llm, b.layout, requests, decoding, stop_ids=b.stop_ids, pad_id=b.pad_id,
                        on_token=on_token, decoder=self._decoder)
        new = [g.ids for g in gens]
        forced = [b.layout[want].start_id] if want not in (None, "text") else []
        replies = []
        for prompt, ids in zip(prompts, new):
            segments = parse_reply(forced + ids, b.layout, b.tokenizer, stop_ids=b.stop_ids)
            replies.append(Reply(segments, forced + ids))
            if single and b.prompt_format.kind == "chat":
                # keep the history well-formed: the reply closed by the format's own end token
                body = ids[:-1] if ids and ids[-1] in b.stop_ids else ids
                self.history = prompt + body + b.token_ids([b.prompt_format.assistant_end])
                self._cache = gens[0].cache
        return replies


def write_segments(bundle: Bundle, segments: list[Segment], out_dir: str | Path, *,
                   voice: np.ndarray | None = None, seed: int | None = None, stem: str = "reply",
                   existing: str = "number") -> list[dict]:
    """Decode media segments to PNG/WAV files in out_dir; return one JSON-ready dict per segment.
    A name already taken gets the next number (reply-image1-2.png) unless `existing` says otherwise
    (see outputs.write_file): an earlier reply's files are never overwritten."""
    out_dir = Path(out_dir)
    rows: list[dict] = []
    counts: dict[str, int] = {}
    for seg in segments:
        if seg.modality == "text":
            rows.append({"modality": "text", "text": seg.text})
            continue
        n = counts[seg.modality] = counts.get(seg.modality, 0) + 1
        row: dict = {"modality": seg.modality, "num_codes": seg.num_codes}
        if seg.warnings:
            row["warnings"] = list(seg.warnings)
        decoded = decode_segment(bundle, seg, voice=voice, seed=seed)
        if decoded is None:
            row["path"] = None  # nothing that can be decoded faithfully
            rows.append(row)
            continue
        if seg.modality == "image":
            path = media.save_image(decoded, out_dir / f"{stem}-image{n}.png", existing=existing)
        else:
            rate = bundle.codec(seg.modality).sample_rate
            path = media.save_audio(out_dir / f"{stem}-{seg.modality}{n}.wav", decoded, rate, existing=existing)
            row["seconds"] = round(len(decoded) / rate, 4)
        row["path"] = str(path)
        rows.append(row)
    return rows


def decode_segment(bundle: Bundle, seg: Segment, *, voice: np.ndarray | None = None, seed: int | None = None):
    """A media segment -> a PIL image or a float32 waveform at its codec's rate; None when it cannot be
    decoded faithfully (no codes, or not the codec's fixed number of codes per item)."""
    spec = bundle.layout[seg.modality].spec
    if seg.num_codes == 0 or (spec.tokens_per_item is not None and seg.num_codes != spec.tokens_per_item):
        return None
    codec = bundle.codec(seg.modality)
    if seg.modality == "image":
        return codec.decode(seg.codes, seed=seed)
    return codec.decode(seg.codes, voice=voice if seg.modality == "speech" else None, seed=seed)
