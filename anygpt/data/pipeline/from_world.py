"""An offline world (`anygpt data world`) -> the raw records `anygpt data tokenize` reads, plus the
mixture files that train on them.

    DIR/<split>/image_pairs.jsonl     {"id": "images-0000003/caption0", "image": "media/images/images-0000003.png",
                                       "text": "<caption 0>"}
    DIR/<split>/speech_pairs.jsonl    {"id": "speech-0000001/transcript", "speech": "media/speech/....wav", "text": ...}
    DIR/<split>/music_pairs.jsonl     {"id": "music-0000002/caption0", "music": "media/music/....wav", "text": ...}
    DIR/<split>/chats.jsonl           {"id": "conversations-0000004/chat", "messages": [...], "spoken_user_turns": [0]}
    DIR/<split>/media/<kind>/...      PNG and WAV files, the world's bytes as stored (music cropped on request)
    DIR/pretrain.toml, DIR/pretrain_<split>.toml, DIR/instruct.toml, DIR/instruct_<split>.toml
    DIR/summary.json                  the export settings and the record count of every file

Choices (the record formats are in records.py):
- Pairs carry one caption each: the item's first caption by default (the world's canonical one);
  `captions="all"` adds one record per further caption, sharing the same media file (tokenize then
  encodes that image once per caption). Both directions (media -> text, text -> media) are made
  later, by the mixture (`to_text`), not here.
- Chats: one record per conversation. Each user turn that has a spoken version is given as speech
  with probability `spoken_prob` (0.5: the paper's voice-chat data beside text chats), drawn from
  an RNG seeded by (seed, conversation id), one draw per user turn whatever the others: the same
  settings always give the same records. Spoken, the turn's text segments become one speech segment
  at the place of the first; its images and music stay. An assistant speech segment is written as
  its speech file alone (the reply the model must produce is the voice).
- Resumable: every file is written to a temporary name and renamed; a `.jsonl` that exists is
  complete and kept (its media were written before it). Different settings in an existing DIR
  are refused rather than mixed with the old files.
- Mixture paths are relative to the .toml (MixConfig.from_toml), which sits in DIR, so the export
  can be moved. They name unit shard folders DIR/units/<split>/<file stem>, made by the printed
  `anygpt data tokenize` commands. The train split's mixture holds out `val_fraction` by key hash
  (what `anygpt train` evaluates on by default); `<stage>_<split>.toml` makes the world's own
  validation (or test) split into samples in one pass, every pair once in each direction (each
  pair file is listed twice, with to_text 1 and 0); pack its `train` folder and give it as
  `val_data`.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from anygpt.world import KINDS, MODALITY_KINDS, decode_wav, iter_rows, load_manifest, modality_of, wav_bytes
from anygpt.errors import AnyGPTError

SUMMARY = "summary.json"
PAIR_FILES = {kind: f"{modality}_pairs" for modality, kind in MODALITY_KINDS.items()}  # kind -> file stem
CHAT_FILE = "chats"
SUFFIX = {"image": "png", "speech": "wav", "music": "wav"}


@dataclass
class FromWorldConfig:
    world: str
    out: str
    splits: list[str] = field(default_factory=lambda: ["train", "validation"])
    kinds: list[str] = field(default_factory=list)  # [] : every kind the world holds
    max_music_seconds: float = 0.0  # 0: whole clips; else crop every music file to its first S seconds
    captions: str = "first"  # "first" or "all" (one pair record per caption)
    spoken_prob: float = 0.5  # P(a user turn is given as its spoken version)
    seed: int = 0

    def __post_init__(self):
        if self.captions not in ("first", "all"):
            raise AnyGPTError(f"captions must be 'first' or 'all', got {self.captions!r}")
        if not 0.0 <= self.spoken_prob <= 1.0 or self.max_music_seconds < 0:
            raise AnyGPTError("spoken_prob must be in [0, 1] and max_music_seconds >= 0")


# --- small atomic writers ----------------------------------------------------------------------

def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _atomic_text(path: Path, text: str) -> None:
    _atomic_bytes(path, text.encode("utf-8"))


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)


class _MediaWriter:
    """Writes media files under DIR/<split>/media/<folder>/ and returns paths relative to DIR/<split>."""

    def __init__(self, split_dir: Path, max_music_seconds: float):
        self.split_dir, self.max_music_seconds = split_dir, max_music_seconds

    def put(self, folder: str, name: str, modality: str, data: bytes) -> str:
        if modality == "music" and self.max_music_seconds:
            samples, rate = decode_wav(data)  # (T,)
            keep = round(self.max_music_seconds * rate)
            if keep < len(samples):
                data = wav_bytes(samples[:keep], rate)
        rel = Path("media") / folder / f"{name}.{SUFFIX[modality]}"
        path = self.split_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_bytes(path, data)
        return rel.as_posix()


# --- one function per output file --------------------------------------------------------------

def pair_records(world: Path, kind: str, split: str, out: _MediaWriter, captions: str) -> list[dict]:
    """One record per item (speech: its transcript; images, music: caption 0, or every caption)."""
    key = modality_of(kind)  # the record's media key
    records = []
    for row in iter_rows(world, kind, split):
        path = out.put(kind, row["id"], key, row["image"] if kind == "images" else row["audio"])
        if kind == "speech":
            records.append({"id": f"{row['id']}/transcript", key: path, "text": row["text"]})
            continue
        texts = row["captions"] if captions == "all" else row["captions"][:1]
        records += [{"id": f"{row['id']}/caption{k}", key: path, "text": text} for k, text in enumerate(texts)]
    return records


def chat_record(row: dict, out: _MediaWriter, spoken_prob: float, seed: int) -> dict:
    """A world conversation (turns referencing media by ref) -> a chat record."""
    turns = json.loads(row["turns"])
    stored = {m["ref"]: m for m in row["media"]}
    rng = random.Random(f"{seed}:{row['id']}")

    def file(ref: str) -> dict:
        entry = stored[ref]
        return {entry["kind"]: out.put("conversations", f"{row['id']}_{ref}", entry["kind"], entry["data"])}

    messages, spoken_turns = [], []
    for i, turn in enumerate(turns):
        content = [{"text": s["text"]} if s["type"] == "text" else file(s["ref"]) for s in turn["content"]]
        if turn["role"] == "user":
            speak = rng.random() < spoken_prob  # drawn for every user turn: decisions stay independent
            texts = [j for j, s in enumerate(turn["content"]) if s["type"] == "text"]
            if speak and turn.get("spoken") and texts:
                content = [c for j, c in enumerate(content) if j not in texts]
                content.insert(texts[0], file(turn["spoken"]))
                spoken_turns.append(i)
        messages.append({"role": turn["role"], "content": content})
    return {"id": f"{row['id']}/chat", "messages": messages, "spoken_user_turns": spoken_turns}


# --- mixtures ----------------------------------------------------------------------------------

def _tokenize_lines(split: str, stems: list[str]) -> list[str]:
    return [f"anygpt data tokenize {split}/{s}.jsonl --out units/{split}/{s} --bundle BUNDLE" for s in stems]


def mixture_toml(stage: str, split: str, stems: list[str]) -> str:
    """A mixture over DIR/units/<split>/<stem> (paths relative to the .toml, which sits in DIR); in
    the instruct stage, pairs are rendered as task chat turns (style "task")."""
    style = ['style = "task"'] if stage == "instruct" else []
    lines = [f"# {stage} mixture over the world export's {split} split (written by `anygpt data from-world`).",
             "# Paths are relative to this file. Make the unit shards first, from this folder:"]
    lines += [f"#   {c}" for c in _tokenize_lines(split, stems)]
    if split == "train":
        lines += ["# then `anygpt train --set data=<this file>` (or `anygpt data mix`).",
                  "", "[mixture]", "seed = 0",
                  "budget_tokens = 0  # 0: one pass over every dataset; set one (--budget-tokens) to use the rates",
                  "val_fraction = 0.05  # held out by key hash: the trainer's default validation", ""]
        for s in stems:
            lines += ["[[datasets]]", f'name = "{s}"', f'units = "units/{split}/{s}"', "rate = 1.0"]
            lines += ["to_text = 0.5", *style, ""] if s != CHAT_FILE else [""]
        return "\n".join(lines)
    lines += [f"# then `anygpt data mix {stage}_{split}.toml --out MIX && anygpt data pack MIX/train --out VAL`",
              "# and train with `--set val_data=VAL`. One pass, every pair once in each direction.",
              "", "[mixture]", "seed = 0", "budget_tokens = 0", "val_fraction = 0.0", ""]
    for s in stems:
        if s == CHAT_FILE:
            lines += ["[[datasets]]", f'name = "{s}"', f'units = "units/{split}/{s}"', ""]
            continue
        for direction, to_text in (("to_text", 1.0), ("from_text", 0.0)):
            lines += ["[[datasets]]", f'name = "{s}_{direction}"', f'units = "units/{split}/{s}"',
                      f"to_text = {to_text}", *style, ""]
    return "\n".join(lines)


# --- the export --------------------------------------------------------------------------------

def _count_lines(path: Path) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def _settings(cfg: FromWorldConfig, manifest: dict) -> dict:
    """What decides the bytes written: compared with an existing export's before adding to it."""
    s = asdict(cfg)
    s.pop("out")
    s["world"] = str(Path(cfg.world).resolve())
    s["world_seed"], s["world_n"] = manifest.get("seed"), manifest.get("n")
    return s


def run_from_world(cfg: FromWorldConfig, *, quiet: bool = False) -> dict:
    """Write the export (see the module docstring); return the summary, also in DIR/summary.json."""
    world, out = Path(cfg.world), Path(cfg.out)
    manifest = load_manifest(world)
    held = [k for k in KINDS if k in manifest["kinds"]]
    kinds = [k for k in KINDS if k in (cfg.kinds or held)]
    missing = [k for k in kinds if k not in held] + [k for k in (cfg.kinds or []) if k not in KINDS]
    if missing:
        raise AnyGPTError(f"{world} has no {', '.join(missing)}: it holds {', '.join(held)}")
    for split in cfg.splits:
        for kind in kinds:
            if split not in manifest["kinds"][kind]["splits"]:
                raise AnyGPTError(f"{world}: no split {split!r} for {kind}")
    settings = _settings(cfg, manifest)
    summary_path = out / SUMMARY
    if summary_path.is_file():
        old = json.loads(summary_path.read_text(encoding="utf-8"))["settings"]
        changed = sorted(k for k in set(old) | set(settings)
                         if old.get(k) != settings.get(k) and k not in ("splits", "kinds"))
        if changed:
            raise AnyGPTError(f"{out} holds an export made with other settings ({', '.join(changed)}): "
                              "choose a new --out")
    else:  # settings first: files of a crashed first run are then checked like any others
        out.mkdir(parents=True, exist_ok=True)
        _atomic_text(summary_path, json.dumps({"settings": settings, "counts": {}}, indent=1, sort_keys=True) + "\n")

    counts: dict[str, dict[str, int]] = {}
    for split in cfg.splits:
        split_dir = out / split
        split_dir.mkdir(parents=True, exist_ok=True)
        writer = _MediaWriter(split_dir, cfg.max_music_seconds)
        counts[split] = {}
        for kind in kinds:
            stem = PAIR_FILES.get(kind, CHAT_FILE)
            path = split_dir / f"{stem}.jsonl"
            if path.is_file():
                counts[split][stem] = n = _count_lines(path)
                state = "kept"
            else:
                if kind == "conversations":
                    records = [chat_record(row, writer, cfg.spoken_prob, cfg.seed)
                               for row in iter_rows(world, kind, split)]
                else:
                    records = pair_records(world, kind, split, writer, cfg.captions)
                _atomic_text(path, _jsonl(records))  # last: an existing .jsonl means its media are there
                counts[split][stem] = n = len(records)
                state = "written"
            if not quiet:
                print(f"{split}/{stem}.jsonl  {n} records ({state})", flush=True)

    if summary_path.is_file():  # files of earlier runs (other splits or kinds) stay counted
        for split, files in json.loads(summary_path.read_text(encoding="utf-8")).get("counts", {}).items():
            for stem, n in files.items():
                counts.setdefault(split, {}).setdefault(stem, n)
    mixtures = []
    for split, files in sorted(counts.items()):
        pairs = [s for s in PAIR_FILES.values() if s in files]
        # instruction tuning: the conversations, and the pairs as the six evaluation tasks' chat turns
        instruct = [CHAT_FILE, *pairs] if CHAT_FILE in files else []
        for stage, stems in (("pretrain", pairs), ("instruct", instruct)):
            if stems:
                name = f"{stage}.toml" if split == "train" else f"{stage}_{split}.toml"
                _atomic_text(out / name, mixture_toml(stage, split, stems))
                mixtures.append(name)
    summary = {"settings": settings, "counts": counts, "mixtures": sorted(mixtures),
               "tokenize": [c for split, files in counts.items() for c in _tokenize_lines(split, sorted(files))]}
    _atomic_text(summary_path, json.dumps(summary, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    if not quiet:
        print(f"mixtures: {', '.join(sorted(mixtures))} (in {out}); make their unit shards from {out} with:")
        for c in summary["tokenize"]:
            print(f"  {c}")
    return summary
