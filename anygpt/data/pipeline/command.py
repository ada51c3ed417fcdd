"""`anygpt data ...` stages: tokenize, mix, pack, inspect, example. Each prints its resolved
configuration (one JSON line on stdout) before it starts.

    anygpt data tokenize INPUT... --out DIR [--bundle B] [--dataset NAME] [--workers N]
                         [--chunk-size N] [--engine local|ray] [--ray-address ADDR] [--max-seconds M=S]
    anygpt data mix MIXTURE.toml --out DIR [--bundle B] [--budget-tokens N] [--seed N]
    anygpt data pack SAMPLES_DIR --out DIR [--max-len 4500] [--window N]
    anygpt data inspect DIR [--rows N] [--bundle B]
    anygpt data example --out DIR [--pairs N]
    anygpt data from-world --world W --out DIR [--splits train validation] [--kinds ...]
                           [--max-music-seconds S] [--captions first|all] [--spoken-prob P] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from anygpt.bundles import default_bundle
from anygpt.errors import AnyGPTError, run_command


def _print_config(name: str, cfg: dict) -> None:
    print(json.dumps({"command": f"data {name}", **cfg}, default=str), flush=True)


def run_tokenize(args) -> int:
    from anygpt.data.pipeline.tokenize import TokenizeConfig
    from anygpt.data.pipeline.tokenize import run_tokenize as go

    seconds = {}
    for item in args.max_seconds or []:
        k, _, v = item.partition("=")
        try:
            seconds[k] = float(v)
        except ValueError:
            seconds[k] = float("nan")
        if k not in ("speech", "music") or not 0 < seconds[k] < float("inf"):
            raise AnyGPTError(f"--max-seconds expects speech=SECONDS or music=SECONDS (positive), got {item!r}")
    cfg = TokenizeConfig(inputs=args.inputs, out=args.out, bundle=args.bundle, dataset=args.dataset or "",
                         workers=args.workers, chunk_size=args.chunk_size, engine=args.engine,
                         ray_address=args.ray_address, max_seconds=seconds)
    _print_config("tokenize", {k: v for k, v in asdict(cfg).items() if k != "fail_after_chunks"})
    manifest = go(cfg)
    print(json.dumps({"out": args.out, **manifest["counts"]}))
    skipped = manifest["skipped"]
    if skipped:
        print(f"tokenize: skipped {len(skipped)} bad records (all listed under 'skipped' in "
              f"{args.out}/manifest.json):", file=sys.stderr)
        for line in skipped[:10]:
            print(f"  {line}", file=sys.stderr)
    return 0


def run_mix(args) -> int:
    from anygpt.bundles import load_bundle
    from anygpt.data.pipeline.mixture import MixConfig
    from anygpt.data.pipeline.mixture import run_mix as go

    cfg = MixConfig.from_toml(args.mixture)
    if args.budget_tokens is not None:
        cfg.budget_tokens = args.budget_tokens
    if args.seed is not None:
        cfg.seed = args.seed
    bundle = load_bundle(args.bundle)
    cfg.chat_format = args.chat_format or cfg.chat_format or (
        bundle.prompt_format.name if bundle.prompt_format.kind == "chat" else "mmgpt")
    _print_config("mix", {"bundle": args.bundle, "out": args.out, **cfg.to_dict()})
    report = go(cfg, bundle.tokenizer, bundle.layout, args.out)
    print(json.dumps({"out": args.out, "tokens": report["tokens"], "samples": report["samples"]}))
    return 0


def run_pack(args) -> int:
    from anygpt.data.pipeline.packing import run_pack as go

    _print_config("pack", {"samples": args.samples, "out": args.out, "max_len": args.max_len, "window": args.window})
    manifest = go(args.samples, args.out, args.max_len, window=args.window)
    print(json.dumps({"out": args.out, **manifest["stats"]}))
    return 0


def run_inspect(args) -> int:
    from anygpt.data.pipeline import shards

    manifest = shards.read_manifest(args.dir)
    summary = {k: v for k, v in manifest.items() if k not in ("shards", "layout", "mixture")}
    summary["shard_files"] = len(manifest.get("shards", []))
    print(json.dumps(summary, default=str))
    if args.rows:
        rows = shards.read_table(args.dir).slice(0, args.rows).to_pylist()
        tok = None
        if manifest["stage"] in ("samples", "packed") and args.bundle:
            from anygpt.bundles import load_bundle

            tok = load_bundle(args.bundle).tokenizer
        for r in rows:
            if tok is not None:
                print(json.dumps({k: v for k, v in r.items() if k not in ("input_ids", "roles")}))
                print("  " + repr(tok.decode(r["input_ids"])[:300]))
            else:
                print(json.dumps({k: (v if not isinstance(v, list) or len(v) < 12 else f"[{len(v)} items]")
                                  for k, v in r.items()}, default=str))
    return 0


def run_example(args) -> int:
    from anygpt.data.pipeline.example import write_example_dataset

    _print_config("example", {"out": args.out, "pairs": args.pairs})
    files = write_example_dataset(args.out, pairs=args.pairs)
    print(json.dumps({k: str(v) for k, v in files.items()}))
    return 0


def run_from_world(args) -> int:
    from anygpt.data.pipeline.from_world import FromWorldConfig
    from anygpt.data.pipeline.from_world import run_from_world as go

    cfg = FromWorldConfig(world=args.world, out=args.out, splits=args.splits, kinds=args.kinds or [],
                          max_music_seconds=args.max_music_seconds or 0.0, captions=args.captions,
                          spoken_prob=args.spoken_prob, seed=args.seed)
    _print_config("from-world", asdict(cfg))
    summary = go(cfg)
    print(json.dumps({"out": args.out, "counts": summary["counts"]}))
    return 0


def register(data_subparsers) -> None:
    """Add the pipeline stages to an `anygpt data` subparser group."""
    p = data_subparsers.add_parser("tokenize", help="raw JSONL/JSON records -> unit shards (media encoded)")
    p.add_argument("inputs", nargs="+", help=".jsonl/.json files or folders")
    p.add_argument("--out", required=True)
    p.add_argument("--bundle", default=default_bundle(), help="bundle whose codecs encode the media")
    p.add_argument("--dataset", help="dataset name stored in the rows (default: the out folder name)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--chunk-size", type=int, default=256, help="records per shard (the unit of resumption)")
    p.add_argument("--engine", choices=["local", "ray"], default="local")
    p.add_argument("--ray-address", default=None, help="a running Ray cluster (default: start a local one)")
    p.add_argument("--max-seconds", action="append", metavar="MODALITY=SECONDS", help="crop audio, e.g. music=5")
    p.set_defaults(func=run_tokenize)

    p = data_subparsers.add_parser("mix", help="unit shards -> a token-budget mixture of samples")
    p.add_argument("mixture", help="mixture .toml")
    p.add_argument("--out", required=True)
    p.add_argument("--bundle", default=default_bundle(), help="bundle whose tokenizer and layout make the ids")
    p.add_argument("--budget-tokens", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--chat-format", default=None, help="chat format for chats (default: the mixture's, else the bundle's)")
    p.set_defaults(func=run_mix)

    p = data_subparsers.add_parser("pack", help="samples -> packed rows of <= max-len tokens")
    p.add_argument("samples", help="a sample folder, e.g. MIX/train")
    p.add_argument("--out", required=True)
    p.add_argument("--max-len", type=int, default=4500)
    p.add_argument("--window", type=int, default=8192, help="samples packed together at once")
    p.set_defaults(func=run_pack)

    p = data_subparsers.add_parser("inspect", help="print a shard folder's manifest and first rows")
    p.add_argument("dir")
    p.add_argument("--rows", type=int, default=0)
    p.add_argument("--bundle", default=default_bundle(), help="decode ids with this bundle's tokenizer ('' not to)")
    p.set_defaults(func=run_inspect)

    p = data_subparsers.add_parser("example", help="write a tiny raw dataset in the input format")
    p.add_argument("--out", required=True)
    p.add_argument("--pairs", type=int, default=24)
    p.set_defaults(func=run_example)

    p = data_subparsers.add_parser("from-world", help="an offline world -> raw records (pairs, chats) and mixtures")
    p.add_argument("--world", required=True, help="a folder made by `anygpt data world`")
    p.add_argument("--out", required=True)
    p.add_argument("--splits", nargs="+", default=["train", "validation"])
    p.add_argument("--kinds", nargs="+", choices=["images", "speech", "music", "conversations"],
                   help="world kinds to export (default: all it holds)")
    p.add_argument("--max-music-seconds", type=float, default=None, help="crop music files (default: whole clips)")
    p.add_argument("--captions", choices=["first", "all"], default="first",
                   help="pair records per image/music item: its first caption, or one per caption")
    p.add_argument("--spoken-prob", type=float, default=0.5,
                   help="probability that a user turn is given as its spoken version (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="seeds the spoken/text choice per conversation")
    p.set_defaults(func=run_from_world)


def main(argv: list[str] | None = None) -> int:
    """`python -m anygpt.data.pipeline.command ...`: the same as `anygpt data ...`."""
    parser = argparse.ArgumentParser(prog="anygpt data")
    register(parser.add_subparsers(dest="data_command", required=True))
    args = parser.parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
