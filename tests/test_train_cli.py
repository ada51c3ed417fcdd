"""`anygpt data ...` and `anygpt train` through their `register` functions (a small argparse harness
in place of the main CLI): each prints its resolved configuration first, and the stages chain."""

import argparse
import copy
import dataclasses
import json
from importlib import resources

import pytest
import yaml

from anygpt.data.pipeline import command as data_command
from anygpt.train import command as train_command


def harness():
    parser = argparse.ArgumentParser(prog="anygpt")
    sub = parser.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data").add_subparsers(dest="data_command", required=True)
    data_command.register(data)
    train_command.register(sub)
    return parser


def run(argv, capsys):
    args = harness().parse_args(argv)
    args.argv = argv[1:]
    assert args.func(args) == 0
    out = capsys.readouterr().out.splitlines()
    return [json.loads(line) for line in out if line.startswith("{")]


@pytest.fixture
def same_bundle(monkeypatch, debug_bundle):
    """load_bundle("debug") hands out copies of the session's debug bundle (saves rebuilding it)."""
    import anygpt.bundles

    real = anygpt.bundles.load_bundle

    def load(name, **kw):
        if str(name) == "debug":
            return dataclasses.replace(debug_bundle, model=copy.deepcopy(debug_bundle.model))
        return real(name, **kw)

    monkeypatch.setattr(anygpt.bundles, "load_bundle", load)


def test_data_stages_chain_and_print_their_configuration_first(tmp_path, capsys, same_bundle):
    raw = tmp_path / "raw"
    out = run(["data", "example", "--out", str(raw), "--pairs", "8"], capsys)
    assert out[0]["command"] == "data example"
    out = run(["data", "tokenize", str(raw / "images.jsonl"), str(raw / "docs.jsonl"), "--out",
               str(tmp_path / "units" / "images"), "--chunk-size", "5"], capsys)
    assert out[0]["command"] == "data tokenize" and out[0]["chunk_size"] == 5 and out[0]["engine"] == "local"
    assert out[-1]["units"] == 8 + 4 and out[-1]["errors"] == 0
    (tmp_path / "mix.toml").write_text('[mixture]\nbudget_tokens = 3000\nval_fraction = 0.25\n'
                                       '[[datasets]]\nname = "images"\nunits = "units/images"\nto_text = 0.8\n')
    out = run(["data", "mix", str(tmp_path / "mix.toml"), "--out", str(tmp_path / "mix"), "--seed", "1"], capsys)
    assert out[0]["command"] == "data mix" and out[0]["seed"] == 1 and out[0]["datasets"][0]["to_text"] == 0.8
    assert out[-1]["tokens"] >= 3000
    out = run(["data", "pack", str(tmp_path / "mix" / "train"), "--out", str(tmp_path / "packed"),
               "--max-len", "512"], capsys)
    assert out[0] == {"command": "data pack", "samples": str(tmp_path / "mix" / "train"),
                      "out": str(tmp_path / "packed"), "max_len": 512, "window": 8192}
    assert out[-1]["rows"] >= 6 and out[-1]["max_len"] == 512
    out = run(["data", "inspect", str(tmp_path / "packed"), "--rows", "1", "--bundle", ""], capsys)
    assert out[0]["stage"] == "packed"


def test_train_prints_resolved_configuration_and_runs(tmp_path, capsys, same_bundle):
    out = run(["train", "--recipe", "instruct", "--lr", "1e-5", "--set", "lora_r=4", "--dry-run"], capsys)
    assert out[0]["command"] == "train" and out[0]["lr"] == 1e-5 and out[0]["lora_r"] == 4
    assert out[0]["loss_on"] == "assistant" and out[0]["warmup_ratio"] == 0.03
    # a real (tiny) run from a mixture file: mixed and packed into out/data, then trained
    raw = tmp_path / "raw"
    run(["data", "example", "--out", str(raw), "--pairs", "8"], capsys)
    run(["data", "tokenize", str(raw / "chats.jsonl"), str(raw / "anyinstruct.json"), "--out",
         str(tmp_path / "units" / "chats")], capsys)
    (tmp_path / "chat.toml").write_text('[mixture]\nbudget_tokens = 4000\nval_fraction = 0.3\n'
                                        '[[datasets]]\nname = "chats"\nunits = "units/chats"\n')
    out = run(["train", "--recipe", "instruct", "--data", str(tmp_path / "chat.toml"), "--out", str(tmp_path / "run"),
               "--max-len", "512", "--steps", "2", "--grad-accum", "1", "--set", "tensorboard=false",
               "--set", "export=false"], capsys)
    assert out[0]["command"] == "train" and out[0]["steps"] == 2
    assert out[-1]["steps"] == 2 and out[-1]["last_eval"]["val/chat"] > 0
    assert (tmp_path / "run" / "data" / "packed-train" / "manifest.json").is_file()


def test_launch_commands_and_shipped_accelerate_configs():
    args = harness().parse_args(["train", "--processes", "2", "--steps", "3"])
    cmd = train_command.launch_command(args, ["--processes", "2", "--steps", "3"])
    assert "--processes" not in cmd and cmd[-2:] == ["--steps", "3"] and "anygpt.train" in cmd
    assert ("torch.distributed.run" in cmd) or ("accelerate.commands.launch" in cmd)
    args = harness().parse_args(["train", "--accelerate-config", "fsdp"])
    cmd = train_command.launch_command(args, ["--accelerate-config=fsdp"])
    assert cmd[cmd.index("--config_file") + 1].endswith("fsdp.yaml") and "--accelerate-config=fsdp" not in cmd
    names = {p.name for p in resources.files("anygpt.train").joinpath("accelerate").iterdir()}
    assert {"cpu.yaml", "ddp_cpu.yaml", "ddp_gpu.yaml", "fsdp.yaml", "deepspeed_zero2.yaml",
            "deepspeed_zero3.yaml"} <= names
    for name in names:
        cfg = yaml.safe_load(resources.files("anygpt.train").joinpath("accelerate", name).read_text())
        assert cfg["distributed_type"] in ("NO", "MULTI_CPU", "MULTI_GPU", "FSDP", "DEEPSPEED")
    from accelerate.commands.config.config_args import load_config_from_file

    for name in names:  # accelerate itself accepts every shipped file
        load_config_from_file(str(resources.files("anygpt.train").joinpath("accelerate", name)))
