"""Reading the release's SEED-2 weights into our module, strictly, with one-line errors.

    path = seed-tokenizer-2/                 a folder: seed_quantizer.pt, and eva_vit_g.pth if present
         | seed_quantizer.pt                 one checkpoint file (.pt/.pth via torch.load, or .safetensors)
         | [eva_vit_g.pth, seed_quantizer.pt]  several files, merged in order (later files win)

The release builds its model with EVA weights from LAVIS's `eva_vit_g.pth`, then loads
`seed_quantizer.pt` over it with strict=False; whether that file also holds the ViT is not verified
here, so both layouts work: a file whose keys are a bare ViT (`patch_embed.*`, `blocks.*`, ...)
is taken as the `visual_encoder`. Keys the release's module holds but inference never uses are
dropped by name (UNUSED); anything else that does not fit is an error naming the file.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from anygpt.errors import BundleError

WEIGHTS_NAME = "seed_quantizer.pt"  # the tokenizer's own checkpoint in AILab-CVC/seed-tokenizer-2
EVA_NAME = "eva_vit_g.pth"  # LAVIS's EVA ViT-g weights, which the release downloads separately

# Keys of the release's Blip2QformerQuantizer that encoding and decoding never read.
UNUSED = [
    re.compile(p)
    for p in (
        r"pos_embed",  # the `recon_s` branch (rebuilds Q-Former features during training) ...
        r"blocks\.\d+\..+",  # ... and its 4 ViT blocks
        r"Qformer\.bert\.embeddings\.position_ids",  # a buffer: arange(512)
        r"Qformer\.bert\.embeddings\.(word|position)_embeddings\..+",  # text path, deleted by the release
        r"Qformer\.bert\.encoder\.layer\.\d+\.(intermediate|output)\..+",  # text feed-forward, ditto
        r"Qformer\.cls\..+",  # BERT's LM head, ditto
        r"visual_encoder\.(norm|fc_norm|head)\..+",  # a classifier head an EVA file may carry
    )
]


def is_unused(key: str) -> bool:
    return any(p.fullmatch(key) for p in UNUSED)


def checkpoint_files(path: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """The files `path` names, in loading order."""
    if isinstance(path, (list, tuple)):
        files = [Path(p) for p in path]
        if not files:
            raise BundleError("seed2: `path` is an empty list of checkpoint files")
        for f in files:
            if not f.is_file():
                raise BundleError(f"{f}: no such checkpoint file")
        return files
    p = Path(path)
    if p.is_dir():
        main = p / WEIGHTS_NAME
        if not main.is_file():
            raise BundleError(f"{p}: no {WEIGHTS_NAME} in this folder (expected a seed-tokenizer-2 copy)")
        return ([p / EVA_NAME] if (p / EVA_NAME).is_file() else []) + [main]
    if p.is_file():
        return [p]
    raise BundleError(f"{p}: no such checkpoint file or folder")


def _reason(e: Exception) -> str:
    """The first line of an exception, without terminal colour codes, at most 160 characters."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
    return f"{type(e).__name__}: {(text.splitlines() or [''])[0][:160]}".rstrip(": ")


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from one file; never unpickles anything but tensors (weights_only)."""
    if path.stat().st_size == 0:
        raise BundleError(f"{path}: not a readable checkpoint (empty file)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(path)
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise BundleError(
            f"{path}: not a readable checkpoint (corrupt, or it pickles objects other than tensors, "
            "which are never unpickled here)"
        ) from None
    except Exception as e:  # noqa: BLE001 - any failure to read is the file's fault, said in one line
        raise BundleError(f"{path}: not a readable checkpoint ({_reason(e)})") from None
    if isinstance(obj, dict):
        for wrapper in ("model", "state_dict"):  # LAVIS/Lightning-style {"model": state_dict, ...}
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    if not isinstance(obj, dict) or not obj:
        raise BundleError(f"{path}: not a state dict (got {type(obj).__name__})")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise BundleError(f"{path}: not a state dict ({len(bad)} entries are not named tensors, e.g. {bad[0]!r})")
    if "patch_embed.proj.weight" in obj and not any(k.startswith("visual_encoder.") for k in obj):
        obj = {f"visual_encoder.{k}": v for k, v in obj.items()}  # a bare EVA ViT file
    return obj


def _names(keys: list[str], n: int = 3) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def load_checkpoint(model: nn.Module, files: list[Path]) -> None:
    """Load `files` into `model` (which may live on the meta device) or raise a one-line BundleError.

    Tensors are assigned, not copied: the model takes their storage (and dtype; cast afterwards).
    """
    expected = model.state_dict()
    merged: dict[str, tuple[torch.Tensor, Path]] = {}
    for f in files:
        for k, v in read_checkpoint(f).items():
            merged[k] = (v, f)
    where = ", ".join(str(f) for f in files)

    for f in files:
        unexpected = [k for k, (_, src) in merged.items() if src == f and k not in expected and not is_unused(k)]
        if unexpected:
            raise BundleError(
                f"{f}: holds {len(unexpected)} tensor(s) the seed2 model does not have: {_names(unexpected)}"
            )
    missing = [k for k in expected if k not in merged]
    if missing:
        hint = ""
        if all(k.startswith("visual_encoder.") for k in missing):
            hint = f"; the EVA ViT-g weights are missing: put {EVA_NAME} beside {WEIGHTS_NAME} or list it in `path`"
        raise BundleError(
            f"{where}: lacks {len(missing)} of the seed2 model's {len(expected)} tensors: {_names(missing)}{hint}"
        )
    for k, want in expected.items():
        got, src = merged[k]
        if got.shape != want.shape:
            raise BundleError(
                f"{src}: {k} has shape {tuple(got.shape)}, the seed2 model expects {tuple(want.shape)} "
                "(does the `config` match these weights?)"
            )
        if got.dtype.is_floating_point != want.dtype.is_floating_point:
            raise BundleError(f"{src}: {k} has dtype {got.dtype}, expected a {want.dtype} tensor")
    model.load_state_dict({k: merged[k][0] for k in expected}, strict=True, assign=True)
