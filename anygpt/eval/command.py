"""`anygpt eval codecs`: codecs measured on the world's held-out items; one command, two sources.

    anygpt eval codecs [--bundle B] [--kinds image speech music] [--limit N] [--world W] [--json]
        a bundle's codecs through the world's judges on its test split (anygpt.eval.codecs):
        {<gate figure>: value, ..., "rtf": {...}, "gates_met": {<gate figure>: bool | null}, "details": {...}}
    anygpt eval codecs --codec EXPORT --kind image|scene|speech|music [--split validation] [--n 32]
                       [--out DIR] [--world W] [--json]
        one trained small-codec export (`anygpt codecs train`), no judges: how well it reconstructs
        (anygpt.train.codecs.recipes.evaluate)
        {"kind", "codec", "split", "items", "seconds", "reconstruction": {psnr | snr_db, mel_l1, codes used,
         speech: layer-1 phone accuracy, SoundStorm accuracy}}
        --out writes that object as eval_<kind>.json, and sample reconstructions beside it.

To put one export through the judges, ship it beside a bundle's other codecs
(`anygpt codecs ship --music EXPORT --base B --out D`) and measure `--bundle D --kinds music`.
Without --world both use the evaluation world (n=400, seed 0), built when missing. What is measured
goes to stderr first; the figures to stdout: one JSON object with --json, else a line per key.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from anygpt.bundles import default_bundle
from anygpt.errors import AnyGPTError

MODALITIES = ("image", "speech", "music")  # what --kinds chooses from: the modalities with a codec
EXPORT_KINDS = ("image", "scene", "speech", "music")  # what --kind chooses from: the small-codec recipes


def default_world() -> Path:
    """The evaluation world (n=400, seed 0) under $ANYGPT_HOME (default ~/.cache/anygpt)."""
    home = Path(os.environ.get("ANYGPT_HOME") or Path.home() / ".cache" / "anygpt")
    return home / "worlds" / "n400-seed0"


def ensure_world(world: Path | None, kinds: list[str]) -> Path:
    """`world`, or the default evaluation world, built (about 90 s on 2 cores) when missing;
    `kinds` are modalities (image, speech, music)."""
    # the world's generator (~0.5 s): not at CLI start
    from anygpt.world import WorldConfig, build_world, kind_of, load_manifest
    if world is not None:
        return world
    world = default_world()
    try:
        held = load_manifest(world)["kinds"]
    except (AnyGPTError, OSError, KeyError, ValueError):  # absent or unreadable: build it
        held = {}
    need = sorted({kind_of(k) for k in kinds} - set(held))
    if need:
        print(f"building the evaluation world in {world} (n=400, seed 0)", file=sys.stderr)
        config = WorldConfig(n=400, seed=0, kinds=tuple(kind_of(m) for m in MODALITIES))
        build_world(world, config, workers=os.cpu_count() or 1)
    return world


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "codecs", help="measure codecs on held-out data: a bundle's with the world's judges, or one trained export",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="--bundle B: reconstruct the world's test images, speech and music through the bundle's\n"
                    "codecs and compare the judges' scores on reconstructions with their scores on the\n"
                    "originals; voice cloning through SoundStorm; real-time factors on one thread.\n"
                    "--codec EXPORT --kind K: one trained small-codec export, without judges: its\n"
                    "reconstruction figures (PSNR or SNR, mel distance, codes used; speech: layer-1 phone\n"
                    "accuracy, SoundStorm accuracy) under \"reconstruction\".",
        epilog="Figures: --bundle: the gate figures, \"rtf\", \"gates_met\", \"details\"; --codec: \"kind\",\n"
               "\"codec\", \"split\", \"items\", \"seconds\", \"reconstruction\". To put one export\n"
               "through the judges: anygpt codecs ship --music EXPORT --base B --out D, then --bundle D.")
    p.add_argument("--world", type=Path, default=None,
                   help="a world from `anygpt data world` (default: the n=400 seed-0 world, built when missing)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    b = p.add_argument_group("a bundle's codecs, through the judges (the world's test split)")
    b.add_argument("--bundle", default=None, help=f"bundle name or directory (default {default_bundle()})")
    b.add_argument("--limit", type=int, default=None, help="at most N test items per kind")
    b.add_argument("--kinds", nargs="+", choices=MODALITIES, default=None, help="default: all three")
    e = p.add_argument_group("one trained export, its reconstructions")
    e.add_argument("--codec", metavar="EXPORT",
                   help="an export directory of `anygpt codecs train` (codec.json + weights.safetensors)")
    e.add_argument("--kind", choices=EXPORT_KINDS, help="the recipe that trained it (required with --codec)")
    e.add_argument("--split", default=None, help="the world's split to read (default validation)")
    e.add_argument("--n", type=int, default=None, help="items to measure (default 32)")
    e.add_argument("--out", help="write eval_<kind>.json and sample reconstructions here")
    p.set_defaults(func=run)
    return p


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> list[str]:
    return [f"--{name}" for name in names if getattr(args, name) is not None]


def run(args: argparse.Namespace) -> int:
    import torch

    if args.codec is None:
        if wrong := _given(args, ("kind", "split", "n", "out")):
            raise AnyGPTError(f"{', '.join(wrong)}: only with --codec EXPORT (one trained export)")
        torch.set_num_threads(args.threads)
        figures = _bundle_figures(args)
    else:
        if wrong := _given(args, ("bundle", "kinds", "limit")):
            raise AnyGPTError(f"{', '.join(wrong)}: only for a bundle's codecs, not with --codec")
        if args.kind is None:
            raise AnyGPTError(f"--codec {args.codec}: give --kind {'|'.join(EXPORT_KINDS)}, the recipe that made it")
        torch.set_num_threads(args.threads)
        figures = _export_figures(args)
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:22s} {json.dumps(value)}")
    return 0


def _bundle_figures(args: argparse.Namespace) -> dict:
    from anygpt.bundles import default_bundle, load_codec_slots
    from anygpt.eval.codecs import evaluate_codecs

    bundle = args.bundle or default_bundle()
    kinds = args.kinds or list(MODALITIES)
    if args.limit is not None and args.limit < 4:
        raise AnyGPTError("--limit must be at least 4 (voice cloning needs two utterances of two speakers)")
    slots = load_codec_slots(bundle)
    missing = [k for k in kinds if k not in slots]
    if missing:
        raise AnyGPTError(f"bundle {bundle} has no codec for {', '.join(missing)}")
    world = ensure_world(args.world, kinds)
    print(f"eval codecs: bundle={bundle} world={world} limit={args.limit}", file=sys.stderr)
    return evaluate_codecs({k: slots[k].get() for k in kinds}, world, args.limit, tuple(kinds))


def _export_figures(args: argparse.Namespace) -> dict:
    from anygpt.train.codecs.config import MODALITY
    from anygpt.train.codecs.export import CODEC_JSON
    from anygpt.train.codecs.recipes import evaluate  # a small codec's internals: the training side reads them

    if not (Path(args.codec) / CODEC_JSON).is_file():
        raise AnyGPTError(f"{args.codec}: not a codec export (no {CODEC_JSON}; see `anygpt codecs train`)")
    world = ensure_world(args.world, [MODALITY[args.kind]])
    split, n = args.split or "validation", 32 if args.n is None else args.n
    print(f"eval codecs: codec={args.codec} kind={args.kind} world={world} split={split} n={n}", file=sys.stderr)
    return evaluate(args.kind, args.codec, world, split=split, n=n, out=args.out)
