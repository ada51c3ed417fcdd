"""`anygpt eval TASK|all`: the paper's six tasks on the world's test split (see anygpt.eval.tasks).

    anygpt eval caption|t2i|asr|tts|music_caption|t2m|all [--bundle B] [--limit N] [--json]
                [--world W] [--out DIR] [--seed S] [--device D] [--threads T] [--no-conditioning]
                [--no-offworld]

Beside each task's figures: its conditioning gap (anygpt.eval.conditioning), the NLL per token of
the references after the items' own inputs and after other items' inputs; and for caption, t2i and
asr the same figures on the off-world set (anygpt.eval.offworld: pictures, speech and prompts the
world generator did not make), under "offworld". With the conditioning gap, tts also reports how far
its generated codes are from the recordings' own (`codes`: an edit rate, over the shorter and the
longer half of the sentences too; anygpt.eval.tasks.code_edit).

One subcommand per record of anygpt.eval.tasks.TASKS, with its help line; `all` runs every record,
and the table prints each record's metrics. This module is imported to build the CLI: `run` imports
torch and the bundles itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from anygpt.bundles import default_bundle
from anygpt.errors import AnyGPTError
from anygpt.eval.command import ensure_world
from anygpt.eval.tasks import TASKS, evaluate, modalities


def subcommands() -> dict[str, tuple[list[str], str]]:
    """{subcommand: (the tasks it runs, its help line)}: one per record of TASKS, then `all`."""
    return {**{name: ([name], task.help) for name, task in TASKS.items()},
            "all": (list(TASKS), f"all {len(TASKS)} tasks: {', '.join(TASKS)}")}


def register(subparsers) -> None:
    for name, (tasks, help_line) in subcommands().items():
        p = subparsers.add_parser(
            name, help=f"task: {help_line}",
            description=f"{help_line}. Generates through `anygpt chat --task` on the world's held-out test "
                        "split (item i with seed SEED+i) and scores replies and real data with the world's judges.")
        p.add_argument("--bundle", default=default_bundle(), help=f"bundle name or directory (default {default_bundle()})")
        p.add_argument("--world", type=Path, default=None,
                       help="a world from `anygpt data world` (default: the n=400 seed-0 world, built when missing)")
        p.add_argument("--limit", type=int, default=None, help="at most N test items per task")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.add_argument("--out", type=Path, default=None, help="write generated PNG/WAV files and results.json here")
        p.add_argument("--seed", type=int, default=0, help="item i is generated with seed SEED+i (default 0)")
        p.add_argument("--device", default="cpu", help="cpu, cuda, ...")
        p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
        p.add_argument("--no-conditioning", dest="conditioning", action="store_false",
                       help="skip the conditioning gap (teacher-forced NLL of the references after their own "
                            "and after other items' inputs)")
        p.add_argument("--no-offworld", dest="offworld", action="store_false",
                       help=f"skip the off-world set ({', '.join(n for n, t in TASKS.items() if t.offworld)} "
                            "on inputs the world generator did not make)")
        p.set_defaults(func=run, tasks=tasks)


def run(args: argparse.Namespace) -> int:
    import torch

    from anygpt.bundles import load_bundle

    if args.limit is not None and args.limit < 1:
        raise AnyGPTError("--limit must be at least 1")
    torch.set_num_threads(args.threads)
    bundle = load_bundle(args.bundle, device=args.device)  # fails before any world is built
    world = ensure_world(args.world, modalities(args.tasks))
    print(f"eval {' '.join(args.tasks)}: bundle={bundle.name} world={world} limit={args.limit} seed={args.seed}",
          file=sys.stderr)
    results = evaluate(bundle, world, args.tasks, limit=args.limit, seed=args.seed, out=args.out,
                       log=lambda line: print(line, file=sys.stderr), conditioning=args.conditioning,
                       offworld=args.offworld)
    summary = {task: _without_items(figures) for task, figures in results.items()}
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        record = {"bundle": bundle.name, "world": str(world), "limit": args.limit, "seed": args.seed, "tasks": results}
        (args.out / "results.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(table(summary))
    return 0


def _without_items(figures: dict) -> dict:
    out = {k: v for k, v in figures.items() if k != "items"}
    if "offworld" in out:
        out["offworld"] = _without_items(out["offworld"])
    return out


def _cell(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def table(summary: dict) -> str:
    """task | metric | model | ground truth, one row per metric, as the paper's tables; then the
    conditioning gap (nats/token) with its matched and mismatched NLL, when measured."""
    lines = [f"{'task':14s} {'metric':24s} {'model':>9s} {'ground truth':>13s}   items"]
    for task, figures in summary.items():
        for k, (key, name) in enumerate(TASKS[task].metrics):
            note = f"   n={figures['n']} malformed={figures['malformed']} {figures['seconds']} s" if k == 0 else ""
            lines.append(f"{task if k == 0 else '':14s} {name:24s} {_cell(figures[key]):>9s} "
                         f"{_cell(figures['ground_truth'][key]):>13s}{note}")
        if "offworld" in figures:
            off = figures["offworld"]
            for key, name in TASKS[task].metrics:
                lines.append(f"{'':14s} {'off-world: ' + name:24s} {_cell(off[key]):>9s} "
                             f"{_cell(off['ground_truth'][key]):>13s}   n={off['n']} malformed={off['malformed']}")
        if "conditioning" in figures:
            c = figures["conditioning"] or dict.fromkeys(("matched", "mismatched", "gap", "matched_better"))
            lines.append(f"{'':14s} {'conditioning gap':24s} {_cell(c['gap']):>9s} {'-':>13s}   "
                         f"matched={_cell(c['matched'])} mismatched={_cell(c['mismatched'])} "
                         f"matched_better={_cell(c['matched_better'])}")
        if "codes" in figures:  # tts: the generated codes against the recording's own
            e = figures["codes"]
            lines.append(f"{'':14s} {'code edit rate':24s} {_cell(e['edit']):>9s} {'-':>13s}   "
                         f"short={_cell(e['edit_short'])} long={_cell(e['edit_long'])} "
                         f"(split at {e['split_codes']:g} codes)")
    return "\n".join(lines)
