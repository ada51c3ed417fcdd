"""The HTTP app: OpenAI's endpoints over one bundle, a health check and the chat page.

    GET  /                          the chat page (page/)
    GET  /health                    {"status": "ok", "model": ..., "in_progress": n, "voices": [...]}
    GET  /v1/models                 the one model served
    POST /v1/chat/completions       chat_api.py: text, images, audio in -> text, speech, images, music
                                    out; stream=true: server-sent events as the reply is decoded
    POST /v1/audio/transcriptions   tasks_api.py: the release's task prompts (asr, tts, t2i)
    POST /v1/audio/speech
    POST /v1/images/generations

Every error has OpenAI's shape and status: 400 bad input, 401 missing or wrong key (when the server
has one), 413 too large, 503 busy, 504 out of time; a bug is a 500, bad input never is. Generation
runs on the scheduler's thread (all requests in one batch); encoding inputs and decoding replies
run on the media threads (server.py), never on the event loop.
"""

from __future__ import annotations

import os
import secrets
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException

from anygpt.bundles import Bundle
from anygpt.errors import AnyGPTError
from anygpt.generate.config import DecodingConfig
from anygpt.serve import chat_api, tasks_api
from anygpt.serve.errors import APIError, bad_request
from anygpt.serve.server import ServeConfig, Server
from anygpt.serve.voices import voice_names


def create_app(bundle: Bundle, decoding: DecodingConfig | None = None, config: ServeConfig | None = None) -> FastAPI:
    config = config or ServeConfig()
    server = Server(bundle, decoding or bundle.decoding, config)

    async def lifespan(app):
        import torch

        torch.set_num_threads(config.torch_threads or max(1, (os.cpu_count() or 2) // 2))
        server.scheduler.start()
        yield
        server.scheduler.stop()
        server.media_pool.shutdown()

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

    chat_api.register(app, server)
    tasks_api.register(app, server)
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


def _page_file(name: str) -> bytes:
    return resources.files("anygpt.serve").joinpath("page", name).read_bytes()


def _voice_list() -> list[str]:
    return voice_names()
