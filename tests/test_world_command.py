"""`anygpt data world` through its argparse registration (images only: no Debian tools needed)."""

import argparse

from anygpt.world import command, reader


def test_command_registers_and_runs(tmp_path):
    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    args = parser.parse_args(["world", "--out", str(tmp_path / "w"), "--n", "4", "--kinds", "images",
                              "--no-progress", "--workers", "1"])
    assert args.seed == 0 and args.clip_seconds == 5.0
    assert args.func(args) == 0
    manifest = reader.load_manifest(tmp_path / "w")
    assert list(manifest["kinds"]) == ["images"] and sum(manifest["counts"]["images"].values()) == 4
