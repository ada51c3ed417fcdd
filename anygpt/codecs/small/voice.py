"""The voice renderer of small-speech with phone units: layer 1 (what is said) + a voice -> the rest.

    voice clip  features (B, dims, P) -> conv stack -> mean over its frames -> speaker vector (B, S)
                (no voice: a learnt average voice)
    phones      (B, T) -> embedding (B, width, T), scaled and shifted by the speaker vector
                -> conv stack (dilations 1, 2, 4, ...: about 0.3 s of context each side)
                -> acoustic latent (B, T, code_dim), layer-normed as the codec's encoder makes it

`SmallSpeechCodec.fill` quantizes what this latent holds beyond layer 1's own vector into layers
2..n_q, and the codec's decoder draws them: the same path as a reconstruction. It is the small codec's
counterpart of SoundStorm: SoundStorm samples the acoustic codes given layer 1 and a prompt; this
predicts the latent they quantize, in one pass. Trained on a frozen codec (`anygpt codecs train
voice`): the latent's squared error plus the spectral loss through the frozen decoder, the voice cut
from another utterance of the same speaker.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from anygpt.codecs.small.convstack import conv_stack


@dataclass(frozen=True)
class VoiceRendererConfig:
    width: int = 192
    depth: int = 6
    speaker_dim: int = 128
    speaker_depth: int = 3


class VoiceRenderer(nn.Module):
    def __init__(self, classes: int, dim_in: int, code_dim: int, cfg: VoiceRendererConfig):
        super().__init__()
        self.cfg = cfg
        self.phone = nn.Embedding(classes, cfg.width)
        self.speaker = conv_stack(dim_in, cfg.width, cfg.speaker_dim, cfg.speaker_depth)
        self.average_voice = nn.Parameter(torch.zeros(cfg.speaker_dim))
        self.film = nn.Linear(cfg.speaker_dim, 2 * cfg.width)
        self.body = conv_stack(cfg.width, cfg.width, code_dim, cfg.depth)

    def speaker_vector(self, feats: torch.Tensor | None, frames: torch.Tensor | None = None,
                       batch: int = 1) -> torch.Tensor:
        """Voice features (B, dims, P) with `frames` (B,) real frames each (None: all) -> (B, S);
        None -> the average voice (`batch` rows)."""
        if feats is None:
            return self.average_voice[None].expand(batch, -1)
        h = self.speaker(feats)  # (B, S, P)
        if frames is None:
            return h.mean(-1)
        keep = (torch.arange(h.shape[-1], device=h.device)[None] < frames[:, None]).float()  # (B, P)
        return (h * keep[:, None]).sum(-1) / keep.sum(-1, keepdim=True).clamp_min(1)

    def forward(self, phones: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        """Phone classes (B, T), speaker vectors (B, S) -> acoustic latent (B, T, code_dim)."""
        x = self.phone(phones).transpose(1, 2)  # (B, W, T)
        scale, shift = self.film(speaker).chunk(2, -1)
        z = self.body(x * (1 + scale[..., None]) + shift[..., None]).transpose(1, 2)
        return F.layer_norm(z, z.shape[-1:])


@dataclass(frozen=True)
class DurationConfig:
    width: int = 128
    depth: int = 4
    max_frames: int = 25  # the longest run it may give one phone (0.5 s at 50 Hz)


class DurationHead(nn.Module):
    """How long each phone lasts, for units merged into runs: phones (B, R) and the voice renderer's
    speaker vector (B, S) -> log frames per phone (B, R). Trained on the run lengths of the codec's own
    layer 1 (`anygpt codecs train durations`): speech in, its runs and their lengths out, no aligner."""

    def __init__(self, classes: int, speaker_dim: int, cfg: DurationConfig):
        super().__init__()
        self.cfg = cfg
        self.phone = nn.Embedding(classes, cfg.width)
        self.film = nn.Linear(speaker_dim, 2 * cfg.width)
        self.body = conv_stack(cfg.width, cfg.width, 1, cfg.depth)

    def forward(self, phones: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        x = self.phone(phones).transpose(1, 2)  # (B, W, R)
        scale, shift = self.film(speaker).chunk(2, -1)
        return self.body(x * (1 + scale[..., None]) + shift[..., None])[:, 0]

    def frames(self, phones: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        """Phones (1, R) -> whole frames per phone (R,), 1..max_frames."""
        log_frames = self(phones, speaker)[0]
        return log_frames.exp().round().clamp(1, self.cfg.max_frames).long()


def merge_runs(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes (1, T) -> each run of equal codes as one (1, R), and the runs' lengths (R,)."""
    merged, lengths = torch.unique_consecutive(codes[0], return_counts=True)
    return merged[None], lengths
