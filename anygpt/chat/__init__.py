"""Chat: conversations with a bundle (session.py) and the `anygpt chat` command.

    session.py    ChatSession: inputs -> prompt ids -> generation -> segments -> files
    terminal.py   one turn from the command line, the interactive loop, saved conversations
    command.py    `anygpt chat`'s arguments and the decoding options chat and serve share

The names of session.py are importable from here; they load on first use, so that the command's
parser (command.py) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = ["WANTS", "ChatSession", "Reply", "check_want", "decode_segment", "encode_media", "max_input_seconds",
           "write_segments"]


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("anygpt.chat.session"), name)
    globals()[name] = value  # later look-ups (and monkeypatch's) find it directly
    return value


if TYPE_CHECKING:
    from anygpt.chat.session import (WANTS, ChatSession, Reply, check_want, decode_segment, encode_media,
                                      max_input_seconds, write_segments)
