"""Train every judge that needs training, deterministically from a seed, and write the shipped files.

    anygpt eval judges-train --world DIR --out anygpt/eval/judges/weights [--only image ...]

    asr      world.lm + world.dict      bigram LM over grammar sentences hashed to train (asr_lm.py)
    image    image_attributes           CNN on 12,000 fresh scene renders (no world items needed, image.py)
    music    music_family               MLP over music features of the world's music train split (music.py)
    clip     clip_analog                image-text contrastive model on fresh scene renders + captions
    clap     clap_analog                audio-text contrastive model on the world's music train split
                                        (contrastive.py)

The judges themselves (anygpt.eval.judges) are inference only; this package writes their weights.

The world is read only for its train split; validation and test are left for `anygpt eval judges`.
Same seed, same thread count -> same weights (CPU kernels are deterministic for a fixed thread count).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from anygpt.errors import AnyGPTError
from anygpt.train.judges import JUDGES, asr_lm
from anygpt.train.judges.contrastive import music_split_features, train_clap, train_clip
from anygpt.train.judges.image import train_image
from anygpt.train.judges.music import train_family



def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------


def build(args: argparse.Namespace) -> int:
    """`anygpt eval judges-train` (train/judges/command.py holds its arguments)."""
    needs_world = {"music", "clap"} & set(args.only)
    if needs_world and args.world is None:
        raise AnyGPTError(f"--world is needed to train {', '.join(sorted(needs_world))}")
    args.out.mkdir(parents=True, exist_ok=True)
    report, cache = {}, {}
    if needs_world:  # music and clap read the same features: compute them once
        start = time.monotonic()
        cache["train"] = music_split_features(args.world, "train")
        log(f"music features of {len(cache['train'][0])} train clips in {time.monotonic() - start:.0f} s")
    for name in JUDGES:
        if name not in args.only:
            continue
        if name == "asr":
            report[name] = asr_lm.build(args.out, seed=args.seed)
        elif name == "image":
            report[name] = train_image(args.out, args.seed, log=log)
        elif name == "music":
            report[name] = train_family(args.world, args.out, args.seed, log=log, cache=cache)
        elif name == "clip":
            report[name] = train_clip(args.out, args.seed, log=log)
        elif name == "clap":
            report[name] = train_clap(args.world, args.out, args.seed, log=log, cache=cache)
        log(f"{name}: {json.dumps(report[name])}")
    print(json.dumps(report, indent=2))
    return 0
