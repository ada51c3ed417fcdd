"""`anygpt chat`: talk to a bundle, one turn with inputs or interactively without (the decoding options,
shared with `serve`, are in options.py).

    anygpt chat  [--bundle B] [--text T] [--image F]... [--speech F]... [--music F]... [--voice WAV]
                 [--want text|image|speech|music] [--task T] [--out DIR] [--json]
                 [--preset P] [--seed N] [--max-new-tokens N] [--set KEY=VALUE]...
"""

from __future__ import annotations

import argparse

from anygpt.bundles.command import add_bundle_args
from anygpt.chat.options import add_decoding_args

TASKS = ("caption", "t2i", "asr", "tts", "music_caption", "t2m", "voice_chat")  # prompts/tasks.toml


def register(subparsers) -> None:
    p = subparsers.add_parser("chat", help="talk to a bundle: one turn with inputs, interactive without")
    add_bundle_args(p)
    add_decoding_args(p)
    p.add_argument("--text", help="the message text")
    p.add_argument("--image", action="append", help="an image file (repeatable)")
    p.add_argument("--speech", action="append", help="a speech recording (repeatable)")
    p.add_argument("--music", action="append", help="a music clip (repeatable)")
    p.add_argument("--voice", help="a recording whose voice spoken replies should copy")
    p.add_argument("--voice-seconds", type=float, default=3.0, help="voice prompt length used (default 3 s)")
    p.add_argument("--want", choices=["text", "image", "speech", "music"], help="require this kind of reply")
    p.add_argument("--task", choices=TASKS, help="wrap the input in the released chat model's prompt for this task")
    p.add_argument("--out", default="anygpt-out", help="folder for generated PNG/WAV files")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from anygpt.chat.terminal import chat

    return chat(args)
