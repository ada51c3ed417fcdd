"""`anygpt --help` and every command's `--help` answer without importing torch or transformers:
the parsers come from light command modules (see the contract in anygpt/cli.py)."""

import json
import subprocess
import sys

import pytest

from anygpt.cli import STAGES

HEAVY = ("torch", "transformers")
PROGRAM = """
import json, sys
from anygpt.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print(json.dumps([m for m in {heavy!r} if m in sys.modules]))
"""


def _heavy_after(argv: list[str]) -> list[str]:
    result = subprocess.run([sys.executable, "-c", PROGRAM.format(argv=argv, heavy=HEAVY)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], *([s.name, "--help"] for s in STAGES)], ids=" ".join)
def test_help_imports_neither_torch_nor_transformers(argv):
    assert _heavy_after(argv) == []


@pytest.mark.parametrize("argv", [["data", "world", "--help"], ["data", "tokenize", "--help"],
                                  ["eval", "codecs", "--help"], ["codecs", "train", "--help"],
                                  ["bundle", "import", "--help"]], ids=" ".join)
def test_subcommand_help_imports_neither_torch_nor_transformers(argv):
    assert _heavy_after(argv) == []


def test_the_table_help_is_each_stage_s_own():
    """A stage's line in `anygpt --help` (from STAGES, nothing imported) is the help its module registers."""
    from anygpt.cli import build_parser

    full = build_parser()  # every stage registered
    listed = build_parser(["--help"])  # the table alone
    for parser in (full, listed):
        (sub,) = [a for a in parser._actions if a.dest == "command"]
        helps = {a.dest: a.help for a in sub._choices_actions}
        assert helps == {s.name: s.help for s in STAGES}
