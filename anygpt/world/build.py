"""Build a world: plan units of work, run them over a process pool, write shards and a manifest.

A unit is one item (images, speech, conversations) or one rendering cut into several music clips.
`imap` returns results in unit order whatever the number of workers, and each unit seeds its own
RNG from (seed, kind, index), so the shards do not depend on --workers.
"""

import json
import multiprocessing
import shutil
import subprocess
from pathlib import Path

from anygpt.world import items, music, speech, splits, tables
from anygpt.world.config import GENERATOR_VERSION, KINDS, WorldConfig
from anygpt.world.writer import ShardWriter, describe_schema
from anygpt.errors import AnyGPTError

MANIFEST = "manifest.json"
PARTIAL = ".partial"  # shards are written here first and moved into place when all are done
CHUNKSIZE = {"images": 32, "speech": 4, "music": 1, "conversations": 1}  # fewer round trips for quick units
NEEDS = {"images": (), "speech": ("flite",), "music": ("fluidsynth",), "conversations": ("flite", "fluidsynth")}


def check_tools(kinds: tuple[str, ...], soundfont: str | None) -> str | None:
    """Fail early, with what to install, rather than in a worker; return the soundfont path."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise AnyGPTError("pyarrow is not installed: install it with `pip install pyarrow`") from None
    needed = {tool for kind in kinds for tool in NEEDS[kind]}
    if "flite" in needed:
        speech.check_tools()
    if "fluidsynth" in needed:
        return music.check_tools(soundfont)
    return None


def plan(config: WorldConfig, kind: str) -> list[tuple[int, str]]:
    """(unit index, split) for every unit of a kind; music units are groups of clips."""
    units = config.n if kind != "music" else -(-config.n // config.clips_per_render)
    return list(enumerate(splits.assign(config.seed, kind, units)))


def run_unit(task: tuple) -> list[dict]:
    config, soundfont, kind, unit, split = task
    if kind == "images":
        return items.image_rows(config, unit, split)
    if kind == "speech":
        return items.speech_rows(config, unit, split)
    if kind == "music":
        return items.music_rows(config, unit, split, soundfont)
    return items.conversation_rows(config, unit, split, soundfont)


def build(out: Path, config: WorldConfig, workers: int = 1, progress: bool = True) -> dict:
    """Generate every kind in config.kinds into `out`; returns the manifest."""
    unknown = sorted(set(config.kinds) - set(KINDS))
    if unknown:
        raise AnyGPTError(f"unknown kinds {unknown}: choose from {', '.join(KINDS)}")
    soundfont = check_tools(config.kinds, config.soundfont)
    staging = _prepare(out)
    summary = {}
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    try:
        for kind in config.kinds:
            summary[kind] = _build_kind(staging, config, soundfont, kind, pool, progress)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    for kind in config.kinds:
        if (staging / kind).exists():
            (staging / kind).rename(out / kind)
    staging.rmdir()
    manifest = _manifest(config, soundfont, summary)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def _build_kind(staging: Path, config: WorldConfig, soundfont: str | None, kind: str, pool, progress: bool) -> dict:
    from tqdm import tqdm

    writers = {split: ShardWriter(staging, kind, split) for split in splits.SPLITS}
    tasks = [(config, soundfont, kind, unit, split) for unit, split in plan(config, kind)]
    results = pool.imap(run_unit, tasks, chunksize=CHUNKSIZE[kind]) if pool else map(run_unit, tasks)
    pieces = {split: set() for split in splits.SPLITS}
    with tqdm(total=config.n, desc=f"world {kind}", unit="item", disable=not progress) as bar:
        for rows in results:
            for row in rows:
                writers[row["split"]].add(row)
                if kind == "music":
                    pieces[row["split"]].add(row["piece_id"])
            bar.update(len(rows))
    shards = {split: writer.close() for split, writer in writers.items()}
    entry = {"columns": describe_schema(kind),
             "splits": {split: {"rows": sum(s["rows"] for s in shards[split]), "shards": shards[split]}
                        for split in splits.SPLITS}}
    if kind == "music":
        entry["pieces"] = {split: sorted(ids) for split, ids in pieces.items() if split != "train"}
        entry["pieces"]["train_count"] = len(pieces["train"])
    return entry


def _prepare(out: Path) -> Path:
    """Make `out` ready: new, empty, or an earlier world (replaced). Returns the staging folder."""
    ours = {MANIFEST, PARTIAL, *KINDS}
    try:
        out.mkdir(parents=True, exist_ok=True)
        strangers = sorted(p.name for p in out.iterdir() if p.name not in ours)
        if strangers:
            raise AnyGPTError(f"{out} holds other files ({', '.join(strangers[:3])}): "
                              "give --out an empty or new folder, or an earlier world to replace")
        for name in ours:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        staging = out / PARTIAL
        staging.mkdir()
        (staging / "probe").write_bytes(b"")
        (staging / "probe").unlink()
    except OSError as error:
        raise AnyGPTError(f"cannot write to {out}: {error.strerror or error}") from None
    return staging


def _manifest(config: WorldConfig, soundfont: str | None, summary: dict) -> dict:
    scene_table = tables.load("scenes")
    return {
        "format": "anygpt-world",
        "generator_version": GENERATOR_VERSION,
        "schema_doc": "anygpt/world/README.md",
        "seed": config.seed,
        "n": config.n,
        "image_size": config.image_size,
        "clip_seconds": config.clip_seconds,
        "clips_per_render": config.clips_per_render,
        "sample_rates": {"speech": speech.sample_rate(), "music": music.sample_rate()},
        "split_fractions": {"train": 1 - sum(splits.FRACTIONS.values()), **splits.FRACTIONS},
        "counts": {kind: {split: entry["splits"][split]["rows"] for split in splits.SPLITS}
                   for kind, entry in summary.items()},
        "kinds": summary,
        "held_out": {
            "colour_shape": scene_table["held_out_colour_shape"],
            "images": "held-out colour-shape pairs appear only in test (every other test image and "
                      "conversation), never in train or validation pictures, captions or questions",
            "speech": "speakers shared by all splits; sentences split by a hash of their text",
            "music": "whole pieces split by a hash of their id (see kinds.music.pieces)",
            "conversations": "same rules for the media and sentences they contain",
        },
        "speakers": [s["id"] for s in speech.speakers()],
        "instruments": [i["name"] for i in music.music_table()["instruments"]],
        "shapes": sorted(scene_table["shapes"]),
        "colours": sorted(scene_table["colours"]),
        "tools": _tool_versions(config.kinds, soundfont),
    }


def _tool_versions(kinds: tuple[str, ...], soundfont: str | None) -> dict:
    """Versions that change the bytes: recorded so a difference between machines can be explained."""
    import numpy
    import PIL
    import pyarrow

    versions = {"pyarrow": pyarrow.__version__, "pillow": PIL.__version__, "numpy": numpy.__version__}
    needed = {tool for kind in kinds for tool in NEEDS[kind]}
    if "flite" in needed:
        import soxr

        versions["flite"] = _version_line(["flite", "--version"])
        versions["soxr"] = soxr.__version__
    if "fluidsynth" in needed:
        import music21

        versions["fluidsynth"] = _version_line(["fluidsynth", "--version"])
        versions["music21"] = music21.__version__
        versions["soundfont"] = Path(soundfont).name if soundfont else None
    return versions


def _version_line(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line.strip() for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    return next((line for line in lines if "version" in line.lower()), lines[0] if lines else "")
