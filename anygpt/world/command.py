"""`anygpt data world`: the CLI face of build.py. The main CLI calls `register(subparsers)`."""

import argparse
import os
import sys
import time
from pathlib import Path

from anygpt.errors import AnyGPTError
from anygpt.world.config import KINDS, WorldConfig

DEFAULT_N = WorldConfig.n


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "world", help="generate the procedural multimodal world (images, speech, music, conversations)",
        description="Generate images, speech, music clips and AnyInstruct-style conversations, "
                    "deterministically from --seed, as sharded Parquet with a manifest.")
    parser.add_argument("--out", type=Path, required=True, help="output folder (new, empty, or an earlier world)")
    parser.add_argument("--n", type=int, default=DEFAULT_N, help=f"items per kind (default {DEFAULT_N})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: all cores); the output does not depend on it")
    parser.add_argument("--clip-seconds", type=float, default=WorldConfig.clip_seconds,
                        help="length of music clips in seconds (default 5.0)")
    parser.add_argument("--image-size", type=int, default=WorldConfig.image_size,
                        help="image side in pixels (default 64)")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS),
                        help="which kinds to generate (default: all)")
    parser.add_argument("--soundfont", default=None, help="a General MIDI .sf2 (default: the first one installed)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from anygpt.world.build import build

    if args.n < 1 or args.workers < 1 or args.clip_seconds <= 0 or args.image_size < 64:
        raise AnyGPTError("--n and --workers must be at least 1, --clip-seconds positive, --image-size >= 64")
    kinds = tuple(kind for kind in KINDS if kind in args.kinds)  # a fixed order, whatever was typed
    config = WorldConfig(seed=args.seed, n=args.n, clip_seconds=args.clip_seconds, image_size=args.image_size,
                         soundfont=args.soundfont, kinds=kinds)
    print(f"world: {config} workers={args.workers} out={args.out}", file=sys.stderr)
    start = time.monotonic()
    manifest = build(args.out, config, workers=args.workers, progress=not args.no_progress)
    for kind, counts in manifest["counts"].items():
        print(f"{kind:14s} " + "  ".join(f"{split} {count}" for split, count in counts.items()))
    print(f"wrote {args.out} in {time.monotonic() - start:.0f} s", file=sys.stderr)
    return 0
