"""The `anygpt` command: one subcommand per stage, each registered by its stage's command module.

    anygpt chat | info | demo | serve | data ... | train | codecs ... | eval ... | bundle ...

STAGES below is the whole table: a command's name, its one-line help, and the module(s) whose
`register(subparsers)` adds its parser(s) and sets `func`, the function that runs it. `data` and
`eval` are groups: their modules register subcommands under them.

The contract of a command module (anygpt/<stage>/command.py), so that `anygpt --help` and every
command's `--help` answer at once:
- its top level imports only the standard library, argparse and small config modules (no torch,
  transformers, pyarrow, PIL, nor a project module that imports them);
- the heavy implementation is imported inside the command's run function (the function `func`
  names, or a helper it calls first): the one sanctioned place for a project import in a function
  body. A package whose `__init__` names heavy things (anygpt.bundles, anygpt.chat) resolves them on
  first use, so that its command module stays light.
Only the command asked for is imported: `anygpt --help` lists STAGES without importing any.

Errors the user can fix print one line `anygpt: error: ...` on stderr and exit with status 2, without
a traceback, for every command (errors.run_command).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from dataclasses import dataclass

from anygpt import __version__
from anygpt.errors import run_command


@dataclass(frozen=True)
class Stage:
    name: str
    help: str
    modules: tuple[str, ...]  # "package.module" (its `register`) or "package.module:function"
    group: bool = False  # the modules register subcommands of `anygpt NAME`, not NAME itself


STAGES = (
    Stage("chat", "talk to a bundle: one turn with inputs, interactive without", ("anygpt.chat.command",)),
    Stage("info", "describe a bundle: layout, sizes, codecs, decoding", ("anygpt.bundles.command:register_info",)),
    Stage("demo", "run a fixed set of any-to-any turns and write a page of results", ("anygpt.demo.command",)),
    Stage("serve", "serve a bundle over HTTP: OpenAI-compatible API and a chat page", ("anygpt.serve.command",)),
    Stage("data", "make and prepare data: the offline world, token shards, mixtures",
          ("anygpt.world.command", "anygpt.data.pipeline.command"), group=True),
    Stage("train", "pretraining or instruction tuning from a recipe", ("anygpt.train.command",)),
    Stage("codecs", "train, ship and probe the small image, speech and music codecs", ("anygpt.train.codecs.command",)),
    Stage("eval", "evaluate: codecs (against the judges, or one export), the judges' calibration (and retraining them)",
          ("anygpt.train.judges.command", "anygpt.eval.command", "anygpt.eval.tasks_command",
           "anygpt.train.judges.command:register_train"), group=True),
    Stage("bundle", "save or verify bundles", ("anygpt.bundles.command",)),
)


def _registrars(stage: Stage):
    """The `register` functions of a stage's modules that are present in this installation."""
    for spec in stage.modules:
        name, _, function = spec.partition(":")
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and name.startswith(e.name):  # the stage module itself is absent
                continue
            raise
        yield getattr(module, function or "register")


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors as one `anygpt: error:` line (status 2), like every other error."""

    def error(self, message: str):
        self.exit(2, f"anygpt: error: {message} (see `{self.prog} --help`)\n")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The `anygpt` parser. With `argv`, only the command it names is registered in full (the others
    are listed by name and help); without, every command is."""
    parser = _Parser(prog="anygpt", description="Any-to-any multimodal LLMs over discrete tokens.")
    parser.add_argument("--version", action="version", version=f"anygpt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    asked = None if argv is None else next((a for a in argv if not a.startswith("-")), "")
    for stage in STAGES:
        if asked is not None and stage.name != asked:
            sub.add_parser(stage.name, help=stage.help)
        elif stage.group:
            group = sub.add_parser(stage.name, help=stage.help)
            inner = group.add_subparsers(dest=f"{stage.name}_command", required=True)
            for register in _registrars(stage):
                register(inner)
        else:
            for register in _registrars(stage):
                register(sub)
    return parser


def _quiet_libraries() -> None:
    """No progress bars or info logs of third-party libraries around our output; warnings as one line."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever fetched: fail fast instead of retrying
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # read by transformers when it is first imported (if it ever is): errors only, no "Loading weights" bars
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:  # imported already (a second command in one process)
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"anygpt: warning: {message}", file=sys.stderr)

    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    if args.command == "train":  # `train --processes N` relaunches itself with its own arguments
        args.argv = argv[argv.index("train") + 1:]
    _quiet_libraries()
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
