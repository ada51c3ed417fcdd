"""`anygpt eval judges` (print every judge's calibration) and `anygpt eval judges-train` (rebuild
the shipped weights). The main CLI calls `register(eval_subparsers)` and `register_train(eval_subparsers)`.

    anygpt eval judges --world out/world [--json] [--limit N] [--kinds images speech music]
    anygpt eval judges-train --world out/judge-train-world --out anygpt/eval/judges/weights [--only ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from anygpt.errors import AnyGPTError
from anygpt.eval.judges.weights import weights_dir
from anygpt.train.judges import JUDGES, KINDS


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "judges", help="print each judge's calibration on a world's test split",
        description="Run every judge (image attributes, caption parser and CIDEr-D, CLIP analog, ASR WER, "
                    "speaker similarity, music attributes, CLAP analog) on the ground-truth test split of a "
                    "world and print the figures each judge reaches there.")
    parser.add_argument("--world", type=Path, required=True, help="a world from `anygpt data world`")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--limit", type=int, default=None, help="at most N test items per kind")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="which judges (default all)")
    parser.add_argument("--no-generic-lm", action="store_true",
                        help="skip the WER of pocketsphinx's own LM (a comparison figure, about 50 s)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from anygpt.train.judges.calibrate import calibrate
    from anygpt.world import load_manifest

    if args.limit is not None and args.limit < 2:
        raise AnyGPTError("--limit must be at least 2 (similarities need pairs)")
    manifest = load_manifest(args.world)
    missing = [kind for kind in args.kinds if kind not in manifest["kinds"]]
    if missing:
        held = [k for k in KINDS if k in manifest["kinds"]]
        raise AnyGPTError(f"{args.world} has no {', '.join(missing)} (it holds {', '.join(manifest['kinds'])}): "
                          f"pass --kinds {' '.join(held) or '...'} or build them with `anygpt data world --kinds`")
    print(f"judges: world={args.world} kinds={' '.join(args.kinds)} limit={args.limit}", file=sys.stderr)
    figures = calibrate(args.world, args.limit, tuple(args.kinds), generic_lm=not args.no_generic_lm)
    if args.json:
        print(json.dumps(figures, sort_keys=False))
    else:
        for key, value in figures.items():
            if isinstance(value, dict):
                value = "  ".join(f"{k} {v}" for k, v in value.items())
            print(f"{key:34s} {value}")
    return 0


def register_train(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "judges-train", help="rebuild the judges' shipped weights from a seed",
        description="Train every judge that needs weights, deterministically from a seed, and write the shipped "
                    "files (see anygpt/train/judges/build.py for what each judge trains on).")
    parser.add_argument("--world", type=Path, default=None,
                        help="a world from `anygpt data world` (music and clap read its train split)")
    parser.add_argument("--out", type=Path, default=weights_dir(), help="where to write (default: the shipped folder)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--only", nargs="+", choices=JUDGES, default=list(JUDGES), help="judges to train (default all)")
    parser.set_defaults(func=run_train)
    return parser


def run_train(args: argparse.Namespace) -> int:
    from anygpt.train.judges.build import build

    return build(args)
