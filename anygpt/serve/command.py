"""`anygpt serve`: the OpenAI-compatible server and its chat page.

    anygpt serve [--bundle B] [--device D] [--dtype T] [--host H] [--port P] [--api-key K]
                 [--max-batch N] [--max-jobs N] [--max-tokens N] [--timeout S] [--threads N]
                 [--media-threads N] [--set KEY=VALUE]...
"""

from __future__ import annotations

import os
import socket

from anygpt.bundles.command import add_bundle_args, load
from anygpt.chat.options import add_decoding_args, decoding_changes, resolve_decoding
from anygpt.errors import AnyGPTError

DEFAULT_PORT = 8421


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="serve a bundle over HTTP: OpenAI-compatible API and a chat page")
    add_bundle_args(p)
    add_decoding_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free port)")
    p.add_argument("--api-key", default=os.environ.get("ANYGPT_API_KEY"),
                   help="require 'Authorization: Bearer KEY' on /v1/ (default: $ANYGPT_API_KEY, else none)")
    p.add_argument("--max-batch", type=int, default=16, help="requests decoded together (default 16)")
    p.add_argument("--max-jobs", type=int, default=32, help="requests in progress before 503 (default 32)")
    p.add_argument("--max-tokens", type=int, default=None, help="cap on a reply's tokens (default: the bundle's)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds a request may take (default 300)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per working thread (default: half the cores, the rest for media)")
    p.add_argument("--media-threads", type=int, default=1,
                   help="threads that encode inputs and decode replies with the codecs (default 1)")
    p.set_defaults(func=run)


def run(args) -> int:
    """Check the arguments, bind the port, then load the bundle and serve until Ctrl-C."""
    check(args)
    changes = decoding_changes(args)
    sock = listen(args)
    bundle = load(args)
    return serve(bundle, resolve_decoding(args, bundle, changes), args, sock)


def check(args) -> None:
    if not 0 <= args.port <= 65535:
        raise AnyGPTError(f"--port must be in [0, 65535], got {args.port}")
    for name in ("max_batch", "max_jobs", "max_tokens", "threads", "media_threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise AnyGPTError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if not args.timeout > 0:
        raise AnyGPTError(f"--timeout must be positive, got {args.timeout}")


def listen(args):
    """The listening socket, bound before the bundle loads: a taken port fails at once."""
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as e:
        sock.close()
        raise AnyGPTError(f"cannot listen on {args.host}:{args.port} ({e.strerror}); try --port 0") from None
    return sock


def serve(bundle, decoding, args, sock) -> int:
    """Start the server on the socket from `listen` (blocks until Ctrl-C)."""
    try:
        import uvicorn

        from anygpt.serve.app import create_app
        from anygpt.serve.server import ServeConfig
    except ModuleNotFoundError as e:
        raise AnyGPTError(f"serving needs {e.name}: pip install 'anygpt[serve]'") from None
    config = ServeConfig(api_key=args.api_key or None, max_batch=args.max_batch, max_jobs=args.max_jobs,
                         max_tokens=args.max_tokens, timeout_s=args.timeout, torch_threads=args.threads,
                         media_threads=args.media_threads)
    app = create_app(bundle, decoding, config)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"anygpt serve: {bundle.name} on http://{shown}:{port}/ (OpenAI API at http://{shown}:{port}/v1"
          f"{', key required' if config.api_key else ''}); Ctrl-C stops", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
    return 0
