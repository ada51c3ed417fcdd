"""The state behind the routes: the bundle, the scheduler, stored replies, voices and the media
threads, with what every route needs (request decoding, one reply on the scheduler, usage)."""

from __future__ import annotations

import asyncio
import itertools
import json
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from functools import partial

from anygpt import media
from anygpt.bundles import Bundle
from anygpt.errors import AnyGPTError
from anygpt.generate.config import DecodingConfig
from anygpt.generate.context import context_length, fit
from anygpt.serve import conversation as conv
from anygpt.serve.errors import APIError, bad_request
from anygpt.serve.scheduler import Job, Overloaded, Scheduler
from anygpt.serve.voices import Voices


@dataclass(frozen=True)
class ServeConfig:
    api_key: str | None = None
    max_batch: int = 16  # rows decoded together
    max_jobs: int = 32  # requests in progress (decoding or waiting); past it: 503
    max_body_bytes: int = 25 * 2**20
    max_tokens: int | None = None  # cap on a reply's tokens (None: the bundle's max_new_tokens)
    timeout_s: float = 300.0  # per request
    # CPU threads: the model's thread and the media threads (codecs: inputs, replies, speech chunks)
    # share the cores; by default half of them go to torch's ops in each thread
    torch_threads: int | None = None
    media_threads: int = 1
    limits: conv.Limits = field(default_factory=conv.Limits)


class MediaThreads:
    """A fixed number of threads taking work in order, urgent work first."""

    def __init__(self, threads: int):
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._threads = [threading.Thread(target=self._work, name=f"anygpt-media-{i}", daemon=True)
                         for i in range(threads)]
        for t in self._threads:
            t.start()

    def submit(self, fn, urgent: bool = False) -> Future:
        future: Future = Future()
        self._queue.put((0 if urgent else 1, next(self._order), fn, future))
        return future

    def shutdown(self) -> None:
        for _ in self._threads:
            self._queue.put((2, next(self._order), None, None))

    def _work(self) -> None:
        while True:
            _, _, fn, future = self._queue.get()
            if fn is None:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as e:  # noqa: BLE001 - handed to the awaiting request
                future.set_exception(e)


class Server:
    """The state behind the routes: bundle, scheduler, stored replies and voices."""

    def __init__(self, bundle: Bundle, decoding: DecodingConfig, config: ServeConfig):
        self.bundle, self.decoding, self.config = bundle, decoding, config
        self.store = conv.ReplyStore()
        self.voices = Voices(bundle.codec("speech").sample_rate) if "speech" in bundle.codecs else None
        self.scheduler = Scheduler(bundle.llm, bundle.layout, stop_ids=bundle.stop_ids, pad_id=bundle.pad_id,
                                   max_batch=config.max_batch, max_jobs=config.max_jobs)
        self.context = context_length(bundle.llm)
        self.created = int(time.time())
        self.media_pool = MediaThreads(config.media_threads)

    async def media(self, fn, *args, urgent: bool = False, **kwargs):
        """Run codec work (encoding inputs, decoding replies) on the media threads: never on the
        event loop, and never more of it at once than there are media threads. `urgent` work (a
        request's inputs, a reply's first audio) goes before the rest."""
        future = self.media_pool.submit(partial(fn, *args, **kwargs), urgent)
        return await asyncio.wrap_future(future)

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
            data = conv.data_url_bytes(spec, "audio.voice", self.config.limits)
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

    # --- request bodies ------------------------------------------------------------------------------
    @staticmethod
    async def json_body(request) -> dict:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise bad_request(f"the body is not JSON ({e})") from None
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object")
        model = body.get("model")
        if model is not None and not isinstance(model, str):
            raise bad_request("model must be a string", param="model")
        return body

    def text_field(self, body: dict, key: str) -> str:
        """A required, non-empty text field of a request, within the length limit."""
        text = body.get(key)
        if not isinstance(text, str) or not text.strip():
            raise bad_request(f"{key} must be non-empty text", param=key)
        if len(text) > self.config.limits.max_text_chars:
            raise APIError(413, f"{key} longer than {self.config.limits.max_text_chars} characters", param=key)
        return text

