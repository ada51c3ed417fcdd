"""Shared fixtures. Tests never reach the network: the hub is forced offline before anything loads."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def debug_bundle():
    from anygpt.bundles import load_bundle

    return load_bundle("debug")


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
