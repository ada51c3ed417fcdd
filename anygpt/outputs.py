"""The one safe writer for result files: never half a file, never through a symlink, never over an
earlier result unless asked.

    write_file(path, fill, existing=...)
        fill(f) writes into a temporary file beside `path` (flushed and synced), which then becomes
        the result in one step:
            "number"   the first free name of path, stem-2.ext, stem-3.ext, ...  (os.link: never
                       replaces anything, a dangling or planted symlink included)
            "refuse"   path itself, or an error when it exists
            "replace"  os.replace: the name is swapped atomically; a symlink there is replaced, not
                       followed
        on any failure (a full disk, a read-only folder) the temporary file is removed: nothing half
        written is left behind.
    check_out_dir(path)
        before any work: `--out` is (or can become) a folder this process can write in.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from anygpt.errors import AnyGPTError

EXISTING = ("number", "refuse", "replace")
MAX_NUMBER = 10_000


def check_out_dir(path: str | Path) -> Path:
    """`path` is a writable folder, or the nearest existing folder above it is (it is made on first write)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise AnyGPTError(f"--out {path}: exists and is not a folder")
    probe = path
    while not probe.exists():
        if probe.is_symlink():
            raise AnyGPTError(f"--out {path}: {probe} is a dangling symlink")
        probe = probe.parent
    if not probe.is_dir():
        raise AnyGPTError(f"--out {path}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise AnyGPTError(f"--out {path}: {probe} is not writable")
    return path


def write_file(path: str | Path, fill: Callable[[BinaryIO], None], *, existing: str = "refuse") -> Path:
    """Write a result file as the module docstring says; returns the name it got."""
    if existing not in EXISTING:
        raise ValueError(f"existing must be one of {EXISTING}, got {existing!r}")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise AnyGPTError(f"{path}: cannot write here ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        if existing == "replace":
            os.replace(tmp, path)
            return path
        for n in range(1, MAX_NUMBER):
            candidate = path if n == 1 else path.with_name(f"{path.stem}-{n}{path.suffix}")
            try:
                _link_new(tmp, candidate)
                return candidate
            except FileExistsError:
                if existing == "refuse":
                    raise AnyGPTError(f"{path}: exists; refusing to overwrite it") from None
        raise AnyGPTError(f"{path}: {MAX_NUMBER} numbered files exist already; choose another --out")
    except OSError as e:
        raise AnyGPTError(f"{path}: cannot write ({e.strerror or e})") from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def _link_new(tmp: str, target: Path) -> None:
    """Give the finished temporary file the name `target`, which must not exist (not even as a symlink)."""
    try:
        os.link(tmp, target)
        return
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
    # a filesystem without hard links: create the name exclusively (O_EXCL never follows a symlink)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    out = os.open(target, flags, 0o644)
    try:
        with os.fdopen(out, "wb") as dst, open(tmp, "rb") as src:
            while block := src.read(1 << 20):
                dst.write(block)
            dst.flush()
            os.fsync(dst.fileno())
    except BaseException:
        os.unlink(target)
        raise
