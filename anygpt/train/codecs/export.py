"""A trained small codec's export directory, loadable through the registry (and a bundle's CodecSlot),
and shipping exports into a bundle's codecs/ folder.

    EXPORT/codec.json            {"name", "modality", "config", "weights", "dtype"}
    EXPORT/weights.safetensors   the persistent state dict (float16 by default)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from torch import nn

import anygpt.codecs.small.audio
import anygpt.codecs.small.image  # noqa: F401  (register small-speech, small-music, small-image)
from anygpt.codecs.base import build_codec
from anygpt.train.checkpoint import atomic_write, write_text

EXPORT = "export"
CODEC_JSON = "codec.json"
WEIGHTS = "weights.safetensors"


def export_codec(codec: nn.Module, name: str, out: str | Path, dtype: str = "float16") -> Path:
    """Write OUT/codec.json and OUT/weights.safetensors (the persistent state dict, cast to `dtype`:
    float16 halves the size; loading casts back to the codec's float32)."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cast = {"float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    state = {k: (v.to(cast) if v.is_floating_point() else v).contiguous() for k, v in codec.state_dict().items()}
    atomic_write(out / WEIGHTS, lambda tmp: save_file(state, str(tmp), metadata={"codec": name}))
    manifest = {"name": name, "modality": codec.modality, "config": codec.config(), "weights": WEIGHTS,
                "dtype": dtype}
    write_text(out / CODEC_JSON, json.dumps(manifest, indent=2) + "\n")
    return out


def load_codec_dir(path: str | Path):
    """A directory written by export_codec -> the codec, built through the registry, weights loaded."""
    from safetensors.torch import load_file

    path = Path(path)
    manifest = json.loads((path / CODEC_JSON).read_text(encoding="utf-8"))
    codec = build_codec(manifest["name"], manifest["config"])
    codec.load_state_dict(load_file(str(path / manifest.get("weights", WEIGHTS))), strict=True)
    return codec.eval()


def ship_codecs(exports: dict[str, str | Path], bundle_dir: str | Path, base: str | Path | None = None) -> Path:
    """Copy trained exports {modality: export dir} into BUNDLE/codecs/<modality>.safetensors and write
    BUNDLE/codecs/codecs.json ({modality: {name, config, weights}}, the codecs section of a manifest).
    `base`: a bundle directory whose shipped codecs (its codecs/codecs.json) fill the modalities not in
    `exports` (a codecs-only bundle to evaluate one new codec beside the others).
    Returns the codecs directory. Each export is loaded first, so a broken one is refused."""
    codecs_dir = Path(bundle_dir) / "codecs"
    codecs_dir.mkdir(parents=True, exist_ok=True)
    entries = {}
    if base is not None:
        shipped = json.loads((Path(base) / "codecs" / "codecs.json").read_text(encoding="utf-8"))
        for modality, entry in shipped.items():
            if modality not in exports:
                source, target = Path(base) / entry["weights"], Path(bundle_dir) / entry["weights"]
                if not (target.exists() and source.samefile(target)):  # base may be the bundle itself
                    shutil.copyfile(source, target)
                entries[modality] = entry
    for modality, export in exports.items():
        export = Path(export)
        manifest = json.loads((export / CODEC_JSON).read_text(encoding="utf-8"))
        codec = load_codec_dir(export)
        if codec.modality != modality:
            raise ValueError(f"{export}: a {codec.modality} codec, not {modality}")
        rel = f"codecs/{modality}.safetensors"
        shutil.copyfile(export / manifest.get("weights", WEIGHTS), Path(bundle_dir) / rel)
        entries[modality] = {"name": manifest["name"], "config": manifest["config"], "weights": rel}
    write_text(codecs_dir / "codecs.json", json.dumps(entries, indent=2) + "\n")
    return codecs_dir
