"""`anygpt train`: run one training stage from a recipe, printing the resolved configuration first.

    anygpt train [--recipe pretrain|instruct|lora|FILE.toml] [--bundle B] [--data D] [--val-data V]
                 [--out DIR] [--steps N] [--epochs E] [--lr X] [--max-len N] [--micro-batch N]
                 [--grad-accum N] [--precision no|bf16|fp16] [--finetune full|lora] [--loss-on all|assistant]
                 [--eval-every N] [--save-every N] [--seed N] [--no-resume] [--set KEY=VALUE]...
                 [--processes N | --accelerate-config FILE|NAME] [--dry-run]

With --processes N (N > 1) or --accelerate-config, the same command is relaunched under
`accelerate launch` (DDP over processes on CPU with gloo, or the config's FSDP / DeepSpeed setup).
Shipped accelerate configs: cpu, ddp_cpu, ddp_gpu, fsdp, deepspeed_zero2, deepspeed_zero3.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from importlib import resources
from pathlib import Path

from anygpt.errors import AnyGPTError, run_command
from anygpt.train.recipe import load_recipe

FLAGS = {  # command-line flag -> TrainConfig field (typed by argparse)
    "bundle": str, "data": str, "val_data": str, "out": str, "steps": int, "epochs": float, "lr": float,
    "max_len": int, "micro_batch": int, "grad_accum": int, "precision": str, "finetune": str,
    "loss_on": str, "eval_every": int, "save_every": int, "seed": int, "stop_after": int,
}
LAUNCH_ONLY = ("--processes", "--accelerate-config")


def accelerate_config_path(name: str) -> Path:
    p = Path(name)
    if p.is_file():
        return p
    f = resources.files("anygpt.train").joinpath("accelerate", f"{name}.yaml")
    if not f.is_file():
        raise AnyGPTError(f"unknown accelerate config {name!r}: not a file and not a shipped config")
    return Path(str(f))


def resolve(args):
    overrides = {k: getattr(args, k) for k in FLAGS}
    if args.no_resume:
        overrides["resume"] = False
    return load_recipe(args.recipe, overrides, args.set)


def _strip_launch_flags(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in LAUNCH_ONLY:
            skip = True
            continue
        if any(a.startswith(f + "=") for f in LAUNCH_ONLY):
            continue
        out.append(a)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(args, argv: list[str]) -> list[str]:
    """The command that runs `python -m anygpt.train <the same arguments>` in every process:
    `accelerate launch --config_file F` for a named config; for plain --processes N, torchrun with
    N processes on CPU (Accelerator then runs DDP over gloo) or `accelerate launch --multi_gpu` on GPUs."""
    import torch

    rest = ["-m", "anygpt.train"] + _strip_launch_flags(argv)
    if args.accelerate_config:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(accelerate_config_path(args.accelerate_config))]
        if args.processes:
            cmd += ["--num_processes", str(args.processes)]
        return cmd + rest
    if torch.cuda.is_available():
        return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                str(args.processes), "--main_process_port", str(_free_port())] + rest
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(args.processes),
            "--master_addr", "127.0.0.1", "--master_port", str(_free_port())] + rest


def run_train(args) -> int:
    cfg = resolve(args)
    argv = getattr(args, "argv", None)
    if argv is None and "train" in sys.argv:  # called from the main `anygpt` parser
        argv = sys.argv[sys.argv.index("train") + 1:]
    launching = (args.processes and args.processes > 1) or args.accelerate_config
    relaunched = os.environ.get("ANYGPT_LAUNCHED") == "1"
    if os.environ.get("RANK", "0") == "0" and not relaunched:
        print(json.dumps({"command": "train", "recipe": args.recipe, **cfg.to_dict(),
                          "launch": {"processes": args.processes, "accelerate_config": args.accelerate_config}}),
              flush=True)
    if args.dry_run:
        return 0
    if launching and "LOCAL_RANK" not in os.environ:
        if argv is None:
            raise AnyGPTError("relaunching needs the original arguments (args.argv)")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "ANYGPT_LAUNCHED": "1"}
        return subprocess.call(launch_command(args, argv), env=env)
    from anygpt.train.trainer import train

    summary = train(cfg)
    if os.environ.get("RANK", "0") == "0":
        brief = {k: v for k, v in summary.items() if k != "losses"}
        brief["final_loss"] = summary["losses"][-1] if summary["losses"] else None
        print(json.dumps(brief, default=str), flush=True)
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default="pretrain", help="pretrain, instruct, lora, or a recipe .toml")
    for name, typ in FLAGS.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=typ, default=None)
    p.add_argument("--no-resume", action="store_true", help="start afresh even if out/ has a checkpoint")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other TrainConfig field")
    p.add_argument("--processes", type=int, default=None, help="launch N processes (DDP) with accelerate")
    p.add_argument("--accelerate-config", default=None, help="an accelerate config file or shipped name")
    p.add_argument("--dry-run", action="store_true", help="print the resolved configuration and stop")
    p.set_defaults(func=run_train)


def register(subparsers) -> None:
    """Add the top-level `train` subcommand."""
    p = subparsers.add_parser("train", help="pretraining or instruction tuning from a recipe")
    add_arguments(p)


def main(argv: list[str] | None = None) -> int:
    """`python -m anygpt.train ...`: what `accelerate launch` runs in every process."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="anygpt train")
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.argv = argv
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return run_command(args.func, args)
