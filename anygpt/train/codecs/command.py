"""`anygpt codecs`: train, ship and probe the small codecs; each command prints its resolved config first.

    anygpt codecs train image|speech|music --world DIR --out DIR [--steps N] [--batch N] [--lr X]
                  [--save-every N] [--seed S] [--max-items N] [--vq-warmup N] [--no-resume] [--threads N]
                  [--export-dtype float16|float32] [--set KEY=VALUE]...   (KEY: a codec constructor argument)
    anygpt codecs train soundstorm --codec OUT_SPEECH/export --world DIR --out DIR [same flags]
    anygpt codecs train voice --codec OUT_SPEECH/export --world DIR --out DIR [same flags]
    anygpt codecs train durations --codec OUT_VOICE/export --world DIR --out DIR [same flags]
    anygpt codecs ship [--image DIR] [--speech DIR] [--music DIR] [--base BUNDLE] --out BUNDLE
    anygpt codecs probe music --codec DIR --world DIR      (attributes read from bags of layer-1 codes)

A full run: train speech, then soundstorm from its export (or, for phone units, `--set units=phones`,
the voice renderer); OUT/export of that second run is the complete small-speech codec. A third,
durations, makes a phone-unit codec write one code per phone (runs "merged") and learns how long each lasts.
`anygpt eval codecs --codec OUT/export --kind KIND` measures an export's reconstructions
(anygpt.eval.command); shipped into a bundle, the judges measure it (`anygpt eval codecs --bundle`).
"""

from __future__ import annotations

import json
from typing import Any

from anygpt.settings import parse_assignments


def _sets(pairs: list[str]) -> dict:
    """--set KEY=VALUE as codec constructor arguments: JSON literals, else the text as typed."""
    return parse_assignments(pairs, lambda key: Any, what="codec argument")


def register(subparsers) -> None:
    p = subparsers.add_parser("codecs", help="train, ship and probe the small image, speech and music codecs")
    sub = p.add_subparsers(dest="codecs_command", required=True)
    t = sub.add_parser("train", help="train one small codec on a world (checkpoints, resume, loss plot, export)")
    t.add_argument("kind", choices=["image", "scene", "speech", "music", "soundstorm", "voice", "durations"])
    t.add_argument("--world", required=True, help="a world directory (anygpt data world)")
    t.add_argument("--out", required=True, help="run directory: checkpoint, metrics, loss.png, export/")
    t.add_argument("--codec", help="soundstorm, voice, durations: the trained small-speech export directory")
    t.add_argument("--steps", type=int)
    t.add_argument("--batch", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--warmup", type=int)
    t.add_argument("--save-every", type=int)
    t.add_argument("--seed", type=int)
    t.add_argument("--split")
    t.add_argument("--max-items", type=int)
    t.add_argument("--crop-seconds", type=float)
    t.add_argument("--content-weight", type=float, help="speech: weight of layer 1's phone loss")
    t.add_argument("--mel-weight", type=float, help="speech, music: weight of the log mel-band power loss")
    t.add_argument("--max-frames", type=int)
    t.add_argument("--vq-warmup", type=int, help="speech, music: steps without quantization at the start")
    t.add_argument("--export-dtype", choices=["float16", "float32", "bfloat16"])
    t.add_argument("--init-from", help="speech: a trained export whose layer 1 is kept (frozen), the rest retrains; "
                                       "music: one whose codes are kept, its decoder trains")
    t.add_argument("--stop-after", type=int, help="leave after N steps (the run resumes later)")
    t.add_argument("--no-resume", action="store_true", help="start over even if OUT has a checkpoint")
    t.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: small convs gain nothing from a 2nd thread on busy cores)")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="codec constructor argument")
    t.set_defaults(func=_train)
    s = sub.add_parser("ship", help="copy trained exports into a bundle directory's codecs/ (codecs.json)")
    s.add_argument("--image", help="small-image export directory")
    s.add_argument("--speech", help="small-speech export directory (of the soundstorm run)")
    s.add_argument("--music", help="small-music export directory")
    s.add_argument("--base", help="a bundle directory whose shipped codecs fill the kinds not given "
                                  "(required unless all three are given)")
    s.add_argument("--out", required=True, help="bundle directory (its codecs/ is replaced)")
    s.set_defaults(func=_ship)
    r = sub.add_parser("probe", help="how well a linear probe reads music attributes from bags of layer-1 codes")
    r.add_argument("kind", choices=["music"])
    r.add_argument("--codec", required=True, help="an export directory (codec.json + weights.safetensors)")
    r.add_argument("--world", required=True, help="fit on its train clips, score on its validation and test clips")
    r.add_argument("--threads", type=int, default=1)
    r.set_defaults(func=_probe)


def _train(args) -> int:
    import torch

    from anygpt.train.codecs import recipes as train

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {k: getattr(args, k) for k in ("steps", "batch", "lr", "warmup", "save_every", "seed", "split",
                                               "max_items", "crop_seconds", "content_weight", "mel_weight",
                                               "max_frames", "vq_warmup", "export_dtype", "init_from")}
    if args.kind in ("soundstorm", "voice", "durations"):
        if not args.codec:
            raise SystemExit(f"anygpt codecs train {args.kind}: --codec OUT_SPEECH/export is required")
        if args.set:
            raise SystemExit(f"--set does not apply to {args.kind}: its shape comes from the speech codec's config")
        overrides["codec"] = args.codec
    else:
        overrides["codec"] = _sets(args.set)
    cfg = train.default_config(args.kind, args.out, **overrides)
    print(json.dumps({"world": args.world, **cfg.to_dict()}, indent=2, sort_keys=True), flush=True)
    train.RECIPES[args.kind](args.world, cfg, stop_after=args.stop_after, progress=not args.no_progress,
                             resume=not args.no_resume)
    print(f"wrote {cfg.out}")
    return 0


def _probe(args) -> int:
    import torch

    from anygpt.train.codecs.export import load_codec_dir
    from anygpt.train.codecs.probe import layer1_probe

    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps(vars(args) | {"func": None}, indent=2, default=str), flush=True)
    print(json.dumps(layer1_probe(load_codec_dir(args.codec), args.world), indent=2))
    return 0


def _ship(args) -> int:
    from anygpt.train.codecs.export import ship_codecs

    exports = {k: getattr(args, k) for k in ("image", "speech", "music") if getattr(args, k)}
    if len(exports) < 3 and not args.base:
        raise SystemExit("anygpt codecs ship: give --image, --speech and --music, or --base BUNDLE for the rest")
    out = ship_codecs(exports, args.out, base=args.base)
    print(f"wrote {out}")
    return 0
