"""Shared fixtures. Tests never reach the network: the hub is forced offline before anything loads."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def debug_bundle():
    from anygpt.bundles import load_bundle

    return load_bundle("debug")
