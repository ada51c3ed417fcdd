"""SpeechTokenizer, AnyGPT's speech codec, with SoundStorm to fill in the voice when decoding.

    encode      waveform @ 16 kHz -> SEANet encoder (strides 8,5,4,2: 320 samples a frame, 50 Hz)
                -> 8-layer RVQ x 1024 -> layer 1 only ("semantic", distilled from HuBERT): (1, frames)
    encode_rvq  the same, every layer: (8, frames)
    decode      semantic codes (1, T) [+ voice prompt: every layer of its first `voice_max_seconds`]
                -> SoundStorm fills layers 2..8 (voice, acoustics) -> SEANet decoder -> (T * 320,) samples

The network is the real `speechtokenizer` package's model, built from the release's `config.json`
and loaded from its checkpoint (`ckpt.dev`); SoundStorm is ours (anygpt.codecs.soundstorm) and loads
the release's `speechtokenizer_soundstorm_mls.pt`. Checkpoints are read with weights_only=True.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from anygpt.codecs.base import check_codes, register_codec
from anygpt.codecs.soundstorm import (
    MaskGITSchedule,
    SoundStorm,
    SoundStormConfig,
    check_state_dict,
    load_soundstorm,
    parse_dtype,
    read_checkpoint,
    soundstorm_config,
)
from anygpt.errors import BundleError
from anygpt.media import to_waveform

# The keys of the release's config.json that shape the network (the rest configure training).
MODEL_KEYS = (
    "n_filters",
    "strides",
    "dimension",
    "semantic_dimension",
    "bidirectional",
    "dilation_base",
    "residual_kernel_size",
    "n_residual_layers",
    "lstm_layers",
    "activation",
    "codebook_size",
    "n_q",
    "sample_rate",
)


def speechtokenizer_class() -> type:
    """The `speechtokenizer` package's model class, imported without the package's trainer.

    The package's __init__ also imports its trainer, which needs torchaudio (a CUDA build that does
    not load beside CPU torch). The model needs only torch, numpy and einops, so the package is
    registered without running its __init__ and only `speechtokenizer.model` is imported from it.
    """
    if "speechtokenizer.model" in sys.modules:
        return sys.modules["speechtokenizer.model"].SpeechTokenizer
    added = False
    if "speechtokenizer" not in sys.modules:
        spec = importlib.util.find_spec("speechtokenizer")
        if spec is None:
            raise BundleError(
                "the speechtokenizer package is missing: pip install --no-deps speechtokenizer einops"
            )
        sys.modules["speechtokenizer"] = importlib.util.module_from_spec(spec)
        added = True
    try:
        return importlib.import_module("speechtokenizer.model").SpeechTokenizer
    except ImportError as e:
        if added:
            del sys.modules["speechtokenizer"]
        raise BundleError(f"cannot import the SpeechTokenizer model code ({e})") from None


def read_model_config(path: str | Path) -> dict:
    """The release's config.json -> the keys that shape the network."""
    path = Path(path)
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise BundleError(f"{path}: cannot read SpeechTokenizer config ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise BundleError(f"{path}: SpeechTokenizer config is not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise BundleError(f"{path}: SpeechTokenizer config must be a JSON object")
    missing = [k for k in MODEL_KEYS if k not in cfg]
    if missing:
        raise BundleError(f"{path}: SpeechTokenizer config lacks {', '.join(missing)}")
    return {k: cfg[k] for k in MODEL_KEYS}


def build_speechtokenizer(model_config: dict) -> nn.Module:
    """A SpeechTokenizer network with fresh weights (its RVQ codebooks start at zero)."""
    with warnings.catch_warnings():  # the package uses the deprecated torch.nn.utils.weight_norm
        warnings.simplefilter("ignore", FutureWarning)
        return speechtokenizer_class()(dict(model_config))


@register_codec("speechtokenizer", "speech")
class SpeechTokenizerCodec(nn.Module):
    """SpeechTokenizer (semantic RVQ layer to the LLM) + SoundStorm (voice back in when decoding).

    The network shape comes from `config_path` (the release's config.json) or `model_config` (its
    network keys inline); weights from `ckpt_path` and `soundstorm_path`, or fresh when a path is
    None (then load a state dict, as a bundle does). `soundstorm_config=None` builds no SoundStorm.
    """

    def __init__(
        self,
        config_path: str | None = None,
        ckpt_path: str | None = None,
        soundstorm_path: str | None = None,
        soundstorm_config: str | dict | None = "official",
        model_config: dict | None = None,
        voice_max_seconds: float | None = 3.0,
        steps: int = 3,
        temperature: float = 1.0,
        device: str = "cpu",
        dtype: str | None = None,
    ):
        super().__init__()
        if (config_path is None) == (model_config is None):
            raise ValueError("speechtokenizer: give exactly one of config_path or model_config")
        if model_config is None:
            model_config = read_model_config(config_path)
        else:
            missing = [k for k in MODEL_KEYS if k not in model_config]
            if missing:
                raise ValueError(f"speechtokenizer: model_config lacks {', '.join(missing)}")
            model_config = {k: model_config[k] for k in MODEL_KEYS}
        model = build_speechtokenizer(model_config)
        if ckpt_path is not None:
            state = read_checkpoint(ckpt_path, "SpeechTokenizer checkpoint")
            check_state_dict(
                model, state, ckpt_path, f"the SpeechTokenizer of {config_path or 'model_config'}"
            )
            model.load_state_dict(state, strict=True)
        self.model = model.to(device=device, dtype=parse_dtype(dtype)).eval()

        self.modality = "speech"
        self.codebook_size = int(model_config["codebook_size"])
        self.num_codebooks = 1
        self.sample_rate = int(model_config["sample_rate"])
        self.hop = math.prod(model_config["strides"])  # samples per code frame: 320
        self.frame_rate = self.sample_rate / self.hop  # 50.0
        self.tokens_per_item = None
        self.n_q = int(model_config["n_q"])

        self.model_config = model_config
        self._config = {
            "config_path": None if config_path is None else str(config_path),
            "ckpt_path": None if ckpt_path is None else str(ckpt_path),
            "soundstorm_path": None if soundstorm_path is None else str(soundstorm_path),
            "soundstorm_config": soundstorm_config,
            "model_config": None if config_path is not None else model_config,
            "voice_max_seconds": voice_max_seconds,
            "steps": steps,
            "temperature": temperature,
            "device": device,
            "dtype": dtype,
        }
        self.voice_max_seconds = voice_max_seconds
        self.schedule = MaskGITSchedule(steps=steps, temperature=temperature)
        self.soundstorm = None
        if soundstorm_config is not None:
            where = soundstorm_path or "soundstorm_config"
            cfg = _soundstorm_config_for(soundstorm_config, self.n_q, self.codebook_size, where)
            if soundstorm_path is not None:
                self.soundstorm = load_soundstorm(soundstorm_path, cfg, device=device, dtype=dtype)
            else:
                self.soundstorm = SoundStorm(cfg).to(device=device, dtype=parse_dtype(dtype)).eval()

    def config(self) -> dict:
        """Plain JSON that rebuilds this codec (file paths included)."""
        spec = self._config["soundstorm_config"]
        plain = spec.to_dict() if isinstance(spec, SoundStormConfig) else spec
        return json.loads(json.dumps({**self._config, "soundstorm_config": plain}))  # a deep copy

    def inline_config(self) -> dict:
        """`config()` with no files: shapes inline, fresh weights; load `state_dict()` into it."""
        return {
            **self.config(),
            "config_path": None,
            "ckpt_path": None,
            "soundstorm_path": None,
            "model_config": dict(self.model_config),
        }

    def _run_encoder(self, wav: np.ndarray) -> torch.Tensor:
        param = next(self.model.parameters())
        x = torch.from_numpy(wav).to(device=param.device, dtype=param.dtype)  # (samples,)
        x = x[None, None]  # (1, 1, samples)
        return self.model.encode(x)[:, 0].long().cpu()  # (n_q, 1, frames) -> (n_q, frames)

    @torch.no_grad()
    def encode_rvq(self, media: Any) -> torch.Tensor:
        """Waveform (samples,) at 16 kHz (or a path, or (waveform, rate)) -> every layer (n_q, frames)."""
        return self._run_encoder(to_waveform(media, self.sample_rate, source="speechtokenizer input"))

    @torch.no_grad()
    def encode(self, media: Any) -> torch.Tensor:
        """Waveform (samples,) at 16 kHz -> semantic codes (1, frames), 50 frames a second."""
        return self.encode_rvq(media)[:1]

    @torch.no_grad()
    def decode_rvq(self, codes: torch.Tensor) -> np.ndarray:
        """Every layer (n_q, T) -> float32 waveform (T * 320,) at 16 kHz."""
        codes = check_codes(codes, "speechtokenizer", self.n_q, self.codebook_size)
        device = next(self.model.parameters()).device
        wav = self.model.decode(codes[:, None].to(device))  # (n_q, 1, T) -> (1, 1, samples)
        return wav[0, 0, : codes.shape[1] * self.hop].float().cpu().numpy()

    @torch.no_grad()
    def voice_prompt(self, voice: Any) -> torch.Tensor:
        """A voice prompt (path, waveform at 16 kHz, or (waveform, rate); stereo is averaged), cut to
        its first `voice_max_seconds` -> every RVQ layer (n_q, frames)."""
        return self._run_encoder(to_waveform(voice, self.sample_rate, source="voice prompt", max_seconds=self.voice_max_seconds))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, *, voice: Any = None, seed: int | None = None) -> np.ndarray:
        """Semantic codes (1, T) -> float32 waveform (T * 320,) at 16 kHz.

        SoundStorm fills layers 2..8 in the voice of `voice` (kept unmasked in front of the codes), or
        without a voice in a random one; `seed` (None means 0) fixes SoundStorm's sampling.
        """
        semantic = check_codes(codes, "speechtokenizer", 1, self.codebook_size)  # (1, T)
        if self.soundstorm is None:
            raise BundleError("speechtokenizer: decoding needs SoundStorm (soundstorm_config is None)")
        prompt = None if voice is None else self.voice_prompt(voice).T[None]  # (1, P, n_q)
        device = self.soundstorm.semantic_token_emb.weight.device
        generator = torch.Generator(device=device).manual_seed(0 if seed is None else int(seed))
        full = self.soundstorm.generate(
            semantic, prompt, schedule=self.schedule, generator=generator
        )  # (1, T, n_q)
        return self.decode_rvq(full[0].T.cpu())


def _soundstorm_config_for(spec: str | dict, n_q: int, codebook_size: int, path: Any) -> SoundStormConfig:
    cfg = soundstorm_config(spec)
    if (
        cfg.num_quantizers != n_q - 1
        or cfg.codebook_size != codebook_size
        or cfg.semantic_vocab != codebook_size
    ):
        raise BundleError(
            f"{path}: SoundStorm fills {cfg.num_quantizers} levels of {cfg.codebook_size} codes from "
            f"{cfg.semantic_vocab} semantic codes; SpeechTokenizer has {n_q} layers of {codebook_size}"
        )
    return cfg
