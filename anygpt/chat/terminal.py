"""`anygpt chat` in a terminal: one turn from the command line's inputs (wrapped in a task's prompt
with --task), the interactive loop, its progress line and printed rows, and saved conversations."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from anygpt import media
from anygpt.bundles.command import load
from anygpt.chat.options import decoding_changes, resolve_decoding
from anygpt.chat.session import WANTS, ChatSession, encode_media, write_segments
from anygpt.errors import AnyGPTError
from anygpt.generate.config import preset
from anygpt.outputs import check_out_dir, write_file
from anygpt.prompts import load_tasks


def _chat_content(bundle, args) -> list:
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
    task = load_tasks()[args.task]
    given = bool(args.text) if task.input == "text" else task.input in modalities
    if not given or (task.input == "text") != (not modalities):
        raise AnyGPTError(f"--task {task.name} takes one {task.input} input ({'--text' if task.input == 'text' else '--' + task.input})")
    return task


def _task_content(args, inputs: list) -> list:
    """The released chat model's prompt for a task, around its one input; sets --want from it."""
    task = _task_inputs(args, [m.modality for m in inputs])
    value = args.text if task.input == "text" else next(m for m in inputs if m.modality == task.input)
    if args.want is None and task.reply is None:  # a voice-chat reply starts with text, not a span
        args.want = task.output
    return task.chat_pieces(value)


def _load_voice(bundle, path, seconds):
    return media.load_audio(path, bundle.codec("speech").sample_rate, max_seconds=seconds)


DEFAULT_SEED = 0  # chat samples with this seed unless --seed says otherwise: the same call, the same reply


def _check_chat_args(args) -> dict:
    """Every check of `chat` that needs no model, so that nothing is loaded for a typo; returns the
    decoding changes asked for."""
    if args.text is not None and not args.text.strip() and not (args.image or args.speech or args.music):
        raise AnyGPTError("--text is empty; leave --text out to chat interactively")
    if not 0 < args.voice_seconds <= 60:  # nan fails too
        raise AnyGPTError(f"--voice-seconds must be in (0, 60], got {args.voice_seconds}")
    for path in [*(args.image or []), *(args.speech or []), *(args.music or []), *([args.voice] if args.voice else [])]:
        media.check_file(path)
    if args.preset:
        preset(args.preset)
    changes = decoding_changes(args)
    check_out_dir(args.out)
    return changes


def chat(args) -> int:
    """`anygpt chat`: one turn with the inputs given, or the interactive loop without."""
    changes = _check_chat_args(args)
    bundle = load(args)
    decoding = resolve_decoding(args, bundle, changes)
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
