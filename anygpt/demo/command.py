"""`anygpt demo [--bundle B] [--out DIR]`: run a fixed set of any-to-any turns and write a page of results."""

from __future__ import annotations

from pathlib import Path

from anygpt.bundles.command import add_bundle_args


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="run a fixed set of any-to-any turns and write a page of results")
    add_bundle_args(p)
    p.add_argument("--out", default="demo-out")
    p.set_defaults(func=run)


def run(args) -> int:
    from anygpt.demo.page import run_demo

    return run_demo(args.bundle, Path(args.out))
