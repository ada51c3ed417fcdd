"""Tonal layer 1 of small-music (units="tonal"): the clip's instrument and each frame's pitch class.

    code = instrument * SLOTS + slot          (instruments * 13 ids of the codebook; the rest unused)
      instrument   a head over the encoder latent, trained on the world's instrument of each clip
                   (B, instruments, T); a clip takes the class of its mean log-probabilities, so the
                   instrument holds across the clip
      slot         0: a rest (a frame REST_DB below the clip's loudest), 1..12: the pitch class C..B
                   that dominates the frame's chroma (no learning: a 4096-point STFT folded onto 12
                   pitch classes over CHROMA_HZ, log-chroma averaged over 3 frames)

    codes (B, T) -> vector (B, T, code_dim) = instrument vector + slot vector: each learns the mean
    encoder latent of its frames, and layers 2..n_q quantize what layer 1 misses.

Why: an LLM reads and writes the instrument as one repeated id and the melody as runs of pitch
classes (the key is their histogram, the tempo how often they change), as small-speech's layer 1 is
the phone; the decoder is told the instrument, the timbre that a plain 4-layer RVQ loses.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SLOTS = 13  # rest + 12 pitch classes
CHROMA_FFT = 4096  # 128 ms at 32 kHz: 7.8 Hz bins, a semitone apart from about 130 Hz up
CHROMA_HZ = (130.0, 4200.0)
REST_DB = 50.0  # a frame this far below the clip's loudest is a rest


def chroma_matrix(sample_rate: int, n_fft: int, band: tuple[float, float] = CHROMA_HZ) -> torch.Tensor:
    """(12, n_fft // 2 + 1): 1 where a bin's nearest equal-tempered pitch is that pitch class (C = 0)."""
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    keep = np.nonzero((freqs >= band[0]) & (freqs <= band[1]))[0]
    pitch_class = (np.round(12 * np.log2(freqs[keep] / 440.0)).astype(int) + 9) % 12  # A = 9
    out = np.zeros((12, len(freqs)), np.float32)
    out[pitch_class, keep] = 1.0
    return torch.from_numpy(out)


class TonalUnits(nn.Module):
    """The instrument head, the pitch-class slots and the vectors of layer-1 codes."""

    def __init__(self, instruments: int, code_dim: int, width: int, sample_rate: int, hop: int):
        super().__init__()
        self.instruments, self.hop = instruments, hop
        self.head = nn.Sequential(nn.Conv1d(code_dim, width, 3, padding=1), nn.GELU(),
                                  nn.Conv1d(width, instruments, 1))
        self.instrument_vec = nn.Embedding(instruments, code_dim)
        self.slot_vec = nn.Embedding(SLOTS, code_dim)
        for emb in (self.instrument_vec, self.slot_vec):
            nn.init.normal_(emb.weight, std=0.1)
        self.register_buffer("chroma", chroma_matrix(sample_rate, CHROMA_FFT), persistent=False)

    @property
    def size(self) -> int:
        """Layer-1 ids in use: instruments * SLOTS."""
        return self.instruments * SLOTS

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """Encoder latent (B, T, D) -> instrument logits (B, instruments, T)."""
        return self.head(z.transpose(1, 2))

    @torch.no_grad()
    def slots(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, T * hop) -> the slot of each frame (B, T): 0 rest, 1 + pitch class."""
        T = wav.shape[-1] // self.hop
        window = torch.hann_window(CHROMA_FFT, device=wav.device)
        mag = torch.stft(wav.float(), CHROMA_FFT, self.hop, window=window, return_complex=True).abs()[..., :T]
        chroma = (self.chroma @ mag.square()).clamp_min(1e-10)  # (B, 12, T) power per pitch class
        smooth = F.avg_pool1d(chroma.log(), 3, 1, 1, count_include_pad=False)
        level = 10 * torch.log10(chroma.sum(1))  # (B, T) dB
        rest = level < level.amax(-1, keepdim=True) - REST_DB
        return (smooth.argmax(1) + 1).masked_fill(rest, 0)

    @staticmethod
    def clip_choice(logits: torch.Tensor) -> torch.Tensor:
        """Instrument logits (B, instruments, T) -> one class per clip, repeated (B, T)."""
        best = logits.log_softmax(1).mean(-1).argmax(-1)  # (B,)
        return best[:, None].expand(-1, logits.shape[-1])

    def codes(self, instrument: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """Instrument (B, T) and slots (B, T) -> layer-1 codes (B, T)."""
        return instrument * SLOTS + slots

    def valid(self, codes: torch.Tensor) -> torch.Tensor:
        """Ids past instruments * SLOTS (an LLM may write any id of the codebook) -> 0."""
        return codes.masked_fill(codes >= self.size, 0)

    def vectors(self, codes: torch.Tensor) -> torch.Tensor:
        """Layer-1 codes (...,) -> instrument vector + slot vector (..., code_dim)."""
        codes = self.valid(codes)
        return self.instrument_vec(codes // SLOTS) + self.slot_vec(codes % SLOTS)
