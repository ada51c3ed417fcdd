"""`anygpt chat`: talk to a bundle, one turn with inputs or interactively without; and the decoding
options that `chat` and `serve` share.

    anygpt chat  [--bundle B] [--text T] [--image F]... [--speech F]... [--music F]... [--voice WAV]
                 [--want text|image|speech|music] [--task T] [--out DIR] [--json]
                 [--preset P] [--seed N] [--max-new-tokens N] [--set KEY=VALUE]...
"""

from __future__ import annotations

import argparse

from anygpt.bundles.command import add_bundle_args
from anygpt.errors import AnyGPTError
from anygpt.generate.config import check_settings, parse_settings, preset

TASKS = ("caption", "t2i", "asr", "tts", "music_caption", "t2m", "voice_chat")  # prompts/tasks.toml


def add_decoding_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None, help="decoding preset: paper, release, greedy (default: the bundle's)")
    p.add_argument("--seed", type=int, default=None, help="make sampling reproducible")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a decoding value, e.g. music_top_p=0.9, text_num_beams=1, constrained=false")


def decoding_changes(args) -> dict:
    """The decoding changes asked on the command line, typed and range-checked before anything loads."""
    changes = parse_settings(args.set)
    for key in ("seed", "max_new_tokens"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key)
    check_settings(changes)
    return changes


def resolve_decoding(args, bundle, changes: dict | None = None):
    """The bundle's decoding (or --preset's, with the bundle's span limits) with the changes applied."""
    changes = decoding_changes(args) if changes is None else changes
    base = preset(args.preset) if args.preset else bundle.decoding
    if args.preset:  # keep the bundle's span limits; a preset only changes how to sample
        base = base.override(max_seconds=bundle.decoding.max_seconds, max_new_tokens=bundle.decoding.max_new_tokens)
    try:
        return base.override(**changes)
    except AnyGPTError as e:
        raise AnyGPTError(f"bad decoding setting: {e}") from None


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
