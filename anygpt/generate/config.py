"""Decoding settings: one `SamplingConfig` per output modality, switched by the generator itself when
a media span opens or closes, and named presets in a plain table.

Every value is checked in one place, `__post_init__`, against the field's type and range, whether it
comes from a preset, a bundle's manifest or the command line; `parse_settings` turns `--set KEY=VALUE`
strings into values of the field's type (KEY: a top-level field, `<modality>_<field>`, or
`max_seconds_<modality>`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

from anygpt.errors import AnyGPTError
from anygpt.settings import field_types, parse_assignments

MODALITIES = ("text", "image", "speech", "music")
MAX_SEED = 2**63 - 1  # what torch.manual_seed and numpy's generators all accept


def _number(name: str, value, *, kind: type, low: float, high: float = math.inf, low_open: bool = False) -> None:
    """`value` is a `kind` (int for a float field too, never a bool) within [low, high] ((low, high] if low_open)."""
    kinds = (int, float) if kind is float else (int,)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise AnyGPTError(f"{name} must be {'a number' if kind is float else 'an integer'}, got {value!r}")
    if not math.isfinite(value) or value < low or (low_open and value == low) or value > high:
        where = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise AnyGPTError(f"{name} must be in {where}, got {value!r}")


def _flag(name: str, value) -> None:
    if not isinstance(value, bool):
        raise AnyGPTError(f"{name} must be true or false, got {value!r}")


@dataclass(frozen=True)
class SamplingConfig:
    do_sample: bool = True  # False: greedy (or beam search when num_beams > 1)
    num_beams: int = 1  # > 1 only for text: beam search over a text stretch
    temperature: float = 1.0
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1.0: off
    repetition_penalty: float = 1.0  # applied to the tokens of the current span only
    # classifier-free guidance inside this modality's spans, where the request names an
    # unconditional prompt: log-probabilities u + s * (c - u), u after the unconditional prompt and
    # c after the real one (kvengine.py); 1.0: off
    guidance_scale: float = 1.0

    def __post_init__(self) -> None:
        _flag("do_sample", self.do_sample)
        _number("num_beams", self.num_beams, kind=int, low=1, high=64)
        _number("temperature", self.temperature, kind=float, low=0, high=100, low_open=True)
        _number("top_k", self.top_k, kind=int, low=0)
        _number("top_p", self.top_p, kind=float, low=0, high=1, low_open=True)
        _number("repetition_penalty", self.repetition_penalty, kind=float, low=0, high=100, low_open=True)
        _number("guidance_scale", self.guidance_scale, kind=float, low=0, high=100)


@dataclass(frozen=True)
class DecodingConfig:
    text: SamplingConfig = SamplingConfig(do_sample=False, num_beams=5)
    image: SamplingConfig = SamplingConfig(top_p=0.7)
    speech: SamplingConfig = SamplingConfig(top_p=0.7)
    music: SamplingConfig = SamplingConfig(top_p=1.0, repetition_penalty=1.15)
    max_new_tokens: int = 2048
    max_seconds: dict = field(default_factory=lambda: {"speech": 30.0, "music": 10.0})
    constrained: bool = True  # enforce valid spans (see processors.SpanConstraint)
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in MODALITIES:
            if not isinstance(getattr(self, name), SamplingConfig):
                raise AnyGPTError(f"{name} must be a table of sampling settings")
        _number("max_new_tokens", self.max_new_tokens, kind=int, low=1)
        if not isinstance(self.max_seconds, dict):
            raise AnyGPTError(f"max_seconds must be a table of modality: seconds, got {self.max_seconds!r}")
        for modality, seconds in self.max_seconds.items():
            _number(f"max_seconds_{modality}", seconds, kind=float, low=0, low_open=True)
        _flag("constrained", self.constrained)
        if self.seed is not None:
            _number("seed", self.seed, kind=int, low=0, high=MAX_SEED)

    def for_modality(self, name: str) -> SamplingConfig:
        if name == "text":
            return self.text
        cfg = getattr(self, name, None)
        # A modality added by a user's layout samples like speech unless configured.
        return cfg if isinstance(cfg, SamplingConfig) else self.speech

    def guided(self, name: str | None) -> bool:
        """Whether replies in modality `name` (None: any) are decoded with classifier-free guidance."""
        names = MODALITIES[1:] if name is None else (name,)
        return any(self.for_modality(n).guidance_scale != 1.0 for n in names if n != "text")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DecodingConfig":
        if not isinstance(d, dict):
            raise AnyGPTError(f"decoding settings must be a table, got {type(d).__name__}")
        d = dict(d)
        _known("decoding", d, cls)
        for key in MODALITIES:
            if key in d and isinstance(d[key], dict):
                _known(key, d[key], SamplingConfig)
                d[key] = SamplingConfig(**d[key])
        if isinstance(d.get("max_seconds"), dict):
            d["max_seconds"] = dict(d["max_seconds"])
        return cls(**d)

    def override(self, **changes) -> "DecodingConfig":
        """Replace top-level fields, one modality's fields with keys like `music_top_p`, or one span
        limit with `max_seconds_music`; None leaves a value as it is."""
        top, per = {}, {}
        for key, value in changes.items():
            if value is None:
                continue
            modality, _, name = key.partition("_")
            if key.startswith("max_seconds_"):
                top["max_seconds"] = {**top.get("max_seconds", self.max_seconds), key[len("max_seconds_"):]: value}
            elif modality in MODALITIES and name:
                _known(modality, {name: value}, SamplingConfig)
                per.setdefault(modality, {})[name] = value
            else:
                _known("decoding", {key: value}, DecodingConfig)
                top[key] = value
        for modality, fields_ in per.items():
            top[modality] = replace(getattr(self, modality), **fields_)
        return replace(self, **top)


def _known(where: str, d: dict, cls) -> None:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise AnyGPTError(f"unknown {where} setting {unknown[0]!r}; known: {', '.join(sorted(names))}")


def _setting_type(key: str):
    """The type of a settable key (`seed`, `music_top_p`, `max_seconds_speech`, ...), None if unknown."""
    modality, _, name = key.partition("_")
    if key.startswith("max_seconds_") and len(key) > len("max_seconds_"):
        return float
    owner, name = (SamplingConfig, name) if modality in MODALITIES and name else (DecodingConfig, key)
    kind = field_types(owner).get(name)
    return kind if kind in _SETTABLE else None


_SETTABLE = (bool, int, float, int | None)  # the field types `--set` reaches (not tables of settings)


def parse_settings(items: list[str]) -> dict:
    """`--set KEY=VALUE` strings -> {key: typed value}, checked against a default config's ranges
    (so that a bad value fails before anything is loaded); apply them with `override`."""
    settable = sorted([*(f.name for f in fields(DecodingConfig) if field_types(DecodingConfig)[f.name] in _SETTABLE),
                       "max_seconds_<modality>", "<modality>_<" + "|".join(f.name for f in fields(SamplingConfig)) + ">"])
    changes = parse_assignments(items, _setting_type, what="decoding setting", settable=", ".join(settable))
    check_settings(changes)
    return changes


def check_settings(changes: dict) -> None:
    """Raise AnyGPTError naming the first value out of its field's range."""
    try:
        DecodingConfig().override(**changes)
    except AnyGPTError as e:
        raise AnyGPTError(f"bad decoding setting: {e}") from None


# Named presets. "paper" is Table 9 of the paper; "release" the released per-output config files
# (their 200/1500/2000-token caps become span limits here); "greedy" is deterministic everywhere.
PRESETS: dict[str, DecodingConfig] = {
    "paper": DecodingConfig(),
    "release": DecodingConfig(
        text=SamplingConfig(do_sample=True, num_beams=5),
        image=SamplingConfig(),
        speech=SamplingConfig(repetition_penalty=1.05),
        music=SamplingConfig(top_k=200, repetition_penalty=1.15),
        max_new_tokens=2000,
        max_seconds={"speech": 30.0, "music": 10.0},
    ),
    "greedy": DecodingConfig(
        text=SamplingConfig(do_sample=False),
        image=SamplingConfig(do_sample=False),
        speech=SamplingConfig(do_sample=False),
        music=SamplingConfig(do_sample=False),
    ),
}


def preset(name: str) -> DecodingConfig:
    if name not in PRESETS:
        raise AnyGPTError(f"unknown decoding preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]
