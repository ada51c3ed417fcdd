"""The `anygpt` command: one subcommand per stage.

    anygpt chat  [--bundle B] [--text T] [--image F]... [--speech F]... [--music F]... [--voice WAV]
                 [--want text|image|speech|music] [--out DIR] [--json]
    anygpt info  [--bundle B] [--json]
    anygpt demo  [--out DIR]
    anygpt bundle save NAME --out DIR | anygpt bundle verify DIR
    anygpt data ...  anygpt train ...  anygpt codecs ...  anygpt eval ...   (registered by their stages)

Errors the user can fix print one line on stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

from anygpt.errors import AnyGPTError
from anygpt.serve import command as serve_command


def _quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever fetched: fail fast instead of retrying
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # no "Loading weights" / "Writing model shards" bars around our output

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"anygpt: warning: {message}", file=sys.stderr)

    warnings.showwarning = show


# --- shared options ------------------------------------------------------------------------------

def _bundle_args(p: argparse.ArgumentParser) -> None:
    from anygpt.bundles import default_bundle

    p.add_argument("--bundle", default=default_bundle(),
                   help=f"built-in name or bundle directory (default: {default_bundle()})")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default=None, help="LLM precision (default: as saved)")


def _decoding_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None, help="decoding preset: paper, release, greedy (default: the bundle's)")
    p.add_argument("--seed", type=int, default=None, help="make sampling reproducible")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a decoding value, e.g. music_top_p=0.9, text_num_beams=1, constrained=false")


def _settings(args) -> dict:
    """The decoding changes asked on the command line, typed and range-checked before anything loads."""
    from anygpt.generate.config import check_settings, parse_settings

    changes = parse_settings(args.set)
    for key in ("seed", "max_new_tokens"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key)
    check_settings(changes)
    return changes


def _decoding(args, bundle, changes: dict | None = None):
    from anygpt.generate.config import preset

    changes = _settings(args) if changes is None else changes
    base = preset(args.preset) if args.preset else bundle.decoding
    if args.preset:  # keep the bundle's span limits; a preset only changes how to sample
        base = base.override(max_seconds=bundle.decoding.max_seconds, max_new_tokens=bundle.decoding.max_new_tokens)
    try:
        return base.override(**changes)
    except AnyGPTError as e:
        raise AnyGPTError(f"bad decoding setting: {e}") from None


def _load(args):
    from anygpt.bundles import load_bundle

    return load_bundle(args.bundle, device=args.device, dtype=args.dtype)


# --- serve ---------------------------------------------------------------------------------------

def cmd_serve(args) -> int:
    serve_command.check(args)
    changes = _settings(args)
    sock = serve_command.listen(args)
    bundle = _load(args)
    return serve_command.serve(bundle, _decoding(args, bundle, changes), args, sock)


# --- chat ----------------------------------------------------------------------------------------

def _chat_content(bundle, args) -> list:
    from anygpt.chat import encode_media

    if args.task:  # the task's inputs are checked before any file is read
        _task_inputs(args, [m for m in ("image", "speech", "music") for _ in getattr(args, m) or []])
    pieces: list = []
    for modality in ("image", "speech", "music"):
        for path in getattr(args, modality) or []:
            pieces += [encode_media(bundle, modality, path, announce=True), " "]
    if args.task:
        return _task_content(args, pieces[::2])
    if args.text:
        pieces.append(args.text)
    elif pieces:
        pieces.pop()  # no trailing space after the last media
    return pieces


def _task_inputs(args, modalities: list[str]):
    """The task named by --task, or AnyGPTError unless its one input is given (`modalities`: of the media)."""
    from anygpt.prompts import load_tasks

    task = load_tasks()[args.task]
    given = bool(args.text) if task.input == "text" else task.input in modalities
    if not given or (task.input == "text") != (not modalities):
        raise AnyGPTError(f"--task {task.name} takes one {task.input} input ({'--text' if task.input == 'text' else '--' + task.input})")
    return task


def _task_content(args, media: list) -> list:
    """The released chat model's prompt for a task, around its one input; sets --want from it."""
    task = _task_inputs(args, [m.modality for m in media])
    value = args.text if task.input == "text" else next(m for m in media if m.modality == task.input)
    if args.want is None and task.reply is None:  # a voice-chat reply starts with text, not a span
        args.want = task.output
    return task.chat_pieces(value)


def _load_voice(bundle, path, seconds):
    from anygpt import media

    return media.load_audio(path, bundle.codec("speech").sample_rate, max_seconds=seconds)


DEFAULT_SEED = 0  # chat samples with this seed unless --seed says otherwise: the same call, the same reply


def _check_chat_args(args) -> dict:
    """Every check of `chat` that needs no model, so that nothing is loaded for a typo; returns the
    decoding changes asked for."""
    from anygpt import media
    from anygpt.generate.config import preset
    from anygpt.outputs import check_out_dir

    if args.text is not None and not args.text.strip() and not (args.image or args.speech or args.music):
        raise AnyGPTError("--text is empty; leave --text out to chat interactively")
    if not 0 < args.voice_seconds <= 60:  # nan fails too
        raise AnyGPTError(f"--voice-seconds must be in (0, 60], got {args.voice_seconds}")
    for path in [*(args.image or []), *(args.speech or []), *(args.music or []), *([args.voice] if args.voice else [])]:
        media.check_file(path)
    if args.preset:
        preset(args.preset)
    changes = _settings(args)
    check_out_dir(args.out)
    return changes


def cmd_chat(args) -> int:
    from anygpt.chat import ChatSession, write_segments

    changes = _check_chat_args(args)
    bundle = _load(args)
    decoding = _decoding(args, bundle, changes)
    if decoding.seed is None:
        decoding = decoding.override(seed=DEFAULT_SEED)
    session = ChatSession(bundle, decoding=decoding)
    voice = _load_voice(bundle, args.voice, args.voice_seconds) if args.voice else None
    content = _chat_content(bundle, args)
    if not content:
        return _interactive(session, args, voice)
    t0 = time.perf_counter()
    with Progress() as progress:
        reply = session.ask(content, want=args.want, on_token=progress)
    rows = write_segments(bundle, reply.segments, args.out, voice=voice, seed=session.decoding.seed)
    elapsed = time.perf_counter() - t0
    if args.json:
        print(json.dumps({"bundle": bundle.name, "segments": rows, "generated_tokens": len(reply.ids),
                          "seconds": round(elapsed, 3), "seed": session.decoding.seed, "voice": args.voice,
                          "out": str(args.out)}, ensure_ascii=False))
    else:
        _print_rows(rows)
        _print_used(rows, session, args)
    return 0


class Progress:
    """The reply's progress on stderr while it is generated: tokens so far and their rate, on one line
    rewritten in place (on a terminal; `always` prints a start and an end line elsewhere too)."""

    def __init__(self, always: bool = False):
        self.live = sys.stderr.isatty()
        self.always = always
        self.count = 0
        self.t0 = time.perf_counter()

    def __enter__(self) -> "Progress":
        if self.always and not self.live:
            print("(generating...)", file=sys.stderr, flush=True)
        return self

    def __call__(self, _token: int) -> None:
        self.count += 1
        if self.live and self.count % 8 == 1:
            rate = self.count / max(time.perf_counter() - self.t0, 1e-6)
            print(f"\r(generating: {self.count} tokens, {rate:.0f}/s)", end="", file=sys.stderr, flush=True)

    def __exit__(self, *exc) -> None:
        if self.live and self.count:
            print("\r" + " " * 40 + "\r", end="", file=sys.stderr, flush=True)


def _print_used(rows: list[dict], session, args) -> None:
    """Say on stderr what a reply was made with and where its files went."""
    files = [r["path"] for r in rows if r.get("path")]
    voice = args.voice or "the codec's own"
    spoken = any(r["modality"] == "speech" for r in rows)
    note = f"seed {session.decoding.seed}" + (f", voice {voice}" if spoken else "")
    if files:
        note += f"; {len(files)} file(s) in {args.out}"
    print(f"anygpt: {note}", file=sys.stderr)


def _print_rows(rows: list[dict]) -> None:
    for row in rows:
        if row["modality"] == "text":
            print(row["text"])
        else:
            where = row["path"] or "(not decoded)"
            extra = f", {row['seconds']} s" if "seconds" in row else ""
            print(f"[{row['modality']}: {row['num_codes']} codes{extra}] {where}")
        for w in row.get("warnings", []):
            print(f"  warning: {w}", file=sys.stderr)


INTERACTIVE_HELP = """Type a message and press Enter. Commands:
  /image PATH  /speech PATH  /music PATH   attach media to the next message
  /want text|image|speech|music            ask for that kind of reply (once)
  /save PATH  /load PATH                   keep the conversation in a JSON file, or resume one
  /reset                                   forget the conversation
  /help                                    show this
  /quit                                    leave (Ctrl-C stops a reply, the conversation stays)"""


def _interactive(session, args, voice) -> int:
    from anygpt.chat import WANTS, encode_media, write_segments

    print(f"anygpt chat with bundle {session.bundle.name!r} (seed {session.decoding.seed}; files go to "
          f"{args.out}). {INTERACTIVE_HELP}")
    attached: list = []
    want = args.want
    turn = 0
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            print()
            return 0
        except KeyboardInterrupt:
            print("\n(type /quit to leave)")
            continue
        if not line:
            continue
        cmd, _, rest = line.partition(" ")
        rest = rest.strip()
        try:
            if cmd == "/quit":
                return 0
            if cmd == "/help":
                print(INTERACTIVE_HELP)
                continue
            if cmd == "/reset":
                session.reset()
                attached, want = [], args.want
                print("(conversation cleared)")
                continue
            if cmd == "/want":
                if rest not in WANTS:
                    raise AnyGPTError(f"/want takes one of {', '.join(WANTS)}")
                want = rest
                print(f"(the next reply will be {rest})")
                continue
            if cmd == "/save":
                print(f"(conversation saved to {save_history(session, rest, turn)})")
                continue
            if cmd == "/load":
                turn = load_history(session, rest)
                print(f"(conversation of {turn} turns loaded from {rest})")
                continue
            if cmd in ("/image", "/speech", "/music"):
                attached += [encode_media(session.bundle, cmd[1:], rest, announce=True), " "]
                print(f"(attached {cmd[1:]} {rest})")
                continue
            if cmd.startswith("/"):
                raise AnyGPTError(f"unknown command {cmd}; type /help for the commands")
            try:
                with Progress(always=True) as progress:
                    reply = session.ask(attached + [line], want=want, on_token=progress)
            except KeyboardInterrupt:
                print("\n(reply stopped; the conversation is kept)")
                continue
            turn += 1
            attached, want = [], args.want
            rows = write_segments(session.bundle, reply.segments, args.out, voice=voice,
                                  seed=session.decoding.seed, stem=f"turn{turn}")
            print("anygpt> ", end="")
            _print_rows(rows)
        except AnyGPTError as e:
            print(f"anygpt: error: {e}", file=sys.stderr)


HISTORY_FORMAT = 1


def save_history(session, path: str, turns: int) -> str:
    """The conversation as JSON (its token ids, exactly): never over an existing file."""
    from anygpt.outputs import write_file

    if not path:
        raise AnyGPTError("/save takes a file name")
    doc = {"anygpt_history": HISTORY_FORMAT, "bundle": session.bundle.name, "turns": turns,
           "history": session.history}
    data = json.dumps(doc).encode("utf-8")
    return str(write_file(path, lambda f: f.write(data), existing="refuse"))


def load_history(session, path: str) -> int:
    """Resume a conversation saved by /save with the same bundle; returns its number of turns."""
    if not path:
        raise AnyGPTError("/load takes a file name")
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AnyGPTError(f"{path}: not a readable conversation ({e})") from None
    if not isinstance(doc, dict) or doc.get("anygpt_history") != HISTORY_FORMAT:
        raise AnyGPTError(f"{path}: not a conversation saved by /save")
    if doc.get("bundle") != session.bundle.name:
        raise AnyGPTError(f"{path}: saved with bundle {doc.get('bundle')!r}, not {session.bundle.name!r}")
    ids, vocab = doc.get("history"), len(session.bundle.tokenizer)
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < vocab
                                            for i in ids):
        raise AnyGPTError(f"{path}: the history must be a list of token ids below {vocab}")
    turns = doc.get("turns")
    session.history = ids
    return turns if isinstance(turns, int) and turns >= 0 else 0


# --- info ----------------------------------------------------------------------------------------

def bundle_info(bundle) -> dict:
    from anygpt.generate.context import context_length, limits
    from anygpt.model import count_parameters

    return {
        "bundle": bundle.name,
        "description": bundle.description,
        "vocab_size": bundle.layout.vocab_size,
        "text_vocab_size": bundle.layout.base_vocab_size,
        "layout": bundle.layout.describe(),
        "extra_tokens": bundle.layout.extra_ids,
        "prompt_format": bundle.prompt_format.name,
        "llm": {"architecture": type(bundle.model).__name__, "parameters": count_parameters(bundle.model)},
        "codecs": {m: s.name for m, s in bundle.codecs.items()},
        "decoding": bundle.decoding.to_dict(),
        "memory": memory_estimate(bundle),
        "limits": limits(context_length(bundle.model), bundle.layout),
    }


def memory_estimate(bundle) -> dict:
    """Bytes each component needs for its weights: the LLM from its parameters at each precision,
    codecs from their loaded tensors or, before loading, their weight files on disk."""
    from anygpt.bundles.official import weight_files
    from anygpt.model import count_parameters

    n = count_parameters(bundle.model)
    out = {"llm": {"parameters": n, "fp32_gib": round(n * 4 / 2**30, 3), "bf16_gib": round(n * 2 / 2**30, 3)}}
    for modality, slot in bundle.codecs.items():
        if slot.instance is not None or slot.name.startswith("debug-"):
            codec = slot.get()
            size = sum(t.numel() * t.element_size() for t in codec.state_dict().values())
            out[modality] = {"codec": slot.name, "loaded_gib": round(size / 2**30, 4)}
        else:
            files = {}
            for value in slot.config.values():
                if isinstance(value, str) and Path(value).exists():
                    files.update(weight_files(Path(value)))
            out[modality] = {"codec": slot.name, "weights_on_disk_gib": round(sum(files.values()) / 2**30, 3)}
    return out


def cmd_info(args) -> int:
    info = bundle_info(_load(args))
    if args.json:
        print(json.dumps(info, ensure_ascii=False))
        return 0
    print(f"bundle {info['bundle']}: {info['description']}")
    print(f"  llm {info['llm']['architecture']}, {info['llm']['parameters']:,} parameters; "
          f"vocabulary {info['vocab_size']:,} ({info['text_vocab_size']:,} text)")
    print(f"  prompt format {info['prompt_format']}")
    lim = info["limits"]
    if lim["context_tokens"]:
        longest = ", ".join(f"{k[4:-14]} {v} s" for k, v in lim.items() if k.endswith("_input_seconds"))
        print(f"  context {lim['context_tokens']} tokens (prompt + reply); longest audio input: {longest}")
    mem = info["memory"]
    parts = [f"llm {mem['llm']['fp32_gib']} GiB fp32 / {mem['llm']['bf16_gib']} GiB bf16"]
    for m, v in mem.items():
        if m != "llm":
            parts.append(f"{m} {v.get('loaded_gib', v.get('weights_on_disk_gib'))} GiB")
    print("  weights: " + ", ".join(parts))
    for name, m in info["layout"].items():
        shape = f"{m['codebooks']} x {m['codebook_size']}" if m["codebooks"] > 1 else str(m["size"])
        rate = f"{m['tokens_per_item']} per item" if m["tokens_per_item"] else f"{m['tokens_per_second']:g} per s"
        print(f"  {name:7s} codes {shape:>11s}  {rate:12s} {m['start']} {m['end']}  ids {m['first_id']}..{m['end_id']}"
              f"  codec {info['codecs'].get(name, '-')}")
    return 0


# --- demo and bundles ------------------------------------------------------------------------------

def cmd_demo(args) -> int:
    from anygpt.demo import run_demo

    return run_demo(args.bundle, Path(args.out))


def cmd_bundle_save(args) -> int:
    from anygpt.bundles import save_bundle

    path = save_bundle(_load(args), args.out)
    print(f"wrote bundle {args.bundle!r} to {path}")
    return 0


def cmd_bundle_init_tiny(args) -> int:
    from anygpt.bundles.tiny import init_bundle

    bundle = init_bundle(args.world, args.out, seed=args.seed)
    params = sum(p.numel() for p in bundle.model.parameters())
    print(f"wrote the untrained tiny bundle to {args.out}: {len(bundle.tokenizer)} tokens "
          f"({bundle.layout.base_vocab_size} text), {params / 1e6:.2f} M parameters")
    return 0


def cmd_bundle_import(args) -> int:
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


def cmd_bundle_verify(args) -> int:
    from anygpt.bundles import MANIFEST, read_manifest, verify_files

    path = Path(args.path)
    if not (path / MANIFEST).is_file():
        raise AnyGPTError(f"{path}: no {MANIFEST}")
    manifest = read_manifest(path)
    hashed = verify_files(path, manifest)
    external = len(manifest.get("external_files") or {})
    print(f"{path}: {hashed} files match their hashes" + (f", {external} external files their sizes" if external else ""))
    return 0


def _plugin_registrars(*modules: str):
    """`register(subparsers)` of each stage module that is present in this installation."""
    import importlib

    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and name.startswith(e.name):  # the stage module itself is absent
                continue
            raise
        yield module.register


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors as one `anygpt: error:` line (status 2), like every other error."""

    def error(self, message: str):
        self.exit(2, f"anygpt: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from anygpt import __version__

    parser = _Parser(prog="anygpt", description="Any-to-any multimodal LLMs over discrete tokens.")
    parser.add_argument("--version", action="version", version=f"anygpt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("chat", help="talk to a bundle: one turn with inputs, interactive without")
    _bundle_args(p)
    _decoding_args(p)
    p.add_argument("--text", help="the message text")
    p.add_argument("--image", action="append", help="an image file (repeatable)")
    p.add_argument("--speech", action="append", help="a speech recording (repeatable)")
    p.add_argument("--music", action="append", help="a music clip (repeatable)")
    p.add_argument("--voice", help="a recording whose voice spoken replies should copy")
    p.add_argument("--voice-seconds", type=float, default=3.0, help="voice prompt length used (default 3 s)")
    p.add_argument("--want", choices=["text", "image", "speech", "music"], help="require this kind of reply")
    p.add_argument("--task", choices=["caption", "t2i", "asr", "tts", "music_caption", "t2m", "voice_chat"],
                   help="wrap the input in the released chat model's prompt for this task")
    p.add_argument("--out", default="anygpt-out", help="folder for generated PNG/WAV files")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("info", help="describe a bundle: layout, sizes, codecs, decoding")
    _bundle_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="run a fixed set of any-to-any turns and write a page of results")
    _bundle_args(p)
    p.add_argument("--out", default="demo-out")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="serve a bundle over HTTP: OpenAI-compatible API and a chat page")
    _bundle_args(p)
    _decoding_args(p)
    serve_command.add_arguments(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("data", help="make and prepare data: the offline world, token shards, mixtures")
    dsub = p.add_subparsers(dest="data_command", required=True)
    for register in _plugin_registrars("anygpt.world.command", "anygpt.data.pipeline.command"):
        register(dsub)
    for register in _plugin_registrars("anygpt.train.command", "anygpt.codecs.small.command"):
        register(sub)
    p = sub.add_parser("eval", help="evaluate: codecs against the judges, the judges' calibration (and retraining them)")
    esub = p.add_subparsers(dest="eval_command", required=True)
    for register in _plugin_registrars("anygpt.eval.judges.command", "anygpt.eval.command", "anygpt.eval.tasks_command"):
        register(esub)
    try:
        from anygpt.eval.judges.command import register_train
    except ModuleNotFoundError:
        pass
    else:
        register_train(esub)

    p = sub.add_parser("bundle", help="save or verify bundles")
    bsub = p.add_subparsers(dest="bundle_command", required=True)
    q = bsub.add_parser("save", help="write a built-in bundle to a directory")
    q.add_argument("bundle", help="built-in bundle name, e.g. debug")
    q.add_argument("--out", required=True)
    q.set_defaults(func=cmd_bundle_save, device="cpu", dtype=None)
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
    q.set_defaults(func=cmd_bundle_import)
    q = bsub.add_parser("init-tiny", help="write the untrained tiny bundle (BPE on a world's text, random Llama, "
                                          "the shipped small codecs): what `anygpt train` starts from")
    q.add_argument("--world", required=True, help="a world from `anygpt data world` (its training text)")
    q.add_argument("--out", required=True)
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=cmd_bundle_init_tiny)
    q = bsub.add_parser("verify", help="check a bundle directory against its manifest hashes")
    q.add_argument("path")
    q.set_defaults(func=cmd_bundle_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.command == "train":  # `train --processes N` relaunches itself with its own arguments
        args.argv = argv[argv.index("train") + 1:]
    _quiet_libraries()
    try:
        return args.func(args)
    except AnyGPTError as e:
        print(f"anygpt: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("anygpt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
