"""POST /v1/chat/completions: OpenAI's chat, any input to any output, whole or streamed.

    request ─ checks ─> messages -> prompt ids (conversation.py, on the media thread)
            ─> Server.run (the scheduler) ─> a whole message (replies.render + message_fields)
                                          └─> stream=true: server-sent events as tokens come
                                              (ReplyStream: text deltas, speech chunks, pictures, music)
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from anygpt.chat import decode_segment
from anygpt.generate.segments import parse_reply
from anygpt.media import AUDIO_FORMATS
from anygpt.serve import conversation as conv
from anygpt.serve import replies
from anygpt.serve.errors import APIError, bad_request
from anygpt.serve.server import Server


def register(app: FastAPI, server: Server) -> None:
    bundle = server.bundle

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await server.json_body(request)
        if body.get("n", 1) != 1:
            raise bad_request("only n=1 is supported", param="n")
        for unsupported in ("tools", "functions", "logprobs", "stop"):
            if body.get(unsupported):
                raise bad_request(f"{unsupported} is not supported by this server", param=unsupported)
        rf = body.get("response_format")
        if rf is not None and (not isinstance(rf, dict) or rf.get("type") != "text"):
            raise bad_request("only response_format {'type': 'text'} is supported", param="response_format")
        want = conv.reply_modality(body.get("modalities"))
        audio = body.get("audio") or {}
        if not isinstance(audio, dict):
            raise bad_request("audio must be an object {voice, format}", param="audio")
        stream = bool(body.get("stream"))
        fmt = audio.get("format", "pcm16" if stream else "wav")
        if fmt not in AUDIO_FORMATS:
            raise bad_request(f"audio.format must be one of {', '.join(AUDIO_FORMATS)}", param="audio.format")
        if stream and want == "speech" and fmt != "pcm16":
            raise bad_request("a streamed speech reply comes as pcm16 (24 kHz): set audio.format to pcm16",
                              param="audio.format")
        voice, prompt = await server.media(_prepare, server, body.get("messages"), want, audio.get("voice"), urgent=True)
        decoding = server.request_decoding(body, want, prompt)
        seed = decoding.seed or 0
        reply_id = "reply_" + secrets.token_hex(12)
        completion_id = "chatcmpl-" + secrets.token_hex(12)
        if stream:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = _chat_stream(server, prompt, decoding, want, voice, seed, reply_id, completion_id, include_usage)
            first = await anext(events)  # errors before the first byte (busy, bad input) keep their status
            return StreamingResponse(_prepend(first, events), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        job = await server.run(prompt, decoding, want)
        ids = server.forced(want) + job.ids
        segments = parse_reply(ids, bundle.layout, bundle.tokenizer, stop_ids=bundle.stop_ids)
        rendered = await server.media(replies.render, bundle, segments, voice=voice, seed=seed)
        server.store_reply(reply_id, want, job.ids)
        message = replies.message_fields(bundle, rendered, reply_id=reply_id, audio_format=fmt)
        return {"id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": bundle.name,
                "choices": [{"index": 0, "message": message, "finish_reason": server.finish_reason(job)}],
                "usage": server.usage(job)}


async def _chat_stream(server: Server, prompt, decoding, want, voice, seed, reply_id, completion_id,
                       include_usage) -> AsyncIterator[str]:
    """Server-sent events of one streamed reply: the first is the role chunk, sent once the job is
    accepted (so that a refusal is still an HTTP error, not an event)."""
    bundle = server.bundle
    tokens: asyncio.Queue = asyncio.Queue()
    stream = replies.ReplyStream(bundle, forced=server.forced(want), stop_ids=bundle.stop_ids, voice=voice, seed=seed)
    created = int(time.time())

    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        doc = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": bundle.name,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(doc)}\n\n"

    run = asyncio.ensure_future(server.run(prompt, decoding, want, on_token=tokens.put_nowait))
    run.add_done_callback(lambda _: tokens.put_nowait(None))
    await asyncio.sleep(0)  # let the submission happen: a busy server fails it now
    if run.done() and run.exception() is not None:
        raise run.exception()
    yield chunk({"role": "assistant", "content": "", "reply_id": reply_id})
    try:
        finished = False
        while not finished:
            batch = [await tokens.get()]
            while not tokens.empty():
                batch.append(tokens.get_nowait())
            finished = batch[-1] is None
            ids = [t for t in batch if t is not None]
            for delta in await server.media(_deltas, server, stream, ids, finished, reply_id):
                if delta:
                    yield chunk(delta)
        job = await run  # raises the job's error, if any
        server.store_reply(reply_id, want, job.ids)
        yield chunk({}, server.finish_reason(job))
        if include_usage:
            doc = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": bundle.name,
                   "choices": [], "usage": server.usage(job)}
            yield f"data: {json.dumps(doc)}\n\n"
        yield "data: [DONE]\n\n"
    except APIError as e:  # after the first byte an error can only be an event
        yield f"data: {json.dumps(e.body())}\n\n"
    except Exception as e:  # noqa: BLE001 - a failed batch ends this stream with an error event
        yield f"data: {json.dumps(APIError(500, f'generation failed: {type(e).__name__}: {e}').body())}\n\n"
    finally:
        if not run.done():
            run.cancel()


def _prepare(server: Server, messages, want: str | None, voice) -> tuple:
    """The reply's voice and the prompt's ids, in one turn of the media thread."""
    voice = server.voice(voice) if want in (None, "speech") else None
    talk = conv.parse_messages(server.bundle, messages, limits=server.config.limits, store=server.store)
    return voice, conv.prompt_ids(server.bundle, talk, want)


def _deltas(server: Server, stream: replies.ReplyStream, ids: list[int], finished: bool, reply_id: str) -> list:
    """The stream deltas of new reply ids (decoding speech chunks, pictures, music as they close)."""
    events = [e for tok in ids for e in stream.feed(tok)] + stream.flush() + (stream.finish() if finished else [])
    return [_delta(server, e, reply_id) for e in events]


def _delta(server: Server, event, reply_id: str) -> dict | None:
    """The stream delta of one reply event; None when it adds nothing (a closed speech span: its
    samples went out in chunks)."""
    bundle = server.bundle
    if isinstance(event, replies.TextDelta):
        return {"content": event.text}
    if isinstance(event, replies.AudioChunk):
        return {"audio": replies.audio_part(bundle, event.samples, reply_id, "pcm16", "")}
    segment = event.segment  # SpanDone
    decoded = None if segment.modality == "speech" else decode_segment(bundle, segment, seed=0)
    if decoded is None:
        return None
    if segment.modality == "image":
        return {"images": [replies.image_part(decoded)]}
    return {"music": replies.music_part(bundle, decoded)}


async def _prepend(first: str, rest: AsyncIterator[str]) -> AsyncIterator[str]:
    yield first
    async for item in rest:
        yield item
