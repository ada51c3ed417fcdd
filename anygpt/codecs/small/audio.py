"""small-speech and small-music: one small spectral RVQ audio codec, trained here.

    waveform (B, L) -> STFT log-magnitude, `subframes` STFT frames per code frame (B, T, subframes * bins)
      encoder   conv 3 -> residual conv blocks (dilations 1, 2, 4, ...) -> 1x1 conv -> layer norm (B, T, code_dim)
      RVQ       n_q EMA codebooks of codebook_size                                        codes (B, n_q, T)
      decoder   the same conv stack back to the log-magnitudes; Griffin-Lim (with momentum) -> (B, T * hop)

    speech  16 kHz, hop 320 (50 Hz), STFT 512 / 160, 8 layers x 1024. Layer 1 comes from a content
            encoder of its own, trained only to tell the phone of each frame (flite's alignments of the
            world's sentences, as SpeechTokenizer distils HuBERT into its first layer); it carries the
            words, not the voice. units="phones" (the shipped codec): the code is the phone class itself
            (its log-probabilities averaged over 3 frames), so a code holds across a phone (mean run 4.6
            frames, 40 codes used, on the evaluation world's test speech); units="vq": the nearest entry
            of a 1024-code book over the content latent (a code changed every 1.3 frames). Each layer-1
            code also has an acoustic vector (`layer1`), and layers 2..8 quantize what that vector misses
            of the acoustic latent: voice, pitch, loudness.
            decode(layer 1, voice) -> layers 2..8 from the voice renderer (voice.py; "phones") or the
            small SoundStorm ("vq") -> decoder. runs="merged" (phone units): the LLM sees one code per run
            (one per phone, about 11 a second instead of 50), and a duration head (voice.py) gives each
            code its frames back before the renderer.
    music   32 kHz, hop 640 (50 Hz), STFT 1024 / 320, 4 layers x 2048, every layer to the LLM.
            units="vq" (the shipped codec): a plain 4-layer RVQ; units="tonal": layer 1 is the clip's
            instrument and each frame's pitch class (tonal.py), layers 2..4 quantize what it misses.

The decoder predicts magnitudes only; Griffin-Lim finds a phase (phase is what a waveform decoder spends
most of its capacity and training on; on the world's audio, Griffin-Lim of the true magnitudes keeps the
judges' scores: pocketsphinx WER 0.106 vs 0.100, resemblyzer similarity 0.999). Clips of any length
(the end is zero-padded to a whole frame).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from anygpt.codecs.base import check_codes, register_codec
from anygpt.codecs.small.convstack import conv_stack
from anygpt.codecs.small.rvq import ResidualVQ, VectorQuantizer
from anygpt.codecs.small.tonal import SLOTS, TonalUnits
from anygpt.codecs.small.voice import DurationConfig, DurationHead, VoiceRenderer, VoiceRendererConfig, merge_runs
from anygpt.codecs.soundstorm import MaskGITSchedule, SoundStorm, SoundStormConfig
from anygpt.errors import BundleError
from anygpt.media import to_waveform

UNITS = ("vq", "phones", "tonal")  # "tonal": music only
RUNS = ("frames", "merged")  # speech phone units: one code a frame (50 Hz), or one per run of equal codes
AUDIO_PEAK = 0.99  # decoded audio is clipped to this peak
# flite's US English phones (the world's speech); index 0, the pause, also stands for anything unknown
PHONES = ("pau", "aa", "ae", "ah", "ao", "aw", "ax", "axr", "ay", "b", "ch", "d", "dh", "eh", "el", "em", "en",
          "er", "ey", "f", "g", "hh", "ih", "iy", "jh", "k", "l", "m", "n", "ng", "ow", "oy", "p", "r", "s", "sh",
          "t", "th", "uh", "uw", "v", "w", "y", "z", "zh")
LOG_FLOOR = 1e-5  # magnitudes below this are silence


@dataclass(frozen=True)
class AudioCodecConfig:
    sample_rate: int = 16000
    hop: int = 320  # samples per code frame
    n_fft: int = 512
    subframes: int = 2  # STFT frames per code frame: the STFT hop is hop / subframes
    width: int = 256  # channels of the conv stacks
    depth: int = 4  # residual blocks per stack
    code_dim: int = 64  # RVQ vector size
    n_q: int = 8
    codebook_size: int = 1024
    content_classes: int = 0  # speech: len(PHONES), layer 1 from the content encoder; 0: plain RVQ
    decay: float = 0.99  # EMA of codebook updates
    gl_iters: int = 32  # Griffin-Lim iterations when decoding
    seed: int = 0
    acoustic_codebook_size: int = 0  # speech: entries of the codebooks of layers 2..n_q (0: codebook_size)
    units: str = "vq"  # speech layer 1: "vq" (a codebook over the content latent) or "phones" (the phone class);
    # music: "vq" (plain RVQ) or "tonal" (instrument x pitch class, tonal.py)
    instruments: tuple[str, ...] = ()  # music "tonal": the instrument classes of layer 1, in code order
    log_floor: float = LOG_FLOOR  # magnitudes below this are silence (the shipped codecs: 1e-5)

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop


def smoothed_choice(logits: torch.Tensor) -> torch.Tensor:
    """Phone logits (B, classes, T) -> the class of each frame (B, T), log-probabilities averaged over
    3 frames so that one-frame flickers inside a phone do not split it."""
    logp = logits.log_softmax(1)
    return F.avg_pool1d(logp, 3, 1, 1, count_include_pad=False).argmax(1)


def griffin_lim(mag: torch.Tensor, n_fft: int, hop: int, length: int, iters: int, momentum: float = 0.99,
                seed: int = 0) -> torch.Tensor:
    """Magnitudes (B, bins, frames) -> waveform (B, length): Griffin-Lim with momentum ("fast
    Griffin-Lim"), starting from phases drawn with `seed` (the same magnitudes give the same audio)."""
    window = torch.hann_window(n_fft, device=mag.device)
    gen = torch.Generator().manual_seed(seed)
    phase = torch.polar(torch.ones_like(mag), 2 * math.pi * torch.rand(mag.shape, generator=gen).to(mag.device))
    spec, prev = mag * phase, None
    for _ in range(iters):
        wav = torch.istft(spec, n_fft, hop, window=window, length=length)
        est = torch.stft(wav, n_fft, hop, window=window, return_complex=True)
        step = est if prev is None else est + momentum * (est - prev)
        prev = est
        spec = mag * torch.polar(torch.ones_like(mag), step.angle())
    return torch.istft(spec, n_fft, hop, window=window, length=length)


class SpectralRVQ(nn.Module):
    """The network: waveform <-> RVQ codes through STFT log-magnitudes; speech adds the content encoder."""

    def __init__(self, c: AudioCodecConfig):
        super().__init__()
        if c.hop % c.subframes or c.n_fft < c.hop // c.subframes:
            raise BundleError(f"audio codec: hop {c.hop} must split into {c.subframes} STFT hops of at most n_fft")
        self.c = c
        dim_in = c.bins * c.subframes
        # per-bin statistics of the training audio's log-magnitudes (set once before training)
        self.register_buffer("feat_mean", torch.zeros(c.bins))
        self.register_buffer("feat_std", torch.ones(c.bins))
        self.encoder = conv_stack(dim_in, c.width, c.code_dim, c.depth)
        self.decoder = conv_stack(c.code_dim, c.width, dim_in, c.depth)
        self.content = None
        n_rvq = c.n_q
        self.content_vq = None
        if c.units not in UNITS:
            raise BundleError(f"audio codec: units {c.units!r} is not one of {', '.join(UNITS)}")
        if c.content_classes:
            n_rvq = c.n_q - 1
            self.content = conv_stack(dim_in, c.width, c.code_dim, c.depth)
            if c.units == "vq":
                self.content_vq = VectorQuantizer(c.codebook_size, c.code_dim, c.decay, normalize=True)
            self.content_head = nn.Sequential(nn.Conv1d(c.code_dim, c.width, 3, padding=1), nn.GELU(),
                                              nn.Conv1d(c.width, c.content_classes, 1))
            self.layer1 = nn.Embedding(c.codebook_size, c.code_dim)  # acoustic vector of each layer-1 code
            nn.init.normal_(self.layer1.weight, std=0.1)
        self.tonal = None
        if c.units == "tonal":
            if c.content_classes or not c.instruments:
                raise BundleError("audio codec: units 'tonal' is for music and needs its instruments")
            n_rvq = c.n_q - 1
            self.tonal = TonalUnits(len(c.instruments), c.code_dim, c.width, c.sample_rate, c.hop)
            if self.tonal.size > c.codebook_size:
                raise BundleError(f"audio codec: {self.tonal.size} tonal codes do not fit {c.codebook_size}")
        acoustic = c.acoustic_codebook_size if c.content_classes and c.acoustic_codebook_size else c.codebook_size
        self.rvq = ResidualVQ(n_rvq, acoustic, c.code_dim, decay=c.decay)

    @property
    def stft_hop(self) -> int:
        return self.c.hop // self.c.subframes

    def log_magnitude(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, L), L a multiple of hop -> log-magnitudes (B, bins, subframes * T)."""
        c = self.c
        window = torch.hann_window(c.n_fft, device=wav.device)
        spec = torch.stft(wav, c.n_fft, self.stft_hop, window=window, return_complex=True)  # centred: +1 frame
        return spec[..., : wav.shape[-1] // self.stft_hop].abs().clamp_min(c.log_floor).log()

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, L) -> normalised log-magnitudes grouped by code frame (B, subframes * bins, T)."""
        logmag = (self.log_magnitude(wav) - self.feat_mean[:, None]) / self.feat_std[:, None]
        B, bins, n = logmag.shape
        S = self.c.subframes
        return logmag.view(B, bins, n // S, S).permute(0, 3, 1, 2).reshape(B, S * bins, n // S)

    def _latent(self, stack: nn.Module, feats: torch.Tensor) -> torch.Tensor:
        z = stack(feats).transpose(1, 2)  # (B, T, code_dim)
        return F.layer_norm(z, z.shape[-1:])

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, L) -> codes (B, n_q, T)."""
        feats = self.features(wav)
        z = self._latent(self.encoder, feats)
        B, T, D = z.shape
        flat = z.reshape(B * T, D).float()
        if self.tonal is not None:
            first = self.tonal.codes(self.tonal.clip_choice(self.tonal.logits(z)), self.tonal.slots(wav))
            rest = self.rvq.encode(flat - self.tonal.vectors(first).reshape(B * T, D))
            return torch.cat([first.reshape(1, B * T), rest]).view(-1, B, T).transpose(0, 1)
        if self.content is None:
            return self.rvq.encode(flat).view(-1, B, T).transpose(0, 1)
        first = self.layer_one(feats).reshape(B * T)
        rest = self.rvq.encode(flat - self.layer1(first))
        return torch.cat([first[None], rest]).view(-1, B, T).transpose(0, 1)

    def layer_one(self, feats: torch.Tensor) -> torch.Tensor:
        """Features (B, dims, T) -> layer-1 codes (B, T): the nearest codebook entry of the content latent
        ("vq"), or the phone class, its log-probabilities averaged over 3 frames so that a code holds
        across a phone ("phones")."""
        content = self._latent(self.content, feats)  # (B, T, D)
        if self.content_vq is not None:
            B, T, D = content.shape
            return self.content_vq.codes(content.reshape(B * T, D)).view(B, T)
        return smoothed_choice(self.content_head(content.transpose(1, 2)))

    def phone_logits(self, first: torch.Tensor) -> torch.Tensor:
        """Layer-1 codes (B, T) -> the content head's phone logits (B, classes, T) from layer 1 alone."""
        if self.content_vq is None:
            return F.one_hot(self.valid_phones(first), self.c.content_classes).float().transpose(1, 2)
        return self.content_head(self.content_vq.lookup(first).transpose(1, 2))

    def valid_phones(self, first: torch.Tensor) -> torch.Tensor:
        """Phone units: ids past the phone classes (an LLM may write any id of the codebook) -> 0, the pause."""
        if self.content_vq is not None:
            return first
        return first.masked_fill(first >= self.c.content_classes, 0)

    def vectors(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, n_q', T), n_q' <= n_q layers -> summed vectors (B, T, code_dim)."""
        layers = codes.transpose(0, 1)
        if self.tonal is not None:
            out = self.tonal.vectors(layers[0])
        elif self.content is None:
            return self.rvq.decode(layers)
        else:
            out = self.layer1(self.valid_phones(layers[0]))
        return out + self.rvq.decode(layers[1:]) if len(layers) > 1 else out

    def predict(self, vectors: torch.Tensor) -> torch.Tensor:
        """(B, T, code_dim) -> normalised log-magnitudes (B, subframes * bins, T)."""
        return self.decoder(vectors.transpose(1, 2))

    def to_magnitude(self, pred: torch.Tensor) -> torch.Tensor:
        """(B, subframes * bins, T) normalised -> magnitudes (B, bins, subframes * T)."""
        B, _, T = pred.shape
        S, bins = self.c.subframes, self.c.bins
        logmag = pred.view(B, S, bins, T).permute(0, 2, 3, 1).reshape(B, bins, T * S)
        return (logmag * self.feat_std[:, None] + self.feat_mean[:, None]).exp()

    def decode(self, codes: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """codes (B, n_q, T) -> (B, T * hop) through Griffin-Lim."""
        mag = self.to_magnitude(self.predict(self.vectors(codes)).float())
        mag = torch.cat([mag, mag[..., -1:]], -1)  # the centred STFT's one extra frame at the end
        T = codes.shape[-1]
        return griffin_lim(mag, self.c.n_fft, self.stft_hop, T * self.c.hop, self.c.gl_iters, seed=seed)

    def forward(self, wav: torch.Tensor, generator: torch.Generator | None = None, quantize: bool = True):
        """Training pass: (B, L) -> dict(pred, target (B, subframes * bins, T) normalised, codes
        (B, n_q, T), commit, content_logits (B, classes, T): the phones, the instruments of "tonal",
        or None). `quantize=False` (the first steps) passes the latents through unquantized; codes are
        then all 0."""
        feats = self.features(wav)
        z = self._latent(self.encoder, feats)
        B, T, D = z.shape
        flat = z.reshape(B * T, D)
        codes = torch.zeros(B * T, dtype=torch.long)[None].expand(self.c.n_q, -1)
        base: torch.Tensor | float = 0.0
        commit = z.new_zeros(())
        logits = None
        if self.tonal is not None:  # layer 1: the head's clip choice of instrument and the frames' slots
            logits = self.tonal.logits(z)
            first = self.tonal.codes(self.tonal.clip_choice(logits.detach()), self.tonal.slots(wav)).reshape(B * T)
            base = self.tonal.vectors(first)
            commit = commit + F.mse_loss(base, flat.detach())  # each vector learns the mean latent of its frames
            flat = flat - base.detach()
        elif self.content is not None:
            content = self._latent(self.content, feats).reshape(B * T, D)
            if self.content_vq is None:  # phone units: the head reads the latent; layer 1 is its choice
                logits = self.content_head(content.view(B, T, D).transpose(1, 2))
                q1, first, commit1 = None, smoothed_choice(logits.detach()).reshape(B * T), content.new_zeros(())
            elif quantize:
                q1, first, commit1 = self.content_vq(content, generator)
            else:
                q1, first, commit1 = F.normalize(content, dim=-1), codes[0], content.new_zeros(())
            if q1 is not None:
                logits = self.content_head(q1.view(B, T, D).transpose(1, 2))
            # the acoustic vector of a layer-1 code learns the mean latent of its frames
            base = self.layer1(first)
            commit = commit + commit1 + F.mse_loss(base, flat.detach())
            flat = flat - base.detach()
        if quantize:
            q, rest, _, c2 = self.rvq(flat, generator)
            commit = commit + c2
            codes = torch.cat([first[None], rest]) if self.content is not None or self.tonal is not None else rest
        else:
            q = flat
        pred = self.predict((base + q).view(B, T, D))
        return {"pred": pred, "target": feats, "codes": codes.reshape(-1, B, T).transpose(0, 1),
                "commit": commit, "content_logits": logits}

    @torch.no_grad()
    def set_statistics(self, wavs: list[torch.Tensor]) -> None:
        """Per-bin mean and standard deviation of the log-magnitudes of `wavs` (each (L,))."""
        logmag = torch.cat([self.log_magnitude(w[None])[0] for w in wavs], 1)  # (bins, frames)
        self.feat_mean.copy_(logmag.mean(1))
        self.feat_std.copy_(logmag.std(1).clamp_min(1e-3))


def spectral_loss(pred: torch.Tensor, target: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
    """L1 + MSE of normalised log-magnitudes (B, dims, T); `frames` (B,) counts the real frames of each."""
    err = pred - target
    loss = err.abs() + err.square()
    if frames is None:
        return loss.mean()
    keep = (torch.arange(pred.shape[-1])[None] < frames[:, None])[:, None].float()  # (B, 1, T)
    return (loss * keep).sum() / (keep.sum() * pred.shape[1]).clamp_min(1)


def mel_power_loss(net: SpectralRVQ, pred: torch.Tensor, target: torch.Tensor,
                   frames: torch.Tensor | None = None, bands: int = 64, eps: float = 1e-2) -> torch.Tensor:
    """L1 of log mel-band power between predicted and true normalised log-magnitudes (B, dims, T).
    A log-magnitude regression predicts the mean of the log, below the log of the mean power where the
    spectrum is rough (harmonics, noise): band energies come out low; this loss holds them."""
    fb = mel_filterbank(net.c.sample_rate, net.c.n_fft, bands).to(pred.device)  # (bands, bins)
    err = ((fb @ net.to_magnitude(pred).square() + eps).log()
           - (fb @ net.to_magnitude(target).square() + eps).log()).abs()  # (B, bands, subframes * T)
    if frames is None:
        return err.mean()
    keep = (torch.arange(err.shape[-1])[None] < frames[:, None] * net.c.subframes)[:, None].float()
    return (err * keep).sum() / (keep.sum() * bands).clamp_min(1)


# ---------------------------------------------------------------------------------------------
# Mel distance (evaluation)


@lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    """HTK-scale triangular mel filters (n_mels, n_fft // 2 + 1)."""
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    mels = np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_mels + 2)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    fb = np.zeros((n_mels, len(bins)), dtype=np.float32)
    for m in range(n_mels):
        lo, mid, hi = hz[m], hz[m + 1], hz[m + 2]
        fb[m] = np.clip(np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)), 0, None)
    return torch.from_numpy(fb)


def mel_distance(x: np.ndarray, y: np.ndarray, sample_rate: int) -> float:
    """Mean absolute difference of 64-band log-mel spectrograms (64 ms windows at 16 kHz, scaled)."""
    n = min(len(x), len(y))
    n_fft = 1024 * max(1, sample_rate // 16000)
    fb = mel_filterbank(sample_rate, n_fft, 64)
    window = torch.hann_window(n_fft)
    mels = []
    for w in (x[:n], y[:n]):
        spec = torch.stft(torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)), n_fft, n_fft // 4,
                          window=window, return_complex=True).abs()
        mels.append((fb @ spec).clamp_min(1e-5).log())
    return float((mels[0] - mels[1]).abs().mean())


def phone_string(log_probs: torch.Tensor) -> str:
    """(T, classes) -> the best phone per frame, repeats merged, pauses dropped: 'dh ax k ae t'."""
    best = log_probs.argmax(-1).tolist()
    out = [PHONES[b] for i, b in enumerate(best) if b and (i == 0 or best[i - 1] != b)]
    return " ".join(out)


# ---------------------------------------------------------------------------------------------
# The codecs


def _prepare(wav: np.ndarray, hop: int) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
    return F.pad(x, (0, -len(x) % hop))[None]  # (1, L)


def _to_numpy(wav: torch.Tensor) -> np.ndarray:
    return wav.clamp(-AUDIO_PEAK, AUDIO_PEAK).float().cpu().numpy().astype(np.float32)


def small_soundstorm_config(codebook_size: int, n_q: int, acoustic_codebook_size: int = 0,
                            **overrides: Any) -> SoundStormConfig:
    """The small SoundStorm of the small speech codec (the same class as the released one): layer-1
    codes of `codebook_size` in, `n_q - 1` acoustic levels of `acoustic_codebook_size` (0: the same) out."""
    base = {"dim": 128, "depth": 4, "heads": 4, "head_dim": 32, "ff_mult": 2, "conv_expansion": 2, "conv_kernel": 15}
    base.update(overrides)
    return SoundStormConfig(codebook_size=acoustic_codebook_size or codebook_size, num_quantizers=n_q - 1,
                            semantic_vocab=codebook_size, pad_id=codebook_size, **base)


class _AudioCodecBase(nn.Module):
    name = "small-audio"

    def _build(self, cfg: AudioCodecConfig) -> None:
        self.cfg = cfg
        self.sample_rate = cfg.sample_rate
        self.hop = cfg.hop
        self.frame_rate = cfg.frame_rate
        self.tokens_per_item = None
        self.codebook_size = cfg.codebook_size
        self.n_q = cfg.n_q
        self.net = SpectralRVQ(cfg)

    def _config(self) -> dict:
        d = asdict(self.cfg)
        d.pop("content_classes")
        d["instruments"] = list(d["instruments"])
        for key, default in (("instruments", []), ("log_floor", LOG_FLOOR)):
            if d[key] == default:  # options at their defaults are left out: shipped configs read as they did
                d.pop(key)
        return d

    @torch.no_grad()
    def encode_rvq(self, media: Any) -> torch.Tensor:
        """Waveform (samples,) at sample_rate (or a path, or (waveform, rate)) -> all layers (n_q, frames)."""
        wav = to_waveform(media, self.sample_rate, source=f"{self.name} input")
        return self.net.encode(_prepare(wav, self.hop))[0]

    @torch.no_grad()
    def decode_rvq(self, codes: torch.Tensor, seed: int = 0) -> np.ndarray:
        """All layers (n_q, T) -> float32 waveform (T * hop,); `seed` draws Griffin-Lim's first phases."""
        codes = check_codes(codes, self.name, self.n_q, self.codebook_size)
        return _to_numpy(self.net.decode(codes[None], seed=seed)[0])


@register_codec("small-speech", "speech")
class SmallSpeechCodec(_AudioCodecBase):
    """16 kHz, 50 Hz, 8 RVQ layers; the LLM sees layer 1 (the words); SoundStorm puts the voice back."""

    name = "small-speech"

    def __init__(self, sample_rate: int = 16000, hop: int = 320, n_fft: int = 512, subframes: int = 2,
                 width: int = 256, depth: int = 4, code_dim: int = 64, n_q: int = 8, codebook_size: int = 1024,
                 decay: float = 0.99, gl_iters: int = 32, soundstorm: dict | None = None,
                 voice_max_seconds: float | None = 3.0, steps: int = 8, temperature: float = 1.0, seed: int = 0,
                 acoustic_codebook_size: int = 0, units: str = "vq", renderer: dict | None = None,
                 runs: str = "frames", durations: dict | None = None):
        super().__init__()
        if runs not in RUNS:
            raise BundleError(f"small-speech: runs {runs!r} is not one of {', '.join(RUNS)}")
        if runs == "merged" and units != "phones":
            raise BundleError("small-speech: runs 'merged' needs phone units (units='phones')")
        cfg = AudioCodecConfig(sample_rate, hop, n_fft, subframes, width, depth, code_dim, n_q, codebook_size,
                               len(PHONES), decay, gl_iters, seed, acoustic_codebook_size, units)
        self.modality = "speech"
        self.num_codebooks = 1
        self.voice_max_seconds = voice_max_seconds
        self.schedule = MaskGITSchedule(steps=steps, temperature=temperature)
        self._extra = {"voice_max_seconds": voice_max_seconds}
        with torch.random.fork_rng(devices=[]):  # fresh weights from `seed`, global RNG untouched
            torch.manual_seed(seed)
            self._build(cfg)
            self.soundstorm = self.renderer = None
            if units == "phones":  # layers 2..n_q from the voice renderer
                self._extra["renderer"] = dict(renderer or {})
                self.renderer = VoiceRenderer(len(PHONES), cfg.bins * cfg.subframes, code_dim,
                                              VoiceRendererConfig(**(renderer or {})))
            else:  # layers 2..n_q from SoundStorm
                self._extra.update(soundstorm=dict(soundstorm or {}), steps=steps, temperature=temperature)
                ss = small_soundstorm_config(codebook_size, n_q, acoustic_codebook_size, **(soundstorm or {}))
                self.soundstorm = SoundStorm(ss)
            self.runs, self.durations = runs, None
            if runs == "merged":  # one code per phone; the duration head gives each its frames back
                self._extra.update(runs=runs, durations=dict(durations or {}))
                self.durations = DurationHead(len(PHONES), self.renderer.cfg.speaker_dim,
                                              DurationConfig(**(durations or {})))
        self.eval()

    def config(self) -> dict:
        d = {**self._config(), **self._extra}
        if self.renderer is None:
            d.pop("units")  # the SoundStorm codec's config reads as it always did
        return d

    @torch.no_grad()
    def encode(self, media: Any) -> torch.Tensor:
        """Waveform (samples,) at 16 kHz -> layer-1 codes (1, frames), 50 frames a second; with runs
        "merged", one code per run of equal codes (one per phone, about 11 a second)."""
        codes = self.encode_rvq(media)[:1]
        return merge_runs(codes)[0] if self.runs == "merged" else codes

    @torch.no_grad()
    def voice_prompt(self, voice: Any) -> torch.Tensor:
        """A voice (path, waveform, or (waveform, rate)) cut to voice_max_seconds -> all layers (n_q, P)."""
        wav = to_waveform(voice, self.sample_rate, source="voice prompt", max_seconds=self.voice_max_seconds)
        return self.net.encode(_prepare(wav, self.hop))[0]

    @torch.no_grad()
    def fill(self, codes: torch.Tensor, *, voice: Any = None, seed: int | None = None) -> torch.Tensor:
        """Layer-1 codes (1, T) -> every layer (n_q, T'), layers 2..n_q from SoundStorm or the voice
        renderer; row 0 is `codes` (with runs "merged", each code repeated for its predicted frames)."""
        semantic = check_codes(codes, self.name, 1, self.codebook_size)
        if self.renderer is not None:
            return self._render(semantic, voice)
        prompt = None if voice is None else self.voice_prompt(voice).T[None]  # (1, P, n_q)
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
        full = self.soundstorm.generate(semantic, prompt, schedule=self.schedule, generator=generator)
        return full[0].T  # (n_q, T)

    def _render(self, semantic: torch.Tensor, voice: Any) -> torch.Tensor:
        """Phone units (1, T) -> every layer (n_q, T): the voice renderer's latent, less layer 1's vector,
        quantized into layers 2..n_q."""
        phones = self.net.valid_phones(semantic)
        feats = None
        if voice is not None:
            wav = to_waveform(voice, self.sample_rate, source="voice prompt", max_seconds=self.voice_max_seconds)
            feats = self.net.features(_prepare(wav, self.hop))
        speaker = self.renderer.speaker_vector(feats)
        if self.durations is not None:  # merged runs: each phone back to its frames
            frames = self.durations.frames(phones, speaker)
            phones, semantic = (x.repeat_interleave(frames, dim=1) for x in (phones, semantic))
        z = self.renderer(phones, speaker)[0]  # (T, D)
        rest = self.net.rvq.encode(z - self.net.layer1(phones[0]))  # (n_q - 1, T)
        return torch.cat([semantic, rest])

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, *, voice: Any = None, seed: int | None = None) -> np.ndarray:
        """Layer-1 codes (1, T) -> float32 waveform (T * 320,) at 16 kHz, in the voice of `voice`
        (SoundStorm keeps its codes unmasked in front; the renderer takes its speaker vector), or a
        random (average) one; `seed` (None: 0) fixes sampling."""
        return self.decode_rvq(self.fill(codes, voice=voice, seed=seed), seed=0 if seed is None else int(seed))

    @torch.no_grad()
    def phones(self, media: Any) -> str:
        """The phones the content head reads from layer 1 alone: how much of the words layer 1 carries."""
        return phone_string(self.net.phone_logits(self.encode(media))[0].T)


@register_codec("small-music", "music")
class SmallMusicCodec(_AudioCodecBase):
    """32 kHz, 50 Hz, 4 RVQ layers, every layer to the LLM (frame-major in the vocabulary layout)."""

    name = "small-music"

    def __init__(self, sample_rate: int = 32000, hop: int = 640, n_fft: int = 1024, subframes: int = 2,
                 width: int = 256, depth: int = 4, code_dim: int = 64, num_codebooks: int = 4,
                 codebook_size: int = 2048, decay: float = 0.99, gl_iters: int = 32, seed: int = 0,
                 units: str = "vq", instruments: list[str] | tuple[str, ...] = (), log_floor: float = LOG_FLOOR):
        super().__init__()
        cfg = AudioCodecConfig(sample_rate, hop, n_fft, subframes, width, depth, code_dim, num_codebooks,
                               codebook_size, 0, decay, gl_iters, seed, units=units,
                               instruments=tuple(instruments), log_floor=log_floor)
        self.modality = "music"
        self.num_codebooks = num_codebooks
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._build(cfg)
        self.eval()

    def config(self) -> dict:
        d = self._config()
        d["num_codebooks"] = d.pop("n_q")
        d.pop("acoustic_codebook_size")
        if d["units"] == "vq":  # the shipped (plain RVQ) codec's config reads as it always did
            d.pop("units")
        return d

    @torch.no_grad()
    def instrument(self, media: Any) -> str | None:
        """The instrument layer 1 names ("tonal" units; None for a plain RVQ): what an LLM reads."""
        if self.net.tonal is None:
            return None
        first = self.net.tonal.valid(self.encode(media)[0])
        return self.cfg.instruments[int(first.mode().values) // SLOTS]

    @torch.no_grad()
    def encode(self, media: Any) -> torch.Tensor:
        """Waveform (samples,) at 32 kHz -> codes (num_codebooks, frames), 50 frames a second."""
        return self.encode_rvq(media)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, *, voice: Any = None, seed: int | None = None) -> np.ndarray:
        """Codes (num_codebooks, T) -> float32 waveform (T * 640,); `voice` is unused."""
        return self.decode_rvq(codes, seed=0 if seed is None else int(seed))
