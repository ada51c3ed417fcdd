"""`KEY=VALUE` strings from the command line (`--set`), typed by the fields of a config dataclass.

    parse_assignments(["lr=3e-4", "resume=false", "lora_targets=q_proj,v_proj"], TrainConfig)
        -> {"lr": 0.0003, "resume": False, "lora_targets": ["q_proj", "v_proj"]}

How a value's text becomes its field's type:

    bool               true / false (any case); nothing else, so that a typo is never read as a flag
    int                a whole number: 12, -3, 1e3 (not 2.5, nan, 0x10)
    float              a finite number: 0.9, 1e-4 (not nan, inf)
    str                the text as typed
    X | None           none (any case) or nothing -> None, else as X
    list[X], tuple[X]  comma-separated Xs: a,b,c (empty pieces dropped)
    Any (no type)      a JSON literal (128, [1, 2], "x", true), else the text as typed

Only the types are read here; ranges stay with the config (its `__post_init__` or a check of its own).
"""

from __future__ import annotations

import json
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import fields, is_dataclass
from typing import Any

from anygpt.errors import AnyGPTError

_NONE = ("none", "")


def field_types(config: type) -> dict[str, Any]:
    """{field name: its type} of a dataclass, with string annotations resolved."""
    hints = typing.get_type_hints(config)
    return {f.name: hints[f.name] for f in fields(config)}


def parse_assignments(items: list[str], types_of: type | Mapping[str, Any] | Callable[[str], Any], *,
                      what: str = "setting", settable: str | None = None) -> dict:
    """`["a=1", "b=true"]` -> {"a": 1, "b": True}, each value typed by its field in `types_of` (a
    dataclass, a {key: type} table, or a function from a key to its type, None for an unknown key).
    AnyGPTError in one line for a string without `=`, an unknown key or a value not of its type;
    `what` names the settings in those messages, `settable` lists the keys (default: the table's)."""
    if is_dataclass(types_of):
        types_of = field_types(types_of)
    if isinstance(types_of, Mapping):
        table = types_of
        settable = settable if settable is not None else ", ".join(sorted(table))
        types_of = table.get
    out: dict = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise AnyGPTError(f"--set expects KEY=VALUE, got {item!r}")
        kind = types_of(key)
        if kind is None:
            raise AnyGPTError(f"bad {what} {key!r}: unknown key" + (f"; settable: {settable}" if settable else ""))
        try:
            out[key] = parse_value(text, kind)
        except ValueError as e:
            raise AnyGPTError(f"bad {what} {key}={text!r}: expected {e}") from None
    return out


def parse_value(text: str, kind: Any):
    """`text` as a value of `kind` (see the table above); ValueError naming what was expected."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) < len(args) and text.strip().lower() in _NONE:
            return None
        if len(rest) != 1:
            raise TypeError(f"cannot parse a value of {kind}")
        return parse_value(text, rest[0])
    if origin in (list, tuple):
        item = args[0] if args else str
        values = [parse_value(piece, item) for piece in text.split(",") if piece]
        return values if origin is list else tuple(values)
    if kind is bool:
        low = text.strip().lower()
        if low not in ("true", "false"):
            raise ValueError("true or false")
        return low == "true"
    if kind is int:
        return _whole(text.strip())
    if kind is float:
        try:
            value = float(text.strip())
        except ValueError:
            raise ValueError("a number") from None
        if not math.isfinite(value):
            raise ValueError("a finite number")
        return value
    if kind is str:
        return text
    if kind is Any:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    raise TypeError(f"cannot parse a value of {kind}")


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)  # 1e3, 2.0
    except ValueError:
        raise ValueError("a whole number") from None
    if not math.isfinite(value) or value != int(value):
        raise ValueError("a whole number")
    return int(value)
