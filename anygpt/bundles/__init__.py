"""Bundles: one directory that says everything needed to run a model (see bundle.py).

    bundle.py      the Bundle and its codec slots
    load.py        load_bundle / save_bundle: a name or directory <-> a Bundle, the manifest
    files.py       hashes and paths of a bundle's files
    debug.py       the random tiny bundle built in memory (`debug`)
    official.py    a bundle of the released AnyGPT models from local folders
    tiny_init.py   the untrained tiny bundle that `anygpt train` starts from; shipping the trained one
    tiny/          the shipped tiny bundle (`tiny`)
    command.py     `anygpt info` and `anygpt bundle ...`

The names of bundle.py are importable from here; they load on first use, so that a light module
(a command's parser, `default_bundle`) can import this package without loading torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

DEFAULT_BUNDLE = "tiny"  # what every command runs when no --bundle is given (read at parser build time)


def default_bundle() -> str:
    """The bundle commands use without --bundle (read when their parsers are built)."""
    return DEFAULT_BUNDLE


_BUNDLE_NAMES = ("BUNDLE_FORMAT", "MANIFEST", "Bundle", "CodecSlot")
_LOAD_NAMES = ("CODECS_ONLY", "bundle_names", "load_bundle", "load_codec_slots", "packaged_bundles", "read_manifest",
               "save_bundle", "verify_files", "write_manifest")
_FILES_NAMES = ("check_files", "resolve", "sha256")
__all__ = ["DEFAULT_BUNDLE", "default_bundle", "BUNDLE_FORMAT", "CODECS_ONLY", "MANIFEST", "Bundle", "CodecSlot",
           "bundle_names", "load_bundle", "load_codec_slots", "packaged_bundles", "read_manifest", "save_bundle",
           "verify_files", "write_manifest", "check_files", "resolve", "sha256"]


def __getattr__(name: str):
    if name in _BUNDLE_NAMES:
        module = "anygpt.bundles.bundle"
    elif name in _LOAD_NAMES:
        module = "anygpt.bundles.load"
    elif name in _FILES_NAMES:
        module = "anygpt.bundles.files"
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups (and monkeypatch's) find it directly
    return value


if TYPE_CHECKING:
    from anygpt.bundles.bundle import BUNDLE_FORMAT, MANIFEST, Bundle, CodecSlot
    from anygpt.bundles.load import (CODECS_ONLY, bundle_names, load_bundle, load_codec_slots, packaged_bundles,
                                     read_manifest, save_bundle, verify_files, write_manifest)
    from anygpt.bundles.files import check_files, resolve, sha256
