"""Generated ids -> what an OpenAI client reads: a whole message, or stream events as tokens come.

    ids ──ReplyStream.feed(tok)──> TextDelta("a red")        text, decoded as it grows
        ReplyStream.flush() ─────> AudioChunk(samples)        speech, in chunks as soon as each can be
                                                              decoded (SpeechChunker), while the span
                                                              is still being generated
                                   SpanDone(segment)          a closed span (image, music, speech)

A message (`message_fields`):
    content            the reply's text (null when there is none)
    audio              OpenAI's speech reply: {id, data (base64, in the asked format), expires_at, transcript}
    images             extension (OpenRouter's shape): [{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}]
    music              extension: {"data": base64 WAV, "format": "wav"}
    reply_id           extension: send it back on the assistant message (or audio.id) to continue from
                       the exact ids of this reply
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

import numpy as np

from anygpt import media
from anygpt.bundles import Bundle
from anygpt.chat import decode_segment
from anygpt.generate.segments import Segment, parse_reply

STREAM_RATE = 24000  # OpenAI streams speech as raw 16-bit PCM at 24 kHz
EXPIRES_S = 3600  # how long a reply id is announced to be kept (the store keeps the last ones)


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- whole messages ----------------------------------------------------------------------------------

@dataclass
class Rendered:
    text: str
    speech: np.ndarray | None  # all speech segments, one after the other, at the speech codec's rate
    images: list  # PIL images
    music: np.ndarray | None


def render(bundle: Bundle, segments: list[Segment], *, voice: np.ndarray | None, seed: int) -> Rendered:
    """Decode every segment the codecs can decode faithfully."""
    text = " ".join(s.text for s in segments if s.modality == "text" and s.text)
    speech, images, music = [], [], []
    for seg in segments:
        if seg.modality == "text":
            continue
        decoded = decode_segment(bundle, seg, voice=voice, seed=seed)
        if decoded is not None:
            {"speech": speech, "image": images, "music": music}[seg.modality].append(decoded)
    join = (lambda parts: np.concatenate(parts).astype(np.float32) if parts else None)
    return Rendered(text, join(speech), images, join(music))


def message_fields(bundle: Bundle, rendered: Rendered, *, reply_id: str, audio_format: str) -> dict:
    message: dict = {"role": "assistant", "content": rendered.text or None, "reply_id": reply_id}
    if rendered.speech is not None:
        message["audio"] = audio_part(bundle, rendered.speech, reply_id, audio_format, rendered.text)
    if rendered.images:
        message["images"] = [image_part(im) for im in rendered.images]
    if rendered.music is not None:
        message["music"] = music_part(bundle, rendered.music)
    return message


def audio_part(bundle: Bundle, speech: np.ndarray, reply_id: str, fmt: str, transcript: str) -> dict:
    """OpenAI's `audio` of a message (or of a stream delta, with a chunk of the reply)."""
    return {"id": reply_id, "data": b64(speech_bytes(bundle, speech, fmt)),
            "expires_at": int(time.time()) + EXPIRES_S, "transcript": transcript}


def speech_bytes(bundle: Bundle, speech: np.ndarray, fmt: str) -> bytes:
    """Speech at the speech codec's rate -> the bytes of `fmt`; pcm16 is raw samples at 24 kHz, as
    OpenAI sends them."""
    rate = bundle.codec("speech").sample_rate
    if fmt == "pcm16":
        speech, rate = resample(speech, rate, STREAM_RATE), STREAM_RATE
    return media.audio_bytes(speech, rate, fmt)


def image_part(image) -> dict:
    return {"type": "image_url", "image_url": {"url": data_url("image/png", media.png_bytes(image))}}


def music_part(bundle: Bundle, wav: np.ndarray) -> dict:
    return {"data": b64(media.audio_bytes(wav, bundle.codec("music").sample_rate, "wav")), "format": "wav"}


def resample(wav: np.ndarray, rate: int, to: int) -> np.ndarray:
    if rate == to:
        return wav
    import soxr

    return soxr.resample(wav, rate, to).astype(np.float32)


# --- streams -----------------------------------------------------------------------------------------

@dataclass
class TextDelta:
    text: str


@dataclass
class AudioChunk:
    samples: np.ndarray  # float32 at the speech codec's rate


@dataclass
class SpanDone:
    segment: Segment


class ReplyStream:
    """Reply ids one at a time -> stream events. `forced` is the span start the prompt opened (the
    reply starts inside that span)."""

    def __init__(self, bundle: Bundle, *, forced: list[int], stop_ids: list[int], voice: np.ndarray | None,
                 seed: int, chunk_frames: int = 8, context_frames: int = 8, lookahead_frames: int = 4):
        self.bundle, self.layout, self.tok = bundle, bundle.layout, bundle.tokenizer
        self.kinds = self.layout.kind_table()
        self.names = self.layout.names
        self.stops = set(stop_ids)
        self.ids: list[int] = list(forced)
        self.text_ids: list[int] = []  # the current stretch of text
        self.sent_text = ""  # what was sent of that stretch
        self.any_text = False
        self.span: str | None = None
        self.span_ids: list[int] = []
        self.chunker = None
        self.speech_args = dict(voice=voice, seed=seed, chunk_frames=chunk_frames, context_frames=context_frames,
                                lookahead_frames=lookahead_frames)
        self.stopped = False
        for tok in forced:
            self._open(tok)

    def feed(self, tok: int) -> list:
        if self.stopped:
            return []
        self.ids.append(tok)
        if tok in self.stops:
            self.stopped = True
            return self._close_span()
        kind = int(self.kinds[tok]) if 0 <= tok < self.kinds.numel() else 0
        if self.span is None:
            if -100 < kind < 0:
                return self._open(tok)
            if kind == 0:
                self.text_ids.append(tok)
                return self._text_delta()
            return []  # a stray code or end token: parse_reply drops it too
        if kind == self.names.index(self.span) + 1:
            self.span_ids.append(tok)
            return []
        events = self._close_span()  # the span's end token, or anything that interrupts it
        if -100 < kind < 0:
            events += self._open(tok)
        elif kind == 0:
            self.text_ids.append(tok)
            events += self._text_delta()
        return events

    def flush(self) -> list:
        """Speech decoded so far, if a chunk is due: called after each batch of fed tokens, so
        that tokens arriving together are decoded together."""
        if self.chunker is None or not self.span_ids:
            return []
        return [AudioChunk(s) for s in self.chunker.feed(self._codes())]

    def finish(self) -> list:
        """Events still owed when generation ends (an unclosed span is decoded as far as it goes)."""
        return self._close_span()

    def _text_delta(self) -> list:
        text = self.tok.decode(self.text_ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # a character split over tokens: wait for the rest
            return []
        new, self.sent_text = text[len(self.sent_text):], text
        if not self.any_text:  # the reply's text starts at its first visible character
            new = new.lstrip()
        if not new:
            return []
        self.any_text = True
        return [TextDelta(new)]

    def _open(self, tok: int) -> list:
        self.text_ids, self.sent_text = [], ""
        self.span, self.span_ids = self.names[-int(self.kinds[tok]) - 1], []
        self.chunker = SpeechChunker(self.bundle, **self.speech_args) if self.span == "speech" else None
        return []

    def _codes(self):
        import torch

        return self.layout.ids_to_codes(self.span, torch.tensor(self.span_ids, dtype=torch.long))

    def _close_span(self) -> list:
        if self.span is None:
            return []
        spec = self.layout[self.span]
        segment = parse_reply([spec.start_id] + self.span_ids + [spec.end_id], self.layout, self.tok)[0]
        events: list = []
        if self.chunker is not None and segment.num_codes:
            events += [AudioChunk(s) for s in self.chunker.feed(segment.codes, final=True)]
        self.span, self.span_ids, self.chunker = None, [], None
        return events + [SpanDone(segment)]


class SpeechChunker:
    """Speech codes as they grow -> waveform chunks, each decoded as soon as enough codes follow it.

        frames   0 ............ a ======= b ..... T          = : the next chunk's frames [a, b)
        window       [a - context, T)                         decoded together; samples of [a, b) kept
                                         b = T - lookahead    (T when the span has ended)

    The first chunk is short (it is what a listener waits for); each next one is twice as long, up
    to `max_chunk_frames`, so a reply of T frames costs about T + (number of chunks) x (context +
    lookahead) frames of decoding: a few chunks, not one per token. A chunk takes every frame that is
    ready, so codes that arrive faster than they are decoded make longer chunks, not a queue."""

    def __init__(self, bundle: Bundle, *, voice, seed: int, chunk_frames: int, context_frames: int,
                 lookahead_frames: int, max_chunk_frames: int = 128):
        self.codec = bundle.codec("speech")
        self.voice, self.seed = voice, seed
        self.chunk, self.context, self.lookahead = chunk_frames, context_frames, lookahead_frames
        self.max_chunk = max_chunk_frames
        self.done = 0  # frames already sent

    def feed(self, codes, final: bool = False) -> list[np.ndarray]:
        T = codes.shape[-1]
        b = T if final else T - self.lookahead
        if b - self.done < (1 if final else self.chunk):
            return []
        start, stop = max(0, self.done - self.context), min(T, b + self.lookahead)
        window = self.codec.decode(codes[..., start:stop], voice=self.voice, seed=self.seed)
        per_frame = len(window) / (stop - start)
        out = np.asarray(window[round((self.done - start) * per_frame): round((b - start) * per_frame)], dtype=np.float32)
        self.done = b
        self.chunk = min(2 * self.chunk, self.max_chunk)
        return [out]
