"""Shared fixtures. Tests never reach the network: the hub is forced offline before anything loads."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import pytest


@pytest.fixture(scope="session")
def debug_bundle():
    from anygpt.bundles import load_bundle

    return load_bundle("debug")


@pytest.fixture(autouse=True)
def debug_by_default(request, monkeypatch):
    """Commands default to the shipped `tiny` bundle; tests of the machinery run on `debug` (random
    tiny weights, fast) unless marked `@pytest.mark.tiny_default`."""
    if request.node.get_closest_marker("tiny_default") is None:
        import anygpt.bundles

        monkeypatch.setattr(anygpt.bundles, "DEFAULT_BUNDLE", "debug")


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails: model loading code must never reach the network."""
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread; a second one only spin-waits on 2 shared cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """small_world(n, kinds, seed=1) -> a world folder with 1 s music clips, built once per session
    for each distinct request; skips when flite, fluidsynth or a GM soundfont is missing."""
    import shutil
    from pathlib import Path

    from anygpt.world import music

    built: dict = {}

    def make(n: int, kinds: tuple[str, ...] = ("images", "speech", "music"), seed: int = 1):
        if shutil.which("flite") is None or shutil.which("fluidsynth") is None or not any(
                Path(font).is_file() for font in music.SOUNDFONT_CANDIDATES):
            pytest.skip("needs Debian flite, fluidsynth and a GM soundfont")
        key = (n, tuple(kinds), seed)
        if key not in built:
            from anygpt.world.build import build
            from anygpt.world.config import WorldConfig

            out = tmp_path_factory.mktemp("world") / "w"
            build(out, WorldConfig(seed=seed, n=n, kinds=tuple(kinds), clip_seconds=1.0, clips_per_render=2),
                  workers=1, progress=False)
            built[key] = out
        return built[key]

    return make


@pytest.fixture(scope="session")
def served():
    """served(bundle="tiny", **ServeConfig fields) -> (base URL, Server): the real app on uvicorn, on a
    free loopback port, started once per session for each distinct request and stopped at the end."""
    import socket
    import threading
    import time

    import uvicorn

    from anygpt.bundles import load_bundle
    from anygpt.serve.app import create_app
    from anygpt.serve.server import ServeConfig

    running: dict = {}
    bundles: dict = {}

    def start(bundle: str = "tiny", **config):
        key = (bundle, tuple(sorted(config.items())))
        if key not in running:
            if bundle not in bundles:
                bundles[bundle] = load_bundle(bundle)
            import torch

            config.setdefault("torch_threads", torch.get_num_threads())  # the test process keeps its threads
            app = create_app(bundles[bundle], config=ServeConfig(**config))
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
            thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
            thread.start()
            deadline = time.monotonic() + 60
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.02)
            assert server.started, "the server did not start"
            running[key] = (f"http://127.0.0.1:{sock.getsockname()[1]}", app.state.server, server, thread)
        url, state, _, _ = running[key]
        return url, state

    yield start
    for _, _, server, thread in running.values():
        server.should_exit = True
        thread.join(10)
