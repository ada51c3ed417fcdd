"""`anygpt eval codecs`: a bundle's codecs against the world's judges (see anygpt.eval.codecs)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from anygpt.bundles import default_bundle
from anygpt.errors import AnyGPTError

KINDS = ("image", "speech", "music")
# A modality (singular, as codecs and tasks name it) -> the world kind (plural, as anygpt.world names
# its item kinds) that holds its items: the one place eval maps one to the other.
WORLD_KINDS = {"image": "images", "speech": "speech", "music": "music"}


def default_world() -> Path:
    """The evaluation world (n=400, seed 0) under $ANYGPT_HOME (default ~/.cache/anygpt)."""
    home = Path(os.environ.get("ANYGPT_HOME") or Path.home() / ".cache" / "anygpt")
    return home / "worlds" / "n400-seed0"


def ensure_world(world: Path | None, kinds: list[str]) -> Path:
    """`world`, or the default evaluation world, built (about 90 s on 2 cores) when missing;
    `kinds` are modalities (image, speech, music)."""
    from anygpt.world import WorldConfig, build_world, load_manifest  # the world's generator (~0.5 s): not at CLI start
    if world is not None:
        return world
    world = default_world()
    try:
        held = load_manifest(world)["kinds"]
    except (AnyGPTError, OSError, KeyError, ValueError):  # absent or unreadable: build it
        held = {}
    need = sorted({WORLD_KINDS[k] for k in kinds} - set(held))
    if need:
        print(f"building the evaluation world in {world} (n=400, seed 0)", file=sys.stderr)
        build_world(world, WorldConfig(n=400, seed=0, kinds=("images", "speech", "music")), workers=os.cpu_count() or 1)
    return world


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "codecs", help="measure a bundle's codecs with the world's judges on held-out data",
        description="Reconstruct the world's test images, speech and music through the bundle's codecs and "
                    "compare the judges' scores on reconstructions with their scores on the originals; voice "
                    "cloning through SoundStorm; real-time factors on one thread.")
    p.add_argument("--bundle", default=default_bundle(), help=f"bundle name or directory (default {default_bundle()})")
    p.add_argument("--world", type=Path, default=None,
                   help="a world from `anygpt data world` (default: the n=400 seed-0 world, built when missing)")
    p.add_argument("--limit", type=int, default=None, help="at most N test items per kind")
    p.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import torch

    from anygpt.bundles import load_codec_slots
    from anygpt.eval.codecs import evaluate_codecs

    if args.limit is not None and args.limit < 4:
        raise AnyGPTError("--limit must be at least 4 (voice cloning needs two utterances of two speakers)")
    torch.set_num_threads(args.threads)
    slots = load_codec_slots(args.bundle)
    modality = {"image": "image", "speech": "speech", "music": "music"}
    missing = [k for k in args.kinds if modality[k] not in slots]
    if missing:
        raise AnyGPTError(f"bundle {args.bundle} has no codec for {', '.join(missing)}")
    world = ensure_world(args.world, args.kinds)
    print(f"eval codecs: bundle={args.bundle} world={world} limit={args.limit}", file=sys.stderr)
    codecs = {k: slots[modality[k]].get() for k in args.kinds}
    figures = evaluate_codecs(codecs, world, args.limit, tuple(args.kinds))
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:22s} {json.dumps(value)}")
    return 0
