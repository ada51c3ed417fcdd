"""The wheel a user installs: it holds every file the package reads at run time, its extras follow the
stages, and the core plus `serve` run chat and the server without any other stage's packages.

The wheel is built offline from a copy of the tracked files (`pip wheel --no-deps --no-build-isolation
--no-index`, with the setuptools of this environment), so the checkout gets no build/ or egg-info.
"""

import email
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
STAGES = {"serve", "data", "train", "eval", "official", "ray", "all", "test"}

# Files the package must carry, as patterns over its tracked files; each must match at least one.
SHIPPED = [
    "anygpt/bundles/tiny/manifest.json",
    "anygpt/bundles/tiny/llm/*",
    "anygpt/bundles/tiny/tokenizer/*",
    "anygpt/bundles/tiny/codecs/*",
    "anygpt/prompts/*.toml",
    "anygpt/prompts/formats/*.toml",
    "anygpt/prompts/pools/*.txt",
    "anygpt/train/recipes/*.toml",
    "anygpt/train/recipes/tiny-mixtures/*.toml",
    "anygpt/train/accelerate/*.yaml",
    "anygpt/eval/judges/weights/*",
    "anygpt/serve/page/*",
    "anygpt/serve/voices/*",
    "anygpt/world/*.json",
]

# Import names of the packages that only stages other than `serve` bring: none may be needed by chat
# or the server. Every such requirement of pyproject.toml must be named here (checked below).
OTHER_STAGES_IMPORTS = {
    "pyarrow": "pyarrow", "music21": "music21", "accelerate": "accelerate", "peft": "peft", "tensorboard": "tensorboard",
    "matplotlib": "matplotlib", "pocketsphinx": "pocketsphinx", "jiwer": "jiwer", "librosa": "librosa",
    "webrtcvad-wheels": "webrtcvad", "diffusers": "diffusers", "einops": "einops", "ray": "ray",
}
# the packages that setup.sh installs with --no-deps for the same stages
NO_DEPS_IMPORTS = ["resemblyzer", "pycocoevalcap", "speechtokenizer"]


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0].lower()


def _tracked_package_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "anygpt"], cwd=REPO, capture_output=True, text=True, check=True)
        files = out.stdout.split()
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every file but caches
        files = [p.relative_to(REPO).as_posix() for p in (REPO / "anygpt").rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return [f for f in files if (REPO / f).is_file()]  # a file deleted in the work tree is not shipped


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    src = tmp_path_factory.mktemp("src")
    for name in ["pyproject.toml", "README.md", *_tracked_package_files()]:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "--disable-pip-version-check", "-q", "-w", str(out), str(src)], check=True)
    (path,) = out.glob("anygpt-*.whl")
    return zipfile.ZipFile(path)


@pytest.fixture(scope="module")
def metadata(wheel) -> email.message.Message:
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return email.message_from_bytes(wheel.read(name))


def test_wheel_holds_every_tracked_file_of_the_package(wheel):
    inside = set(wheel.namelist())
    missing = [f for f in _tracked_package_files() if f not in inside]
    assert not missing, f"not in the wheel (add their kind to [tool.setuptools.package-data]): {missing}"


@pytest.mark.parametrize("pattern", SHIPPED)
def test_wheel_holds_the_shipped_data(wheel, pattern):
    import fnmatch

    tracked = [f for f in _tracked_package_files() if fnmatch.fnmatch(f, pattern) and not f.endswith(".py")]
    assert tracked, f"nothing tracked matches {pattern}: update SHIPPED to where the files moved"
    assert set(tracked) <= set(wheel.namelist())


def test_wheel_has_the_command(wheel):
    (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    assert "anygpt = anygpt.cli:main" in wheel.read(name).decode()


def test_extras_follow_the_stages(metadata):
    assert STAGES <= set(metadata.get_all("Provides-Extra"))
    core = [r for r in metadata.get_all("Requires-Dist") if "extra ==" not in r]
    torch = [r for r in core if _name(r) == "torch"]
    assert torch and "==" not in torch[0], f"torch is a range in the package; pins go to constraints.txt: {torch}"


def test_serve_brings_nothing_of_the_offline_world():
    extras = PYPROJECT["project"]["optional-dependencies"]
    core = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    serve = {_name(r) for r in extras["serve"]}
    world = {_name(r) for r in extras["data"]} - core
    assert "music21" in world
    assert not (serve | core) & world
    others = {_name(r) for stage in ("data", "train", "eval", "official", "ray") for r in extras[stage]} - {"anygpt"}
    assert not serve & (others - core)
    assert others - core <= set(OTHER_STAGES_IMPORTS), "name the import of each new requirement above"
    assert {_name(r) for r in extras["all"]} == {"anygpt"}


def test_chat_and_server_run_on_core_and_serve_alone(tmp_path):
    """`anygpt chat` on the tiny bundle and the server's app, with every other stage's packages hidden."""
    hidden = sorted(set(OTHER_STAGES_IMPORTS.values()) | set(NO_DEPS_IMPORTS))
    script = f"""
import importlib.abc, importlib.metadata, sys
HIDDEN = {hidden!r}
class Hide(importlib.abc.MetaPathFinder):
    def __init__(self, finders):
        self.finders = finders
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in HIDDEN:
            return None
        for finder in self.finders:
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                return spec
    def find_distributions(self, context=importlib.metadata.DistributionFinder.Context()):
        for finder in self.finders:
            for dist in getattr(finder, "find_distributions", lambda c: [])(context):
                if (dist.metadata["Name"] or "").lower() not in HIDDEN:
                    yield dist
sys.meta_path[:] = [Hide(list(sys.meta_path))]

from anygpt.cli import main
code = main(["chat", "--bundle", "tiny", "--text", "a red circle", "--want", "image", "--out", {str(tmp_path)!r},
             "--json"])
assert code == 0
from anygpt.bundles import load_bundle
from anygpt.serve.app import create_app
import uvicorn
create_app(load_bundle("debug"))
print("hidden modules:", sorted(m for m in sys.modules if m.split(".")[0] in HIDDEN))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert '"modality": "image"' in done.stdout
    assert "hidden modules: []" in done.stdout
