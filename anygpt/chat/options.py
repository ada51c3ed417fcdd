"""The decoding options of the commands that generate (`anygpt chat`, `anygpt serve`): --preset, --seed,
--max-new-tokens and --set KEY=VALUE, checked before anything loads, and applied to a bundle's decoding."""

from __future__ import annotations

import argparse

from anygpt.errors import AnyGPTError
from anygpt.generate.config import check_settings, parse_settings, preset


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
