"""A bundle: one directory that says everything needed to run a model.

    BUNDLE/
      manifest.json              names, layout, prompt format, decoding defaults, codecs, file hashes
      llm/                       a Hugging Face causal LM folder (config.json, model.safetensors)
      tokenizer/                 the expanded text tokenizer (tokenizer.json, ...)
      codecs/<modality>.safetensors

This module holds the Bundle and its codec slots (codecs load lazily: a modality's networks are built
the first time it is used); load.py turns a built-in name (`debug`) or a directory into one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file

from anygpt.codecs.base import Codec, build_codec, codec_builder
from anygpt.errors import AnyGPTError, BundleError
from anygpt.generate.config import DecodingConfig
from anygpt.layout import VocabLayout
from anygpt.prompts import PromptFormat

MANIFEST = "manifest.json"
BUNDLE_FORMAT = 1


@dataclass
class CodecSlot:
    """A codec named in a manifest, built on first use."""

    modality: str
    name: str
    config: dict
    weights: Path | None = None  # safetensors state dict; None: the codec's own seeded weights
    device: str = "cpu"  # handed to codecs whose constructor takes a device
    instance: Codec | None = None

    def get(self) -> Codec:
        if self.instance is None:
            config = dict(self.config)
            if self.device != "cpu" and "device" not in config and _accepts(self.name, "device"):
                config["device"] = self.device
            codec = build_codec(self.name, config)
            if self.weights is not None:
                _load_weights(codec, self.weights)
            self.instance = codec
        return self.instance


@dataclass
class Bundle:
    """A loaded bundle. Inference runs on `llm`: the LLM's weights loaded without transformers
    (anygpt.llama) where the bundle's LLM is a plain Llama, else `model`. `model` is transformers'
    model (training, a full forward, saving); a bundle loaded from a directory builds it on first use."""

    name: str
    model: object  # a transformers PreTrainedModel (causal LM), or None with `load_model`
    tokenizer: object
    layout: VocabLayout
    prompt_format: PromptFormat
    decoding: DecodingConfig
    codecs: dict[str, CodecSlot]
    description: str = ""
    path: Path | None = None
    extra: dict = field(default_factory=dict)  # free-form manifest fields of later presets
    light: object | None = field(default=None, repr=False, compare=False)  # anygpt.llama.Llama
    load_model: Callable[[], object] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.model is not None:  # a model given (e.g. by dataclasses.replace) is the one to run
            self.light = None
        elif self.load_model is not None:
            del self.model  # built by __getattr__ on first use

    def __getattr__(self, name: str):
        load = self.__dict__.get("load_model")
        if name == "model" and load is not None:
            self.model = load()
            return self.model
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def llm(self):
        """The model the decoding engine runs on (the same ids either way)."""
        return self.light if self.light is not None else self.model

    def codec(self, modality: str) -> Codec:
        if modality not in self.codecs:
            have = ", ".join(self.codecs) or "none"
            raise AnyGPTError(f"bundle {self.name!r} has no {modality} codec (it has: {have})")
        return self.codecs[modality].get()

    def token_ids(self, tokens) -> list[int]:
        out = []
        for tok in tokens:
            i = self.tokenizer.convert_tokens_to_ids(tok)
            if i is None or i == self.tokenizer.unk_token_id:
                raise BundleError(f"bundle {self.name!r}: its tokenizer has no token {tok!r}")
            out.append(i)
        return out

    @property
    def stop_ids(self) -> list[int]:
        ids = self.token_ids(self.prompt_format.stop_tokens)
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        return ids

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else self.tokenizer.eos_token_id


def _accepts(codec_name: str, argument: str) -> bool:
    return argument in inspect.signature(codec_builder(codec_name)).parameters


def _load_weights(codec: Codec, path: Path) -> None:
    try:
        state = load_file(path)
    except (OSError, SafetensorError) as e:
        raise BundleError(f"{path}: cannot read codec weights ({e})") from None
    try:
        codec.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise BundleError(f"{path}: weights do not fit codec {type(codec).__name__}: {first}") from None
