"""`anygpt info` and `anygpt bundle ...`: describe, save, import, start and verify bundles.

    anygpt info  [--bundle B] [--device D] [--dtype T] [--json]
    anygpt bundle save NAME --out DIR
    anygpt bundle import [--official DIR | --llm DIR ...] --out DIR
    anygpt bundle init-tiny --world W --out DIR [--seed N]
    anygpt bundle verify DIR

Also the options every command that loads a bundle shares (`add_bundle_args`, `load`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from anygpt.bundles import default_bundle
from anygpt.errors import AnyGPTError


def add_bundle_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", default=default_bundle(),
                   help=f"built-in name or bundle directory (default: {default_bundle()})")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default=None, help="LLM precision (default: as saved)")


def load(args):
    """The bundle of --bundle, --device and --dtype."""
    from anygpt.bundles import load_bundle

    return load_bundle(args.bundle, device=args.device, dtype=args.dtype)


def register_info(subparsers) -> None:
    p = subparsers.add_parser("info", help="describe a bundle: layout, sizes, codecs, decoding")
    add_bundle_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_info)


def register(subparsers) -> None:
    """`anygpt bundle save|import|init-tiny|verify`."""
    p = subparsers.add_parser("bundle", help="save or verify bundles")
    bsub = p.add_subparsers(dest="bundle_command", required=True)
    q = bsub.add_parser("save", help="write a built-in bundle to a directory")
    q.add_argument("bundle", help="built-in bundle name, e.g. debug")
    q.add_argument("--out", required=True)
    q.set_defaults(func=run_save, device="cpu", dtype=None)
    q = bsub.add_parser("import", help="make a bundle of the released AnyGPT models from local folders")
    q.add_argument("--official", help="a folder laid out like the release's models/ (anygpt/chat, speechtokenizer, ...)")
    q.add_argument("--model", choices=["chat", "base"], default="chat", help="which LLM under anygpt/ (default chat)")
    q.add_argument("--llm", help="the LLM folder (overrides --official)")
    q.add_argument("--seed-tokenizer", help="seed_quantizer.pt (or its folder)")
    q.add_argument("--speechtokenizer", help="folder with config.json and ckpt.dev")
    q.add_argument("--soundstorm", help="speechtokenizer_soundstorm_mls.pt")
    q.add_argument("--encodec", help="facebook/encodec_32khz folder")
    q.add_argument("--unclip", help="stabilityai/stable-diffusion-2-1-unclip folder")
    q.add_argument("--format", help="prompt format (default: mmgpt for chat, base for base)")
    q.add_argument("--preset", default="paper", help="decoding defaults (paper, release, greedy)")
    q.add_argument("--codec-config", action="append", default=[], metavar="MODALITY=JSON",
                   help="extra codec settings, e.g. speech='{\"steps\": 6}'")
    q.add_argument("--out", required=True)
    q.set_defaults(func=run_import)
    q = bsub.add_parser("init-tiny", help="write the untrained tiny bundle (BPE on a world's text, random Llama, "
                                          "the shipped small codecs): what `anygpt train` starts from")
    q.add_argument("--world", required=True, help="a world from `anygpt data world` (its training text)")
    q.add_argument("--out", required=True)
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=run_init_tiny)
    q = bsub.add_parser("verify", help="check a bundle directory against its manifest hashes")
    q.add_argument("path")
    q.set_defaults(func=run_verify)


def run_info(args) -> int:
    from anygpt.bundles.info import bundle_info, print_info

    info = bundle_info(load(args))
    if args.json:
        print(json.dumps(info, ensure_ascii=False))
    else:
        print_info(info)
    return 0


def run_save(args) -> int:
    from anygpt.bundles import save_bundle

    path = save_bundle(load(args), args.out)
    print(f"wrote bundle {args.bundle!r} to {path}")
    return 0


def run_init_tiny(args) -> int:
    from anygpt.bundles.tiny_init import init_bundle

    bundle = init_bundle(args.world, args.out, seed=args.seed)
    params = sum(p.numel() for p in bundle.model.parameters())
    print(f"wrote the untrained tiny bundle to {args.out}: {len(bundle.tokenizer)} tokens "
          f"({bundle.layout.base_vocab_size} text), {params / 1e6:.2f} M parameters")
    return 0


def run_import(args) -> int:
    from anygpt.bundles.official import find_paths, import_official

    overrides = {}
    for item in args.codec_config:
        modality, sep, text = item.partition("=")
        try:
            overrides[modality] = json.loads(text) if sep else None
        except json.JSONDecodeError as e:
            raise AnyGPTError(f"--codec-config {item!r}: not JSON ({e})") from None
        if not isinstance(overrides[modality], dict):
            raise AnyGPTError(f"--codec-config expects MODALITY={{...}}, got {item!r}")
    paths = find_paths(Path(args.official) if args.official else None, model=args.model, llm=args.llm,
                       seed=args.seed_tokenizer, speechtokenizer=args.speechtokenizer, soundstorm=args.soundstorm,
                       encodec=args.encodec, unclip=args.unclip)
    out, notes = import_official(paths, Path(args.out), prompt_format=args.format, decoding=args.preset,
                                 codec_overrides=overrides)
    for note in notes:
        print(f"  {note}")
    print(f"wrote bundle manifest {out / 'manifest.json'}; run: anygpt chat --bundle {out}")
    return 0


def run_verify(args) -> int:
    from anygpt.bundles import MANIFEST, read_manifest, verify_files

    path = Path(args.path)
    if not (path / MANIFEST).is_file():
        raise AnyGPTError(f"{path}: no {MANIFEST}")
    manifest = read_manifest(path)
    hashed = verify_files(path, manifest)
    external = len(manifest.get("external_files") or {})
    print(f"{path}: {hashed} files match their hashes" + (f", {external} external files their sizes" if external else ""))
    return 0
