"""Which files a bundle may read, and the checks they pass before anything is loaded.

One resolver (`resolve`) turns every path a manifest names into a file or folder, by these rules:

    "llm", "codecs/x.safetensors"   relative: must stay inside the bundle folder (symlinks followed,
                                    then checked), no "..", no absolute path in disguise
    "/models/anygpt/chat"           absolute: only an external folder of an imported release, and
                                    only when every weight file under it is recorded, with its size,
                                    in "external_files" (they are too large to hash at each load)

and `check_files` (run by every load and by `anygpt bundle verify`) requires of the bundle's own files:

    - every file under a named path has a sha256 in "files", and matches it (unless hashing is
      skipped with verify=False: then only their presence and coverage are checked)
    - no weights in a pickle format (.bin .pt .pth .ckpt .pkl): our bundles hold safetensors only
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from anygpt.errors import BundleError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".dev", ".ckpt")

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve(root: Path, rel, manifest: dict, *, what: str = "path") -> Path:
    """The file or folder a manifest names, confined to the bundle folder (or a recorded external one)."""
    if not isinstance(rel, str) or not rel.strip():
        raise BundleError(f"{root}: manifest {what} must be a non-empty string, got {rel!r:.60}")
    p = Path(rel)
    if p.is_absolute():
        if not _recorded_external(p, manifest):
            raise BundleError(f"{root}: manifest {what} {rel!r} is outside the bundle folder and its weights "
                              f"are not recorded in external_files")
        return p
    full = root / p
    if not full.resolve().is_relative_to(root.resolve()):
        raise BundleError(f"{root}: manifest {what} {rel!r} leaves the bundle folder")
    return full


def _recorded_external(p: Path, manifest: dict) -> bool:
    recorded = manifest.get("external_files") or {}
    if not isinstance(recorded, dict) or not any(Path(f) == p or Path(f).is_relative_to(p) for f in recorded):
        return False  # nothing recorded there: refused without looking (it may be "/")
    found = weight_files(p) if p.exists() else {}
    return bool(found) and all(f in recorded for f in found)


def named_paths(manifest: dict) -> dict[str, object]:
    """{what: path as written} for every path the manifest names."""
    out = {"llm path": manifest["llm"].get("path"), "tokenizer path": manifest["tokenizer"].get("path")}
    for modality, c in (manifest.get("codecs") or {}).items():
        if c.get("weights") is not None:
            out[f"{modality} codec weights"] = c["weights"]
    return out


def check_files(root: Path, manifest: dict, *, hashes: bool = True) -> int:
    """Check the bundle's files as the module docstring says; returns how many files were checked."""
    _check_external(root, manifest)
    files = manifest.get("files") or {}
    for rel, digest in files.items():
        f = resolve(root, rel, manifest, what="file")
        if Path(rel).is_absolute():
            raise BundleError(f"{root}: hashed file {rel!r} must be inside the bundle folder")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise BundleError(f"{root}: the hash of {rel} is not a sha256 hex digest")
        if not f.is_file():
            raise BundleError(f"{root}: missing file {rel} listed in the manifest")
        if hashes and sha256(f) != digest:
            raise BundleError(f"{root}: {rel} does not match its hash in the manifest (corrupt or changed)")
    hashed = {(root / rel).resolve() for rel in files}
    for what, rel in named_paths(manifest).items():
        p = resolve(root, rel, manifest, what=what)
        if Path(rel).is_absolute():
            continue
        if not p.exists():
            raise BundleError(f"{root}: the {what} {rel!r} does not exist")
        inside = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
        if not inside:
            raise BundleError(f"{root}: the {what} {rel!r} is an empty folder")
        for f in inside:
            name = f.relative_to(root).as_posix() if f.is_relative_to(root) else str(f)
            if f.suffix in PICKLE_SUFFIXES:
                raise BundleError(f"{root}: {name} is a pickle file; bundles hold weights as safetensors only")
            if f.resolve() not in hashed:
                raise BundleError(f"{root}: {name} has no hash in the manifest (every file of a bundle must)")
    return len(files)


def _check_external(root: Path, manifest: dict) -> None:
    """External weights (an imported release's folders) against their recorded sizes."""
    external = manifest.get("external_files") or {}
    if not isinstance(external, dict):
        raise BundleError(f"{root}: manifest external_files must be an object of path: size")
    for name, size in external.items():
        f = Path(name)
        if not f.is_absolute():
            raise BundleError(f"{root}: external file {name!r} must be an absolute path")
        if not isinstance(size, int) or isinstance(size, bool):
            raise BundleError(f"{root}: the recorded size of {name} is not an integer")
        if not f.is_file():
            raise BundleError(f"{root}: missing {f} (named by the manifest)")
        if f.stat().st_size != size:
            raise BundleError(f"{root}: {f} changed size since the bundle was made ({f.stat().st_size} != {size} bytes)")

def weight_files(path: Path | None) -> dict[str, int]:
    """Weight files under a component path -> their sizes (a cheap check that nothing changed)."""
    if path is None:
        return {}
    files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.suffix in WEIGHT_SUFFIXES)
    return {str(f): f.stat().st_size for f in files}
