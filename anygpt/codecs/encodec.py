"""Encodec 32 kHz, AnyGPT's music codec (transformers' `EncodecModel`, weights `facebook/encodec_32khz`).

    waveform @ 32 kHz, mono -> SEANet encoder (strides 8,5,4,4: 640 samples a frame, 50 Hz)
    -> RVQ, 4 codebooks x 2048 (2.2 kbps) -> codes (4, frames); 5 s = 250 frames
    codes (4, T) -> decoder -> float32 waveform (T * 640,)

Weights come from a local folder in Hugging Face format (`path`; never downloaded), or a random
network is built from `model_config` (an EncodecConfig dict) for tests. Inputs longer than
`max_seconds` are cropped, from the start by default (the release cropped 5 s at a random offset).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from anygpt.codecs.base import check_codes, register_codec
from anygpt.errors import BundleError
from anygpt.media import to_waveform

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
CROPS = ("start", "middle")  # which part of a long input `max_seconds` keeps
# Keys of a saved HF config that describe the file, not the network.
_HF_BOOKKEEPING = {"transformers_version", "architectures", "dtype", "torch_dtype", "_name_or_path"}


@register_codec("encodec-32khz", "music")
class EncodecCodec(nn.Module):
    """Music <-> 4 RVQ codebooks of Encodec, one code frame per 20 ms."""

    def __init__(
        self,
        path: str | None = None,
        model_config: dict | None = None,
        max_seconds: float | None = None,
        crop: str = "start",
        device: str = "cpu",
        dtype: str | None = None,
    ):
        super().__init__()
        from transformers import EncodecConfig, EncodecModel

        if (path is None) == (model_config is None):
            raise ValueError(
                "encodec-32khz: give exactly one of `path` (a local HF folder) or `model_config`"
            )
        if dtype is not None and dtype not in DTYPES:
            raise ValueError(f"encodec-32khz: dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if crop not in CROPS:
            raise ValueError(f"encodec-32khz: crop must be one of {', '.join(CROPS)}, got {crop!r}")
        if max_seconds is not None and not max_seconds > 0:
            raise ValueError(f"encodec-32khz: max_seconds must be positive, got {max_seconds}")
        torch_dtype = DTYPES[dtype or "float32"]
        if path is not None:
            if not (Path(path) / "config.json").is_file():
                raise BundleError(f"{path}: not a Hugging Face Encodec folder (no config.json)")
            try:
                model, info = EncodecModel.from_pretrained(
                    path, local_files_only=True, dtype=torch_dtype, output_loading_info=True
                )
            except (OSError, ValueError, RuntimeError) as e:
                reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise BundleError(f"{path}: cannot load Encodec ({reason})") from None
            # transformers only warns about weights it had to leave random: refuse them instead
            missing = sorted(info.get("missing_keys") or [])
            mismatched = sorted(
                str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys") or []
            )
            if missing or mismatched:
                what = [f"missing keys: {', '.join(missing[:3])}"] if missing else []
                what += [f"shape mismatch: {', '.join(mismatched[:3])}"] if mismatched else []
                raise BundleError(f"{path}: weights do not fit its config ({'; '.join(what)})")
        else:
            model = EncodecModel(EncodecConfig(**model_config)).to(torch_dtype)
        cfg = model.config
        if cfg.audio_channels != 1:
            raise BundleError(f"encodec-32khz: expected a mono model, got {cfg.audio_channels} channels")
        if cfg.chunk_length_s is not None or cfg.normalize:
            # the 32 kHz model encodes a whole clip at once, unscaled; chunked models return other shapes
            raise BundleError("encodec-32khz: expected an unchunked, unnormalized model (as encodec_32khz)")
        self.model = model.to(device).eval()

        self.modality = "music"
        self.codebook_size = int(cfg.codebook_size)
        self.bandwidth = float(cfg.target_bandwidths[0])  # 2.2 kbps: the model's only one
        self.num_codebooks = model.quantizer.get_num_quantizers_for_bandwidth(self.bandwidth)  # 4
        self.sample_rate = int(cfg.sampling_rate)
        self.hop = math.prod(cfg.upsampling_ratios)  # samples per code frame: 640
        self.frame_rate = self.sample_rate / self.hop  # 50.0
        self.tokens_per_item = None
        self.path, self.model_config = path, None if model_config is None else dict(model_config)
        self.max_seconds, self.crop, self.device, self.dtype = max_seconds, crop, device, dtype

    def config(self) -> dict:
        """Plain JSON that rebuilds this codec (the weights folder included)."""
        return {
            "path": None if self.path is None else str(self.path),
            "model_config": self.model_config,
            "max_seconds": self.max_seconds,
            "crop": self.crop,
            "device": self.device,
            "dtype": self.dtype,
        }

    def inline_config(self) -> dict:
        """`config()` with no folder: the network shape inline, fresh weights; load `state_dict()`."""
        shape = {k: v for k, v in self.model.config.to_dict().items() if k not in _HF_BOOKKEEPING}
        return {**self.config(), "path": None, "model_config": json.loads(json.dumps(shape))}

    # -- encoding ----------------------------------------------------------------------------------

    def prepare(self, media: Any) -> np.ndarray:
        """A path, a waveform at 32 kHz or (waveform, rate) -> mono float32 at 32 kHz, cropped."""
        wav = to_waveform(media, self.sample_rate, source="encodec-32khz input")
        if self.max_seconds is not None:
            keep = max(1, round(self.max_seconds * self.sample_rate))
            start = 0 if self.crop == "start" else max(0, (len(wav) - keep) // 2)
            wav = wav[start : start + keep]
        return wav

    @torch.no_grad()
    def encode_batch(self, items: list[Any]) -> list[torch.Tensor]:
        """Several clips in one pass -> codes (4, ceil(samples / 640)) each.

        Shorter clips are zero-padded to the longest; their last frames may differ slightly from a
        lone `encode`, since the convolutions see the padding instead of the clip's reflected end.
        """
        if not items:
            return []
        wavs = [self.prepare(m) for m in items]
        param = next(self.model.parameters())
        longest = max(len(w) for w in wavs)
        x = torch.zeros(len(wavs), 1, longest, dtype=param.dtype)  # (B, 1, samples)
        mask = torch.zeros(len(wavs), 1, longest, dtype=torch.bool)
        for i, w in enumerate(wavs):
            x[i, 0, : len(w)] = torch.from_numpy(w)
            mask[i, 0, : len(w)] = True
        out = self.model.encode(
            x.to(param.device), mask.to(param.device), bandwidth=self.bandwidth, return_dict=True
        )
        codes = out.audio_codes[0].long().cpu()  # (chunks = 1, B, Q, frames) -> (B, Q, frames)
        return [c[:, : math.ceil(len(w) / self.hop)] for c, w in zip(codes, wavs)]

    def encode(self, media: Any) -> torch.Tensor:
        """One clip -> codes (4, frames), 50 frames a second."""
        return self.encode_batch([media])[0]

    # -- decoding ----------------------------------------------------------------------------------

    @torch.no_grad()
    def decode_batch(self, codes: list[torch.Tensor]) -> list[np.ndarray]:
        """Several code matrices (4, T_i) in one pass -> float32 waveforms (T_i * 640,)."""
        if not codes:
            return []
        checked = [check_codes(c, "encodec-32khz", self.num_codebooks, self.codebook_size) for c in codes]
        longest = max(c.shape[1] for c in checked)
        batch = torch.zeros(len(checked), self.num_codebooks, longest, dtype=torch.long)  # (B, Q, T)
        for i, c in enumerate(checked):
            batch[i, :, : c.shape[1]] = c
        device = next(self.model.parameters()).device
        out = self.model.decode(batch[None].to(device), [None], return_dict=True)  # (1, B, Q, T) ->
        audio = out.audio_values[:, 0].float().cpu()  # (B, 1, samples) -> (B, samples)
        return [audio[i, : c.shape[1] * self.hop].numpy() for i, c in enumerate(checked)]

    def decode(self, codes: torch.Tensor, *, voice: Any = None, seed: int | None = None) -> np.ndarray:
        """Codes (4, T) -> float32 waveform (T * 640,) at 32 kHz; voice and seed are unused."""
        return self.decode_batch([codes])[0]
