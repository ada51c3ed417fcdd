"""The README's commands run as written; every `anygpt` command, file and module the docs name exists.

Which README commands run: every line of a ```bash block is one command (a quoted string may go on
over lines; `# ...` comments are dropped) and is decided by the first rule of RULES that matches it.
A rule with a reason skips the command for that reason (set-up, servers, trainings, world builds, the
released weights); `RUN` runs it, in-process through `anygpt.cli.main`, with the real default bundle
(tiny), in a scratch folder that sees the repository's tests/fixtures. A command no rule matches fails
the test: a new README command must be given a rule here.
"""

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from anygpt.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = [README, *sorted((REPO / "docs").glob("*.md"))]

RUN = None
RULES = [
    (r"^bash scripts/", "set-up, the whole suite, the demo or a training from nothing: minutes to hours"),
    (r"^(pip|source) ", "set-up: installs packages or changes the shell"),
    (r"^curl ", "needs a running server"),
    (r"^anygpt serve\b", "a server runs until stopped (tests/test_serve_cli.py starts one)"),
    (r"^anygpt demo\b", "every kind of turn on world items made on the spot (tests/test_demo.py runs it)"),
    (r"^anygpt chat$", "interactive: waits for input"),
    (r"--bundle anygpt-chat|^anygpt bundle import\b", "needs the released AnyGPT weights on disk"),
    (r"^anygpt data world\b", "builds a world: minutes (tests/test_world_*.py build small ones)"),
    (r"^anygpt train\b", "a training (tests/test_train_*.py run short ones)"),
    (r"^anygpt eval\b", "builds the evaluation world and runs every task: minutes"),
    (r"^anygpt (chat|info|data example|bundle (save|verify))\b|--help$", RUN),
]


def fenced_blocks(path: Path, languages: tuple[str, ...] = ("bash",)) -> list[str]:
    """The text of each fenced block of one of these languages (all languages if empty)."""
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", path.read_text(), flags=re.M | re.S)
    return [body for lang, body in blocks if not languages or lang in languages]


def commands(path: Path) -> list[str]:
    """One command per line of the bash blocks; a line with an open quote goes on to the next."""
    found, pending = [], ""
    for block in fenced_blocks(path):
        for line in block.splitlines():
            pending = f"{pending}\n{line}" if pending else line
            try:
                words = shlex.split(pending, comments=True)
            except ValueError:  # no closing quotation yet
                continue
            if words:
                found.append(shlex.join(words))
            pending = ""
        assert not pending, f"{path.name}: unclosed quote in a bash block: {pending!r}"
    return found


def rule(command: str):
    for pattern, reason in RULES:
        if re.search(pattern, command):
            return pattern, reason
    raise AssertionError(f"README command with no rule in tests/test_readme.py (run it or say why not): {command}")


README_COMMANDS = commands(README)


def test_the_two_commands_come_first():
    assert README_COMMANDS[:2] == ["bash scripts/demo.sh", "bash scripts/test.sh"]


def test_every_readme_command_has_a_rule():
    for command in README_COMMANDS:
        rule(command)


@pytest.mark.tiny_default
@pytest.mark.parametrize("command", [c for c in README_COMMANDS if rule(c)[1] is RUN])
def test_readme_command_runs(command, tmp_path, monkeypatch, capsys, one_thread):
    (tmp_path / "tests").symlink_to(REPO / "tests")  # the README names files under tests/fixtures
    monkeypatch.chdir(tmp_path)
    words = shlex.split(command)
    assert words[0] == "anygpt"
    code = main(words[1:])
    out, err = capsys.readouterr()
    assert code == 0, err


# --- drift: every `anygpt SUBCOMMAND [SUBSUB]` the README and docs name exists ----------------------

def _subcommands(parser) -> dict:
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def named_commands() -> set[tuple[str, ...]]:
    """(subcommand,) or (subcommand, subsubcommand) for each `anygpt ...` in code of README and docs."""
    code = []
    for path in DOCS:
        text = path.read_text()
        code += fenced_blocks(path, languages=())
        spans = re.findall(r"`([^`]+)`", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S))
        code += [" ".join(span.split()) for span in spans]  # a span may go on over a line break
    top = _subcommands(build_parser())
    named = set()
    for snippet in code:
        for words in re.findall(r"(?:^|[\s/(])anygpt((?: [a-z][a-z0-9_-]*){1,2})", snippet, flags=re.M):
            words = tuple(words.split())
            inner = _subcommands(top[words[0]]) if words[0] in top else {}
            named.add(words if inner and len(words) > 1 else words[:1])
    return named


NAMED = sorted(named_commands())


def test_docs_name_commands():
    assert ("chat",) in NAMED and ("eval", "codecs") in NAMED and ("data", "world") in NAMED


@pytest.mark.parametrize("words", NAMED, ids=" ".join)
def test_named_command_exists(words, capsys):
    with pytest.raises(SystemExit) as e:
        main([*words, "--help"])
    assert e.value.code == 0, capsys.readouterr().err


# --- the map of the README names every folder ----------------------------------------------------

def test_map_names_every_folder():
    text = README.read_text()
    begin, end = text.index("<!-- map: begin"), text.index("<!-- map: end -->")
    tree = text[begin:end]
    try:
        files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    folders = {str(Path(f).parent) for f in files if f.startswith("anygpt/")}
    folders |= {f.split("/")[0] for f in files if "/" in f and not f.startswith(".")}
    folders |= {str(Path(p).parent) for p in folders if "/" in p}  # folders holding only folders
    missing = sorted(f for f in folders if f"{Path(f).name}/" not in tree)
    assert not missing, f"folders the README's map does not name: {missing}"


# --- the files, folders and modules the README and docs name exist ---------------------------------

# the release's own folders (models/anygpt/chat/, ...), named in docs/official.md, not this repository's
RELEASE_LAYOUT = {"anygpt/chat/", "anygpt/base/"}


def named_paths() -> set[str]:
    """Repository paths (anygpt/..., scripts/..., bench/..., docs/..., tests/...) and `python -m` modules."""
    found = set()
    for path in DOCS:
        text = path.read_text()
        for snippet in [*fenced_blocks(path, languages=()), *re.findall(r"`([^`]+)`", text), *re.findall(r"\]\(([^)#]+)\)", text)]:
            for name in re.findall(r"(?:^|[\s(`'\"])((?:anygpt|scripts|bench|docs|tests)/[\w./*{},-]*)", snippet):
                found.add(name.rstrip(".,"))
            found |= {f"-m {m}" for m in re.findall(r"python -m ([\w.]+)", snippet)}
    return found - RELEASE_LAYOUT


@pytest.mark.parametrize("name", sorted(named_paths()))
def test_named_path_exists(name):
    import importlib.util

    if name.startswith("-m "):
        assert importlib.util.find_spec(name[3:]) is not None, f"no module {name[3:]}"
        return
    for part in re.sub(r"\{([^}]*)\}", lambda m: m.group(1).split(",")[0], name).split():
        assert list(REPO.glob(part)) or (REPO / part).exists(), f"the docs name {name}, which is not there"
