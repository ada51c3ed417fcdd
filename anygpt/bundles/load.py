"""Loading and saving bundles: a built-in name or a directory -> a Bundle (hashes checked), a Bundle ->
a directory with its manifest. The Bundle and its codec slots are in bundle.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from safetensors.torch import save_file

from anygpt.bundles import debug
from anygpt.bundles.bundle import BUNDLE_FORMAT, MANIFEST, Bundle, CodecSlot
from anygpt.bundles.files import check_files, resolve, sha256
from anygpt.errors import AnyGPTError, BundleError
from anygpt.generate.config import DecodingConfig
from anygpt.layout import LayoutConfig, VocabLayout
from anygpt.llama import load_llama
from anygpt.model import load_causal_lm, load_tokenizer, resolve_device, resolve_dtype
from anygpt.prompts import load_format


# --- built-in presets ----------------------------------------------------------------------------

def _builtins() -> dict[str, Callable[[], Bundle]]:
    return {"debug": debug.build_debug_bundle}


def bundle_names() -> list[str]:
    return sorted(_builtins())


def load_bundle(name_or_path: str | Path, *, device: str = "cpu", dtype: str | None = None,
                verify: bool = True) -> Bundle:
    """A built-in bundle by name, or a bundle directory (hashes checked unless `verify=False`)."""
    resolve_device(device)
    builtins = _builtins()
    if str(name_or_path) in builtins:
        bundle = builtins[str(name_or_path)]()
        bundle.model.to(device)
        return bundle
    path = packaged_bundles().get(str(name_or_path), Path(name_or_path))
    if not (path / MANIFEST).is_file():
        if (path / CODECS_ONLY).is_file():
            raise BundleError(f"bundle {str(name_or_path)!r} holds its codecs only, no trained LLM yet: "
                              f"`anygpt eval codecs --bundle {name_or_path}` works; chat and generation do not")
        raise _unknown(name_or_path, MANIFEST)
    return _load_dir(path, device=device, dtype=dtype, verify=verify)


def _load_dir(path: Path, *, device: str, dtype: str | None, verify: bool) -> Bundle:
    manifest = read_manifest(path)
    check_files(path, manifest, hashes=verify)
    prompt_format = load_format(manifest["prompt_format"])
    decoding = _manifest_part(path, "decoding", DecodingConfig.from_dict, manifest.get("decoding", {}))
    layout_config = _manifest_part(path, "layout", LayoutConfig.from_dict, manifest["layout"])
    tokenizer = load_tokenizer(resolve(path, manifest["tokenizer"]["path"], manifest, what="tokenizer path"))
    layout = _manifest_part(path, "layout", lambda c: VocabLayout(c, manifest["layout"]["base_vocab_size"]),
                            layout_config)
    layout.verify(tokenizer)
    llm = manifest["llm"]["path"]
    llm_path = resolve(path, llm, manifest, what="llm path")
    # weights stored in half precision to stay small say which precision to run them in
    dtype = dtype or manifest["llm"].get("load_dtype")

    def load_model():
        return load_causal_lm(llm_path, device=device, dtype=dtype, safetensors_only=not Path(llm).is_absolute())

    light = load_llama(llm_path, device=device, dtype=resolve_dtype(dtype))  # None: not a plain Llama
    model = load_model() if light is None else None
    rows = (light if light is not None else model).get_input_embeddings().weight.shape[0]
    if rows < layout.vocab_size:
        raise BundleError(f"{path}: the model has {rows} embedding rows, the layout needs {layout.vocab_size}")
    return Bundle(
        name=manifest["name"], model=model, tokenizer=tokenizer, layout=layout, prompt_format=prompt_format,
        decoding=decoding, codecs=_codec_slots(path, manifest.get("codecs", {}), manifest, device),
        description=manifest.get("description", ""), path=path, extra=manifest.get("extra", {}),
        light=light, load_model=load_model,
    )


def _manifest_part(path: Path, key: str, build, value):
    """build(value), with a wrong-typed or out-of-range manifest entry as one BundleError."""
    try:
        return build(value)
    except BundleError:
        raise
    except (AnyGPTError, TypeError, ValueError, KeyError, AttributeError) as e:
        raise BundleError(f"{path / MANIFEST}: bad {key!r} ({e})") from None


def _codec_slots(path: Path, entries: dict, manifest: dict, device: str) -> dict[str, CodecSlot]:
    slots = {}
    for modality, c in entries.items():
        weights = None
        if c.get("weights") is not None:
            weights = resolve(path, c["weights"], manifest, what=f"{modality} codec weights")
            if weights.suffix != ".safetensors":
                raise BundleError(f"{path}: {modality} codec weights {c['weights']!r} are not safetensors")
            if not weights.is_file():
                raise BundleError(f"{path}: missing codec weights {c['weights']}")
        slots[modality] = CodecSlot(modality, c["name"], c.get("config", {}), weights, device=device)
    return slots


CODECS_ONLY = "codecs/codecs.json"  # a bundle directory whose LLM is not there yet: its codecs alone


def _unknown(name: str | Path, wanted: str) -> BundleError:
    known = ", ".join([*bundle_names(), *packaged_bundles()])
    return BundleError(f"unknown bundle {str(name)!r}: not one of the known bundles ({known}) and not a "
                       f"directory with {wanted}")


def packaged_bundles() -> dict[str, Path]:
    """Bundle directories shipped inside the package (anygpt/bundles/<name>/)."""
    here = Path(__file__).parent
    return {p.name: p for p in sorted(here.iterdir()) if (p / MANIFEST).is_file() or (p / CODECS_ONLY).is_file()}


def load_codec_slots(name_or_path: str | Path, *, device: str = "cpu", shipped: bool = False) -> dict[str, CodecSlot]:
    """A bundle's codecs without its LLM: {modality: CodecSlot} (built on first use). Takes a built-in
    or packaged name or a directory with manifest.json (or, before its LLM exists, codecs/codecs.json).
    `shipped`: read codecs/codecs.json even beside a manifest (codecs shipped after its LLM was)."""
    name = str(name_or_path)
    if name in _builtins():
        return _builtins()[name]().codecs
    path = packaged_bundles().get(name, Path(name_or_path))
    if (path / MANIFEST).is_file() and not (shipped and (path / CODECS_ONLY).is_file()):
        manifest = read_manifest(path)
        check_files(path, manifest, hashes=False)
    elif (path / CODECS_ONLY).is_file():
        try:
            entries = json.loads((path / CODECS_ONLY).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BundleError(f"{path / CODECS_ONLY}: unreadable ({e})") from None
        manifest = {"codecs": entries}
        _check_codecs(path / CODECS_ONLY, entries)
    else:
        raise _unknown(name, f"{MANIFEST} or {CODECS_ONLY}")
    return _codec_slots(path, manifest.get("codecs", {}), manifest, device)


# the manifest's fields and their JSON types (a missing optional field is fine; a wrong type is not)
_REQUIRED = {"name": str, "llm": dict, "tokenizer": dict, "layout": dict, "prompt_format": str}
_OPTIONAL = {"description": str, "decoding": dict, "codecs": dict, "files": dict, "external_files": dict,
             "extra": dict}


def read_manifest(path: Path) -> dict:
    """The manifest of a bundle folder, its fields checked for presence and JSON type."""
    where = path / MANIFEST
    try:
        manifest = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{where}: unreadable manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("anygpt_bundle") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: not an anygpt bundle of format {BUNDLE_FORMAT}")
    for key, kind in {**_REQUIRED, **_OPTIONAL}.items():
        if key not in manifest:
            if key in _REQUIRED:
                raise BundleError(f"{where}: missing {key!r}")
            continue
        if not isinstance(manifest[key], kind):
            raise BundleError(f"{where}: {key!r} must be a JSON {kind.__name__.replace('dict', 'object')}, "
                              f"got {type(manifest[key]).__name__}")
    for key in ("llm", "tokenizer"):
        if not isinstance(manifest[key].get("path"), str):
            raise BundleError(f"{where}: {key}.path must be a string")
    if not isinstance(manifest["layout"].get("base_vocab_size"), int) or isinstance(
            manifest["layout"].get("base_vocab_size"), bool):
        raise BundleError(f"{where}: layout.base_vocab_size must be an integer")
    _check_codecs(where, manifest.get("codecs", {}))
    return manifest


def _check_codecs(where: Path, entries) -> None:
    if not isinstance(entries, dict):
        raise BundleError(f"{where}: codecs must be an object of modality: {{name, config, weights}}")
    for modality, c in entries.items():
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            raise BundleError(f"{where}: codec {modality!r} must be an object with a string 'name'")
        if not isinstance(c.get("config", {}), dict):
            raise BundleError(f"{where}: codec {modality!r}: 'config' must be an object")
        if c.get("weights") is not None and not isinstance(c["weights"], str):
            raise BundleError(f"{where}: codec {modality!r}: 'weights' must be a path string")


def verify_files(path: Path, manifest: dict) -> int:
    """Every file of the bundle against its sha256, external weights against their sizes, every
    named path confined and covered (see files.py); returns the number of hashed files."""
    return check_files(path, manifest)


# --- saving --------------------------------------------------------------------------------------

def save_bundle(bundle: Bundle, out: str | Path) -> Path:
    """Write a bundle directory with weights in safetensors and a hash for every file."""
    out = Path(out)
    if (out / MANIFEST).exists() or (out.exists() and any(out.iterdir())):
        raise AnyGPTError(f"{out}: exists and is not empty; choose a new directory")
    out.mkdir(parents=True, exist_ok=True)
    bundle.model.save_pretrained(out / "llm")
    bundle.tokenizer.save_pretrained(out / "tokenizer")
    codecs = {}
    for modality, slot in bundle.codecs.items():
        codec = slot.get()
        rel = f"codecs/{modality}.safetensors"
        (out / "codecs").mkdir(exist_ok=True)
        save_file({k: v.contiguous() for k, v in codec.state_dict().items()}, out / rel)
        codecs[modality] = {"name": slot.name, "config": codec.config(), "weights": rel}
    return write_manifest(bundle, out, codecs)


def write_manifest(bundle: Bundle, out: Path, codecs: dict, llm: dict | None = None) -> Path:
    """manifest.json for the files under `out` (each hashed): `codecs` {modality: {name, config,
    weights}}, `llm` extra keys of the llm entry (e.g. {"load_dtype": "fp32"})."""
    files = {
        str(f.relative_to(out)): sha256(f) for f in sorted(out.rglob("*")) if f.is_file() and f.name != MANIFEST
    }
    manifest = {
        "anygpt_bundle": BUNDLE_FORMAT,
        "name": bundle.name,
        "description": bundle.description,
        "llm": {"path": "llm", "architecture": type(bundle.model).__name__, **(llm or {})},
        "tokenizer": {"path": "tokenizer"},
        "layout": {**bundle.layout.config.to_dict(), "base_vocab_size": bundle.layout.base_vocab_size},
        "prompt_format": bundle.prompt_format.name,
        "decoding": bundle.decoding.to_dict(),
        "codecs": codecs,
        "extra": bundle.extra,
        "files": files,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


