"""The HTTP app: OpenAI's endpoints over one bundle, a health check and the chat page.

    GET  /                          the chat page (page/)
    GET  /health                    {"status": "ok", "model": ..., "in_progress": n}
    GET  /v1/models                 the one model served
    POST /v1/chat/completions       messages with text, images, audio -> text, speech, images, music;
                                    stream=true: server-sent events as the reply is decoded
    POST /v1/audio/transcriptions   multipart upload -> text (the ASR task prompt)
    POST /v1/audio/speech           text -> audio bytes (the TTS task prompt)
    POST /v1/images/generations     text -> PNG (the text-to-image task prompt)

Every error has OpenAI's shape and status: 400 bad input, 401 missing or wrong key (when the server
has one), 413 too large, 503 busy, 504 out of time; a bug is a 500, bad input never is. Generation
runs on the scheduler's thread (all requests in one batch); decoding media and encoding inputs run
in the thread pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from importlib import resources
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from anygpt import media
from anygpt.bundles import Bundle
from anygpt.chat import decode_segment
from anygpt.errors import AnyGPTError
from anygpt.generate.config import DecodingConfig
from anygpt.generate.context import context_length, fit
from anygpt.generate.segments import parse_reply
from anygpt.media import AUDIO_FORMATS
from anygpt.prompts import load_tasks
from anygpt.serve import conversation as conv
from anygpt.serve import replies
from anygpt.serve.errors import APIError, bad_request
from anygpt.serve.scheduler import Job, Overloaded, Scheduler
from anygpt.serve.voices import Voices

SPEECH_FORMATS = {"wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "pcm16": "audio/L16",
                  "pcm": "audio/L16"}  # pcm: /v1/audio/speech's name for pcm16


@dataclass(frozen=True)
class ServeConfig:
    api_key: str | None = None
    max_batch: int = 8  # rows decoded together
    max_jobs: int = 32  # requests in progress (decoding or waiting); past it: 503
    max_body_bytes: int = 25 * 2**20
    max_tokens: int | None = None  # cap on a reply's tokens (None: the bundle's max_new_tokens)
    timeout_s: float = 300.0  # per request
    # CPU threads: the model's thread and the media threads (codecs: inputs, replies, speech chunks)
    # share the cores; by default half of them go to torch's ops in each thread
    torch_threads: int | None = None
    media_threads: int = 1
    limits: conv.Limits = field(default_factory=conv.Limits)


class Server:
    """The state behind the routes: bundle, scheduler, stored replies and voices."""

    def __init__(self, bundle: Bundle, decoding: DecodingConfig, config: ServeConfig):
        self.bundle, self.decoding, self.config = bundle, decoding, config
        self.store = conv.ReplyStore()
        self.voices = Voices(bundle.codec("speech").sample_rate) if "speech" in bundle.codecs else None
        self.scheduler = Scheduler(bundle.model, bundle.layout, stop_ids=bundle.stop_ids, pad_id=bundle.pad_id,
                                   max_batch=config.max_batch, max_jobs=config.max_jobs)
        self.context = context_length(bundle.model)
        self.created = int(time.time())
        self.media_pool = ThreadPoolExecutor(config.media_threads, thread_name_prefix="anygpt-media")

    async def media(self, fn, *args, **kwargs):
        """Run codec work (encoding inputs, decoding replies) on the media threads: never on the
        event loop, and never more of it at once than there are media threads."""
        return await asyncio.get_running_loop().run_in_executor(self.media_pool, partial(fn, *args, **kwargs))

    # --- requests -> decoding ----------------------------------------------------------------------
    def request_decoding(self, body: dict, want: str | None, prompt: list[int]) -> DecodingConfig:
        decoding = conv.text_sampling(self.decoding, body.get("temperature"), body.get("top_p"))
        cap = self.config.max_tokens or decoding.max_new_tokens
        asked = body.get("max_completion_tokens", body.get("max_tokens"))
        if asked is not None:
            if isinstance(asked, bool) or not isinstance(asked, int) or asked < 1:
                raise bad_request("max_tokens must be a positive integer", param="max_tokens")
            cap = min(cap, asked)
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise bad_request("seed must be a non-negative integer", param="seed")
        decoding = replace(decoding, max_new_tokens=cap, seed=seed)
        try:
            return fit([len(prompt)], decoding, context=self.context, layout=self.bundle.layout, want=want)
        except AnyGPTError as e:
            raise bad_request(str(e), param="messages") from None

    def voice(self, spec) -> object:
        """The voice of a speech reply: a stored name, an OpenAI name, or a data: URL of a clip."""
        if self.voices is None:
            return None
        if isinstance(spec, dict):
            spec = spec.get("id")
        if isinstance(spec, str) and spec.startswith("data:"):
            media_ = conv.DATA_URL.match(spec)
            if media_ is None:
                raise bad_request("audio.voice: not a base64 data: URL", param="audio.voice")
                data = conv.decode_base64(media_.group(3), "audio.voice", self.config.limits)
            return media.audio_from_bytes(data, self.voices.sample_rate, source="audio.voice",
                                          max_seconds=self.voices.seconds)
        if spec is not None and not isinstance(spec, str):
            raise bad_request("audio.voice must be a voice name", param="audio.voice")
        return self.voices.get(spec)

    def forced(self, want: str | None) -> list[int]:
        return [self.bundle.layout[want].start_id] if want not in (None, "text") else []

    async def run(self, prompt: list[int], decoding: DecodingConfig, want: str | None,
                  on_token=None) -> Job:
        """Generate one reply on the scheduler; `on_token(id)` is called on the event loop."""
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        push = None if on_token is None else (lambda tok: loop.call_soon_threadsafe(on_token, tok))
        job = Job(prompt, decoding, () if want == "text" else None, on_token=push,
                  on_done=lambda: loop.call_soon_threadsafe(done.set))
        try:
            self.scheduler.submit(job)
        except Overloaded as e:
            raise APIError(503, str(e), code="server_busy") from None
        try:
            await asyncio.wait_for(done.wait(), self.config.timeout_s)
        except (asyncio.TimeoutError, asyncio.CancelledError) as e:
            job.cancelled = True
            if isinstance(e, asyncio.CancelledError):
                raise
            raise APIError(504, f"the reply took longer than {self.config.timeout_s:g} s") from None
        if job.error is not None:
            raise job.error
        return job

    def store_reply(self, reply_id: str, want: str | None, ids: list[int]) -> None:
        body = [t for t in ids if t not in self.bundle.stop_ids]
        self.store.put(reply_id, conv.StoredReply(want, body))

    def finish_reason(self, job: Job) -> str:
        return "stop" if job.ids and job.ids[-1] in self.bundle.stop_ids else "length"

    def usage(self, job: Job) -> dict:
        return {"prompt_tokens": len(job.prompt), "completion_tokens": len(job.ids),
                "total_tokens": len(job.prompt) + len(job.ids),
                "prompt_tokens_details": {"cached_tokens": job.cached_prompt}}


def create_app(bundle: Bundle, decoding: DecodingConfig | None = None, config: ServeConfig | None = None) -> FastAPI:
    config = config or ServeConfig()
    server = Server(bundle, decoding or bundle.decoding, config)

    async def lifespan(app):
        import torch

        torch.set_num_threads(config.torch_threads or max(1, (os.cpu_count() or 2) // 2))
        server.scheduler.start()
        yield
        server.scheduler.stop()
        server.media_pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="anygpt", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = server
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)

    @app.exception_handler(APIError)
    async def api_error(request, e: APIError):
        return JSONResponse(e.body(), status_code=e.status)

    @app.exception_handler(HTTPException)
    async def http_error(request, e: HTTPException):
        return JSONResponse(APIError(e.status_code, str(e.detail)).body(), status_code=e.status_code)

    @app.exception_handler(AnyGPTError)
    async def user_error(request, e: AnyGPTError):  # bad media, bad settings: the input's fault
        return JSONResponse(bad_request(str(e)).body(), status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, e: RequestValidationError):
        return JSONResponse(bad_request(f"invalid request: {e.errors()[:1]}").body(), status_code=400)

    @app.exception_handler(Exception)
    async def bug(request, e: Exception):
        return JSONResponse(APIError(500, f"internal error: {type(e).__name__}: {e}").body(), status_code=500)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        """The API key, before a route reads anything."""
        try:
            if config.api_key and request.url.path.startswith("/v1/"):
                given = request.headers.get("authorization", "")
                if not secrets.compare_digest(given.encode(), f"Bearer {config.api_key}".encode()):
                    raise APIError(401, "missing or wrong API key (Authorization: Bearer KEY)", code="invalid_api_key")
        except APIError as e:
            return JSONResponse(e.body(), status_code=e.status)
        return await call_next(request)

    async def json_body(request: Request) -> dict:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise bad_request(f"the body is not JSON ({e})") from None
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object")
        return body

    def check_model(body: dict) -> None:
        model = body.get("model")
        if model is not None and not isinstance(model, str):
            raise bad_request("model must be a string", param="model")

    # --- pages and metadata --------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    async def page():
        return HTMLResponse(_page_file("index.html"))

    @app.get("/page/{name}")
    async def page_asset(name: str):
        types = {".js": "text/javascript", ".css": "text/css"}
        suffix = name[name.rfind("."):]
        if suffix not in types or "/" in name or name.startswith("."):
            raise APIError(404, f"no page file {name!r}")
        try:
            return Response(_page_file(name), media_type=types[suffix])
        except FileNotFoundError:
            raise APIError(404, f"no page file {name!r}") from None

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": bundle.name, "in_progress": server.scheduler.load,
                "voices": [] if server.voices is None else _voice_list()}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": bundle.name, "object": "model", "created": server.created,
                                            "owned_by": "anygpt"}]}

    # --- chat ------------------------------------------------------------------------------------------
    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await json_body(request)
        check_model(body)
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
        voice = await server.media(server.voice, audio.get("voice")) if want in (None, "speech") else None
        talk = await server.media(conv.parse_messages, bundle, body.get("messages"),
                                       limits=config.limits, store=server.store)
        prompt = await server.media(conv.prompt_ids, bundle, talk, want)
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

    # --- task endpoints ------------------------------------------------------------------------------
    async def task_reply(task_name: str, value, want: str, body: dict) -> tuple[Job, replies.Rendered]:
        task = load_tasks()[task_name]
        talk = conv.Conversation(None, [conv.Turn("user", task.chat_pieces(value))])
        prompt = await server.media(conv.prompt_ids, bundle, talk, want)
        decoding = server.request_decoding(body, want, prompt)
        job = await server.run(prompt, decoding, want)
        segments = parse_reply(server.forced(want) + job.ids, bundle.layout, bundle.tokenizer, stop_ids=bundle.stop_ids)
        voice = await server.media(server.voice, body.get("voice")) if want == "speech" else None
        return job, await server.media(replies.render, bundle, segments, voice=voice, seed=decoding.seed or 0)

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request):
        try:
            form = await request.form(max_part_size=config.max_body_bytes)
        except APIError:
            raise
        except Exception as e:  # noqa: BLE001 - a malformed form is the client's
            raise bad_request(f"expected a multipart form with a file ({e})") from None
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise bad_request("the form needs a file field with the audio", param="file")
        fmt = form.get("response_format", "json")
        if fmt not in ("json", "text", "verbose_json"):
            raise bad_request("response_format must be json, text or verbose_json", param="response_format")
        data = await upload.read()
        speech = await server.media(conv.encode_audio_bytes, bundle, data, "speech", "file", config.limits)
        job, rendered = await task_reply("asr", speech, "text", {})
        if fmt == "text":
            return Response(rendered.text + "\n", media_type="text/plain")
        out = {"text": rendered.text}
        if fmt == "verbose_json":
            out.update(task="transcribe", duration=round(speech.codes.shape[-1] / bundle.layout["speech"].spec.frame_rate, 3))
        return out

    @app.post("/v1/audio/speech")
    async def speech(request: Request):
        body = await json_body(request)
        check_model(body)
        text = body.get("input")
        if not isinstance(text, str) or not text.strip():
            raise bad_request("input must be non-empty text", param="input")
        if len(text) > config.limits.max_text_chars:
            raise APIError(413, f"input longer than {config.limits.max_text_chars} characters", param="input")
        fmt = body.get("response_format", "mp3")
        if fmt not in SPEECH_FORMATS:
            raise bad_request(f"response_format must be one of {', '.join(SPEECH_FORMATS)}", param="response_format")
        job, rendered = await task_reply("tts", text, "speech", body)
        if rendered.speech is None:
            raise APIError(500, "the model produced no speech that can be decoded", code="no_speech")
        rate = bundle.codec("speech").sample_rate
        wav, rate = (replies.resample(rendered.speech, rate, replies.STREAM_RATE), replies.STREAM_RATE) \
            if fmt in ("pcm", "pcm16") else (rendered.speech, rate)
        data = await server.media(media.audio_bytes, wav, rate, "pcm16" if fmt == "pcm" else fmt)
        return Response(data, media_type=SPEECH_FORMATS[fmt])

    @app.post("/v1/images/generations")
    async def images(request: Request):
        body = await json_body(request)
        check_model(body)
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise bad_request("prompt must be non-empty text", param="prompt")
        if len(prompt) > config.limits.max_text_chars:
            raise APIError(413, f"prompt longer than {config.limits.max_text_chars} characters", param="prompt")
        if body.get("n", 1) != 1:
            raise bad_request("only n=1 is supported", param="n")
        fmt = body.get("response_format", "b64_json")
        if fmt not in ("b64_json", "url"):
            raise bad_request("response_format must be b64_json or url", param="response_format")
        job, rendered = await task_reply("t2i", prompt, "image", body)
        if not rendered.images:
            raise APIError(500, "the model produced no picture that can be decoded", code="no_image")
        png = media.png_bytes(rendered.images[0])
        item = {"b64_json": replies.b64(png)} if fmt == "b64_json" else {"url": replies.data_url("image/png", png)}
        return {"created": int(time.time()), "data": [item]}

    return app


class BodyLimit:
    """Refuse a request body over `limit` bytes (413): at once when its Content-Length says so,
    otherwise as soon as the bytes received pass it (a chunked upload), whatever the route."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = APIError(413, f"request body larger than {self.limit / 2**20:g} MB")
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            return await JSONResponse(too_large.body(), status_code=413)(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise too_large
            return message

        return await self.app(scope, counted, send)


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
        rate = bundle.codec("speech").sample_rate
        pcm = replies.resample(event.samples, rate, replies.STREAM_RATE)
        return {"audio": {"id": reply_id, "data": replies.b64(media.audio_bytes(pcm, replies.STREAM_RATE, "pcm16")),
                          "expires_at": int(time.time()) + replies.EXPIRES_S, "transcript": ""}}
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


def _page_file(name: str) -> bytes:
    return resources.files("anygpt.serve").joinpath("page", name).read_bytes()


def _voice_list() -> list[str]:
    from anygpt.serve.voices import voice_names

    return voice_names()
