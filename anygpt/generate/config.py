"""Decoding settings: one `SamplingConfig` per output modality, switched by the generator itself when
a media span opens or closes, and named presets in a plain table."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from anygpt.errors import AnyGPTError


@dataclass(frozen=True)
class SamplingConfig:
    do_sample: bool = True  # False: greedy (or beam search when num_beams > 1)
    num_beams: int = 1  # > 1 only for text: beam search over a text stretch
    temperature: float = 1.0
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1.0: off
    repetition_penalty: float = 1.0  # applied to the tokens of the current span only

    def __post_init__(self) -> None:
        if self.num_beams < 1 or self.temperature <= 0 or not 0 < self.top_p <= 1 or self.top_k < 0:
            raise AnyGPTError(f"invalid sampling settings: {self}")
        if self.repetition_penalty <= 0:
            raise AnyGPTError("repetition_penalty must be positive")


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

    def for_modality(self, name: str) -> SamplingConfig:
        if name == "text":
            return self.text
        cfg = getattr(self, name, None)
        # A modality added by a user's layout samples like speech unless configured.
        return cfg if isinstance(cfg, SamplingConfig) else self.speech

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DecodingConfig":
        d = dict(d)
        for key in ("text", "image", "speech", "music"):
            if key in d and isinstance(d[key], dict):
                d[key] = SamplingConfig(**d[key])
        return cls(**d)

    def override(self, **changes) -> "DecodingConfig":
        """Replace top-level fields, or one modality's fields with keys like `music_top_p`."""
        top, per = {}, {}
        for key, value in changes.items():
            if value is None:
                continue
            modality, _, name = key.partition("_")
            if modality in ("text", "image", "speech", "music") and name:
                per.setdefault(modality, {})[name] = value
            else:
                top[key] = value
        for modality, fields_ in per.items():
            top[modality] = replace(getattr(self, modality), **fields_)
        return replace(self, **top)


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
