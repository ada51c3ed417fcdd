"""Build a bundle that runs the released AnyGPT models from their local folders.

The release's own layout (`models/` beside its code) is found by default; any part can be named
instead. The bundle directory holds only a manifest pointing at those folders: nothing is copied,
and the weights' sizes are recorded so that a changed or truncated file is noticed at load.

    models/anygpt/chat | models/anygpt/base     LLaMA-2 7B with the added tokens (HF folder)
    models/seed-tokenizer-2/seed_quantizer.pt    SEED-2 image tokenizer
    models/speechtokenizer/{config.json,ckpt.dev}
    models/soundstorm/speechtokenizer_soundstorm_mls.pt
    models/encodec_32khz/                        facebook/encodec_32khz (HF folder)
    models/stable-diffusion-2-1-unclip/          stabilityai/stable-diffusion-2-1-unclip (diffusers folder)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

from anygpt.bundles.bundle import BUNDLE_FORMAT, MANIFEST
from anygpt.bundles.files import weight_files
from anygpt.errors import AnyGPTError, BundleError, LayoutError
from anygpt.generate.config import preset
from anygpt.layout import VocabLayout, official_layout_config
from anygpt.model import load_tokenizer
from anygpt.prompts import load_format

RELEASE_LAYOUT = {
    "seed": "seed-tokenizer-2/seed_quantizer.pt",
    "speechtokenizer": "speechtokenizer",
    "soundstorm": "soundstorm/speechtokenizer_soundstorm_mls.pt",
    "encodec": "encodec_32khz",
    "unclip": "stable-diffusion-2-1-unclip",
}
MUSIC_INPUT_SECONDS = 5.0  # the released models saw 5 s music clips


@dataclass
class OfficialPaths:
    llm: Path
    seed: Path | None = None
    speechtokenizer: Path | None = None  # folder with config.json and ckpt.dev
    soundstorm: Path | None = None
    encodec: Path | None = None
    unclip: Path | None = None


def find_paths(models: Path | None, *, model: str = "chat", **given: Path | None) -> OfficialPaths:
    """Paths from the release's layout under `models`, each overridable; absent parts are None."""
    if model not in ("chat", "base"):
        raise AnyGPTError(f"--model must be chat or base, not {model!r}")
    found: dict[str, Path | None] = {}
    for f in fields(OfficialPaths):
        path = given.get(f.name)
        if path is None and models is not None:
            rel = f"anygpt/{model}" if f.name == "llm" else RELEASE_LAYOUT[f.name]
            path = models / rel if (models / rel).exists() else None
        found[f.name] = Path(path).resolve() if path is not None else None
    if found["llm"] is None:
        where = f"{models}/anygpt/{model}" if models is not None else "--llm"
        raise BundleError(f"no language model folder found (looked for {where})")
    for name, path in found.items():
        if path is not None and not path.exists():
            raise BundleError(f"{name}: {path} does not exist")
    return OfficialPaths(**found)


def check_tokenizer(tokenizer) -> tuple[VocabLayout, bool]:
    """The official layout of this tokenizer, and whether it is the chat model's (with <-Ins->/<-Res->).
    Raises LayoutError listing mismatches when its added tokens are not the official ones."""
    chat = "<-Ins->" in tokenizer.get_vocab()
    return VocabLayout.from_tokenizer(official_layout_config(chat_extras=chat), tokenizer), chat


def import_official(paths: OfficialPaths, out: Path, *, prompt_format: str | None = None,
                    decoding: str = "paper", codec_overrides: dict[str, dict] | None = None) -> tuple[Path, list[str]]:
    """Write a bundle manifest for the official models; returns the folder and notes for the user."""
    if (out / MANIFEST).exists() or (out.exists() and any(out.iterdir())):
        raise AnyGPTError(f"{out}: exists and is not empty; choose a new directory")
    if not (paths.llm / "config.json").is_file():
        raise BundleError(f"{paths.llm}: no config.json, not a Hugging Face model folder")
    tokenizer = load_tokenizer(paths.llm)
    try:
        layout, chat = check_tokenizer(tokenizer)
    except LayoutError as e:
        raise LayoutError(f"{paths.llm}: the tokenizer does not hold the official AnyGPT tokens: {e}") from None
    fmt = load_format(prompt_format or ("mmgpt" if chat else "base"))
    notes = [f"{'chat' if chat else 'base'} model: {len(tokenizer):,} tokens, official layout from id "
             f"{layout.base_vocab_size}; prompt format {fmt.name}"]

    codecs, external = {}, {}
    p = paths
    if p.seed is not None:
        cfg = {"path": str(p.seed)}
        if p.unclip is not None:
            cfg["unclip_path"] = str(p.unclip)
        else:
            notes.append("no unCLIP folder: images can be read but not drawn (give --unclip)")
        codecs["image"] = {"name": "seed2", "config": cfg}
    if p.speechtokenizer is not None:
        st = p.speechtokenizer
        cfg = {"config_path": str(st / "config.json"), "ckpt_path": str(st / "ckpt.dev")}
        if p.soundstorm is not None:
            cfg["soundstorm_path"] = str(p.soundstorm)
        else:
            cfg["soundstorm_config"] = None
            notes.append("no SoundStorm checkpoint: speech can be read but not spoken (give --soundstorm)")
        codecs["speech"] = {"name": "speechtokenizer", "config": cfg}
    if p.encodec is not None:
        codecs["music"] = {"name": "encodec-32khz", "config": {"path": str(p.encodec), "max_seconds": MUSIC_INPUT_SECONDS}}
    for modality in ("image", "speech", "music"):
        if modality not in codecs:
            notes.append(f"no {modality} codec: {modality} inputs and outputs are unavailable")
    for modality, extra in (codec_overrides or {}).items():
        if modality not in codecs:
            raise AnyGPTError(f"--codec-config names {modality}, which has no codec in this bundle")
        codecs[modality]["config"].update(extra)
    for path in [p.llm, p.seed, p.speechtokenizer, p.soundstorm, p.encodec, p.unclip]:
        external.update(weight_files(path))

    manifest = {
        "anygpt_bundle": BUNDLE_FORMAT,
        "name": f"anygpt-{'chat' if chat else 'base'}",
        "description": f"The released AnyGPT-{'chat' if chat else 'base'} model with its tokenizers, from local folders.",
        "llm": {"path": str(p.llm)},
        "tokenizer": {"path": str(p.llm)},
        "layout": {**layout.config.to_dict(), "base_vocab_size": layout.base_vocab_size},
        "prompt_format": fmt.name,
        "decoding": preset(decoding).to_dict(),
        "codecs": codecs,
        "external_files": external,
        "files": {},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out, notes


