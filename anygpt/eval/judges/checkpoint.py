"""Judge checkpoints: one safetensors file per judge, its typed config stored in the metadata.

    save_module(model, config, path, extra={"vocab": [...]})
    model, config = load_module("image_attributes.safetensors", ImageJudgeConfig, build_model)

A checkpoint carries everything needed to rebuild its model (whisper's habit): the config's fields as
JSON under "config", and any extra JSON-ready data (a text vocabulary, class names) under "extra".
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path

from anygpt.errors import BundleError
from anygpt.eval.judges.weights import weights_path


def save_module(model, config, path: str | Path, extra: dict | None = None) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().contiguous().clone() for name, t in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"config": json.dumps(asdict(config), sort_keys=True),
                                            "extra": json.dumps(extra or {}, sort_keys=True)})
    return path


def read_checkpoint(name: str, folder: str | Path | None = None) -> tuple[dict, dict, dict]:
    """(tensors, config fields, extra) of a shipped (or given folder's) checkpoint."""
    from safetensors import safe_open

    path = weights_path(name, folder)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 - not a dict
    except Exception as e:  # noqa: BLE001 - a corrupt file: say which one
        raise BundleError(f"{path}: not a readable judge checkpoint ({e})") from None
    return tensors, json.loads(metadata.get("config", "{}")), json.loads(metadata.get("extra", "{}"))


def config_from(config_cls, values: dict):
    kwargs = {}
    for field in fields(config_cls):
        if field.name in values:
            value = values[field.name]
            kwargs[field.name] = tuple(value) if isinstance(value, list) else value
    return config_cls(**kwargs)


def load_module(name: str, config_cls, builder, folder: str | Path | None = None, **builder_kwargs):
    """Rebuild a judge model from its checkpoint: (model in eval mode, config, extra)."""
    tensors, values, extra = read_checkpoint(name, folder)
    config = config_from(config_cls, values)
    model = builder(config, **builder_kwargs)
    model.load_state_dict(tensors)
    return model.eval(), config, extra
