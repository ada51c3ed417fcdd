"""The one codec interface every image, speech and music tokenizer implements, and its registry.

A codec turns one media item into a matrix of discrete codes and back:

    image  PIL.Image (RGB)                      -> codes (1, tokens_per_item)    e.g. (1, 32)
    speech float32 waveform (samples,) @ sr     -> codes (num_codebooks, frames) e.g. (1, 50) per second
    music  float32 waveform (samples,) @ sr     -> codes (num_codebooks, frames) e.g. (4, 250) per 5 s

Codes are what the LLM sees (speech: only the semantic RVQ layer; the other layers are filled back in
by the decoder, which may take a voice prompt). The vocabulary layout turns code matrices into token
ids; codecs never see token ids.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
import torch

from anygpt.errors import AnyGPTError, LayoutError

MODALITIES = ("image", "speech", "music")


@runtime_checkable
class Codec(Protocol):
    """A tokenizer / de-tokenizer pair for one modality."""

    modality: str  # one of MODALITIES
    codebook_size: int  # entries in each codebook
    num_codebooks: int  # codebooks handed to the LLM: image 1, speech 1, music 4
    frame_rate: float | None  # code frames per second of audio; None for images
    tokens_per_item: int | None  # codes per image (32); None for audio
    sample_rate: int | None  # audio samples per second; None for images

    def encode(self, media: Any) -> torch.Tensor:
        """One item -> LongTensor (num_codebooks, frames)."""
        ...

    def decode(
        self, codes: torch.Tensor, *, voice: np.ndarray | None = None, seed: int | None = None
    ) -> Any:
        """LongTensor (num_codebooks, frames) -> PIL.Image or float32 waveform (samples,).

        `voice` is a waveform at `sample_rate` whose timbre speech decoders should copy; `seed` makes
        any sampling inside the decoder reproducible.
        """
        ...

    def config(self) -> dict:
        """Plain-JSON constructor arguments: `REGISTRY[name](**codec.config())` rebuilds it."""
        ...


def check_codes(
    codes: Any, name: str, num_codebooks: int, codebook_size: int, length: int | None = None
) -> torch.Tensor:
    """Validate a code matrix (num_codebooks, T) for decoding and return it as a LongTensor; `length`
    fixes T (images). Raises LayoutError naming the codec and the first bad value."""
    codes = torch.as_tensor(codes)
    if codes.dtype.is_floating_point or codes.dtype.is_complex or codes.dtype == torch.bool:
        raise LayoutError(f"{name}: codes must be integers, got {codes.dtype}")
    if codes.ndim != 2 or codes.shape[0] != num_codebooks:
        raise LayoutError(
            f"{name}: expected codes of shape ({num_codebooks}, T), got {tuple(codes.shape)}"
        )
    if length is not None and codes.shape[1] != length:
        raise LayoutError(f"{name}: decodes exactly {length} codes per item, got {codes.shape[1]}")
    if codes.shape[1] < 1:
        raise LayoutError(f"{name}: got no code frames (shape {tuple(codes.shape)})")
    bad = (codes < 0) | (codes >= codebook_size)
    if bad.any():
        q, t = (int(i) for i in bad.nonzero()[0])
        raise LayoutError(
            f"{name}: code {int(codes[q, t])} at position ({q}, {t}) is outside [0, {codebook_size})"
        )
    return codes.long()


@dataclass(frozen=True)
class CodecEntry:
    name: str
    modality: str
    build: Callable[..., Codec]  # build(**config) -> codec with freshly initialised weights


_REGISTRY: dict[str, CodecEntry] = {}


def register_codec(name: str, modality: str) -> Callable[[Callable[..., Codec]], Callable[..., Codec]]:
    """Class or function decorator: make a codec buildable by name from a bundle manifest."""

    def wrap(build: Callable[..., Codec]) -> Callable[..., Codec]:
        if name in _REGISTRY and _REGISTRY[name].build is not build:
            raise ValueError(f"codec {name!r} is registered twice")
        _REGISTRY[name] = CodecEntry(name, modality, build)
        return build

    return wrap


# Built-in codecs by name -> the module that registers them. A module is imported only when one of
# its codecs is asked for, so heavy codecs (SEED-2, SpeechTokenizer) cost nothing until used.
BUILTIN_CODECS = {
    "debug-image": "anygpt.codecs.debug",
    "debug-speech": "anygpt.codecs.debug",
    "debug-music": "anygpt.codecs.debug",
    "seed2": "anygpt.codecs.seed2.codec",
    "encodec-32khz": "anygpt.codecs.encodec",
    "speechtokenizer": "anygpt.codecs.speechtokenizer",
    "small-image": "anygpt.codecs.small.image",
    "small-scene": "anygpt.codecs.small.scene",
    "small-speech": "anygpt.codecs.small.audio",
    "small-music": "anygpt.codecs.small.audio",
}


def codec_names() -> list[str]:
    return sorted(set(_REGISTRY) | set(BUILTIN_CODECS))


def codec_builder(name: str) -> Callable[..., Codec]:
    if name not in _REGISTRY and name in BUILTIN_CODECS:
        importlib.import_module(BUILTIN_CODECS[name])
    if name not in _REGISTRY:
        raise AnyGPTError(f"unknown codec {name!r}; known codecs: {', '.join(codec_names())}")
    return _REGISTRY[name].build


def build_codec(name: str, config: dict | None = None) -> Codec:
    """Build a registered codec (a fresh instance: real weights when its config names them)."""
    return codec_builder(name)(**(config or {}))
