"""small-speech and small-music: one small convolutional RVQ audio codec, trained here.

    waveform (B, 1, L), L a multiple of hop = prod(strides)
      encoder   conv 7 -> per stride s: 2 residual units (dilation 1, 3; none at full rate), strided conv (x2 channels)
                -> 2 residual units at frame rate -> 1x1 conv to code_dim -> layer norm (B, code_dim, T)
      RVQ       n_q EMA codebooks of codebook_size                                 codes (n_q, B*T)
      decoder   mirror: 1x1 conv, residual units, transposed strided convs -> conv 7 (B, 1, T * hop)
      ctc head  (speech) on layer-1 vectors only: 2 convs -> character logits      (B, T, 29)

    speech  16 kHz, strides 4,4,4,5 = 320 samples a frame (50 Hz), 8 layers x 1024;
            the CTC head reads the words from layer 1 (as SpeechTokenizer distils HuBERT into it),
            so layer 1 is what the LLM sees and layers 2..8 keep voice and acoustics.
            decode(layer 1, voice) -> the small SoundStorm fills layers 2..8 -> decoder.
    music   32 kHz, strides 4,4,5,8 = 640 samples a frame (50 Hz), 4 layers x 2048, every layer to the LLM.

Fully convolutional: clips of any length (the end is zero-padded to a whole frame).
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
from anygpt.codecs.small.rvq import ResidualVQ
from anygpt.codecs.soundstorm import MaskGITSchedule, SoundStorm, SoundStormConfig
from anygpt.errors import BundleError
from anygpt.media import to_waveform

AUDIO_PEAK = 0.99  # decoded audio is clipped to this peak
CTC_CHARS = " abcdefghijklmnopqrstuvwxyz'"  # CTC classes 1..28; class 0 is the blank


@dataclass(frozen=True)
class AudioCodecConfig:
    sample_rate: int = 16000
    strides: tuple[int, ...] = (4, 4, 4, 5)  # their product is the hop: samples per code frame
    channels: int = 8  # width of the first conv; doubled at each stride up to max_channels
    max_channels: int = 96
    code_dim: int = 32  # RVQ vector size
    n_q: int = 8
    codebook_size: int = 1024
    ctc_vocab: int = 0  # 0: no CTC head; speech: 1 + len(CTC_CHARS)
    decay: float = 0.99  # EMA of codebook updates
    seed: int = 0

    @property
    def hop(self) -> int:
        return math.prod(self.strides)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop


def _widths(c: AudioCodecConfig) -> list[int]:
    """Channels before each stride and after the last: [8, 16, 32, 64, 96] for 4 strides."""
    return [min(c.channels * 2**i, c.max_channels) for i in range(len(c.strides) + 1)]


class _ResUnit(nn.Module):
    def __init__(self, ch: int, dilation: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.ELU(), nn.Conv1d(ch, ch, 7, dilation=dilation, padding=3 * dilation), nn.ELU(), nn.Conv1d(ch, ch, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


def _units(ch: int, stage: int) -> list[nn.Module]:
    """Residual units (dilations 1, 3) of a stage; none at the full sample rate (stage 0), where
    they would cost more than all the other stages together."""
    return [] if stage == 0 else [_ResUnit(ch, 1), _ResUnit(ch, 3)]


class AudioRVQ(nn.Module):
    """The network: waveform <-> RVQ codes, plus an optional CTC head on layer 1."""

    def __init__(self, c: AudioCodecConfig):
        super().__init__()
        self.c = c
        w = _widths(c)
        enc: list[nn.Module] = [nn.Conv1d(1, w[0], 7, padding=3)]
        for i, s in enumerate(c.strides):
            # kernel 2s, padding ceil(s/2): exactly L/s frames out for L a multiple of s
            enc += _units(w[i], i) + [nn.ELU(), nn.Conv1d(w[i], w[i + 1], 2 * s, s, (s + 1) // 2)]
        enc += [_ResUnit(w[-1], 1), _ResUnit(w[-1], 3), nn.ELU(), nn.Conv1d(w[-1], c.code_dim, 1)]
        self.encoder = nn.Sequential(*enc)
        self.rvq = ResidualVQ(c.n_q, c.codebook_size, c.code_dim, decay=c.decay)
        dec: list[nn.Module] = [nn.Conv1d(c.code_dim, w[-1], 7, padding=3), _ResUnit(w[-1], 1), _ResUnit(w[-1], 3)]
        for i, s in reversed(list(enumerate(c.strides))):
            # output_padding makes exactly L * s samples for odd s
            dec += [nn.ELU(), nn.ConvTranspose1d(w[i + 1], w[i], 2 * s, s, (s + 1) // 2, output_padding=s % 2),
                    *_units(w[i], i)]
        dec += [nn.ELU(), nn.Conv1d(w[0], 1, 7, padding=3)]
        self.decoder = nn.Sequential(*dec)
        self.ctc = None
        if c.ctc_vocab:
            hidden = 128
            self.ctc = nn.Sequential(
                nn.Conv1d(c.code_dim, hidden, 5, padding=2), nn.GELU(),
                nn.Conv1d(hidden, hidden, 5, padding=2), nn.GELU(),
                nn.Conv1d(hidden, c.ctc_vocab, 1),
            )

    def latent(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, L) with L % hop == 0 -> (B, T, code_dim), each frame's vector normalised to zero mean
        and unit variance: no common offset or drifting scale for the codebooks to chase (without it
        layer 1 collapses onto a few codes early in training)."""
        z = self.encoder(wav[:, None]).transpose(1, 2)
        return F.layer_norm(z, z.shape[-1:])

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, L) -> codes (B, n_q, T)."""
        z = self.latent(wav)
        B, T, D = z.shape
        return self.rvq.encode(z.reshape(B * T, D).float()).view(-1, B, T).transpose(0, 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, n_q, T) -> (B, T * hop)."""
        z = self.rvq.decode(codes.transpose(0, 1))  # (B, T, code_dim)
        return self.decoder(z.transpose(1, 2))[:, 0]

    def ctc_logits(self, layer1: torch.Tensor) -> torch.Tensor:
        """Layer-1 vectors (B, T, code_dim) -> log-probabilities (B, T, ctc_vocab)."""
        return self.ctc(layer1.transpose(1, 2)).transpose(1, 2).log_softmax(-1)

    def forward(self, wav: torch.Tensor, generator: torch.Generator | None = None, quantize: bool = True):
        """Training pass: (B, L) -> dict(recon (B, L), codes (B, n_q, T), commit, layer1 (B, T, code_dim)).
        `quantize=False` (the first training steps) passes the latent through unquantized, so the encoder
        learns informative features before the codebooks are seeded from them; codes are then all 0."""
        z = self.latent(wav)
        B, T, D = z.shape
        if not quantize:
            recon = self.decoder(z.transpose(1, 2))[:, 0]
            return {"recon": recon, "codes": torch.zeros(B, self.c.n_q, T, dtype=torch.long),
                    "commit": z.new_zeros(()), "layer1": z}
        q, codes, parts, commit = self.rvq(z.reshape(B * T, D), generator)
        recon = self.decoder(q.view(B, T, D).transpose(1, 2))[:, 0]
        return {"recon": recon, "codes": codes.view(-1, B, T).transpose(0, 1), "commit": commit,
                "layer1": parts[0].view(B, T, D)}


# ---------------------------------------------------------------------------------------------
# Losses: multi-resolution STFT and log-mel (no GAN)


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


def _magnitude(x: torch.Tensor, n_fft: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, device=x.device)
    spec = torch.stft(x, n_fft, hop_length=n_fft // 4, window=window, return_complex=True)
    return spec.abs().clamp_min(1e-5)  # (B, F, frames)


def audio_losses(x: torch.Tensor, y: torch.Tensor, sample_rate: int) -> dict[str, torch.Tensor]:
    """Losses of reconstruction y against x, both (B, L): multi-resolution STFT (log-magnitude L1 +
    spectral convergence) at windows of 16, 32, 64 ms, log-mel L1 (64 bands, 64 ms), waveform L1."""
    scale = sample_rate // 16000 or 1
    stft = x.new_zeros(())
    for n_fft in (256 * scale, 512 * scale, 1024 * scale):
        mx, my = _magnitude(x, n_fft), _magnitude(y, n_fft)
        stft = stft + F.l1_loss(my.log(), mx.log()) + (mx - my).norm() / mx.norm().clamp_min(1e-5)
    n_fft = 1024 * scale
    fb = mel_filterbank(sample_rate, n_fft, 64).to(x.device)
    mel_x = (fb @ _magnitude(x, n_fft)).clamp_min(1e-5).log()
    mel_y = (fb @ _magnitude(y, n_fft)).clamp_min(1e-5).log()
    return {"stft": stft / 3, "mel": F.l1_loss(mel_y, mel_x), "wave": F.l1_loss(y, x)}


def text_to_ctc(text: str) -> list[int]:
    """Transcript -> CTC classes (1..28); other characters dropped, spaces collapsed."""
    text = " ".join(text.lower().split())
    return [CTC_CHARS.index(ch) + 1 for ch in text if ch in CTC_CHARS]


def ctc_greedy(log_probs: torch.Tensor) -> str:
    """(T, vocab) -> text: best class per frame, repeats merged, blanks dropped."""
    best = log_probs.argmax(-1).tolist()
    out, prev = [], 0
    for b in best:
        if b != prev and b != 0:
            out.append(CTC_CHARS[b - 1])
        prev = b
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# The codecs


def _prepare(wav: np.ndarray, hop: int) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
    return F.pad(x, (0, -len(x) % hop))[None]  # (1, L)


def _to_numpy(wav: torch.Tensor) -> np.ndarray:
    return wav.clamp(-AUDIO_PEAK, AUDIO_PEAK).float().cpu().numpy().astype(np.float32)


def small_soundstorm_config(codebook_size: int, n_q: int, **overrides: Any) -> SoundStormConfig:
    """The small SoundStorm of the small speech codec (the same class as the released one)."""
    base = dict(dim=64, depth=3, heads=4, head_dim=16, ff_mult=2, conv_expansion=2, conv_kernel=15)
    base.update(overrides)
    return SoundStormConfig(codebook_size=codebook_size, num_quantizers=n_q - 1, semantic_vocab=codebook_size,
                            pad_id=codebook_size, **base)


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
        self.net = AudioRVQ(cfg)

    @torch.no_grad()
    def encode_rvq(self, media: Any) -> torch.Tensor:
        """Waveform (samples,) at sample_rate (or a path, or (waveform, rate)) -> all layers (n_q, frames)."""
        wav = to_waveform(media, self.sample_rate, source=f"{self.name} input")
        return self.net.encode(_prepare(wav, self.hop))[0]

    @torch.no_grad()
    def decode_rvq(self, codes: torch.Tensor) -> np.ndarray:
        """All layers (n_q, T) -> float32 waveform (T * hop,)."""
        codes = check_codes(codes, self.name, self.n_q, self.codebook_size)
        return _to_numpy(self.net.decode(codes[None])[0])


@register_codec("small-speech", "speech")
class SmallSpeechCodec(_AudioCodecBase):
    """16 kHz, 50 Hz, 8 RVQ layers; the LLM sees layer 1; SoundStorm puts the voice back."""

    name = "small-speech"

    def __init__(self, sample_rate: int = 16000, strides: list[int] | tuple[int, ...] = (4, 4, 4, 5),
                 channels: int = 8, max_channels: int = 96, code_dim: int = 32, n_q: int = 8,
                 codebook_size: int = 1024, ctc: bool = True, decay: float = 0.99,
                 soundstorm: dict | None = None, voice_max_seconds: float | None = 3.0,
                 steps: int = 3, temperature: float = 1.0, seed: int = 0):
        super().__init__()
        cfg = AudioCodecConfig(sample_rate, tuple(strides), channels, max_channels, code_dim, n_q, codebook_size,
                               1 + len(CTC_CHARS) if ctc else 0, decay, seed)
        self.modality = "speech"
        self.num_codebooks = 1
        self.voice_max_seconds = voice_max_seconds
        self.schedule = MaskGITSchedule(steps=steps, temperature=temperature)
        ss = small_soundstorm_config(codebook_size, n_q, **(soundstorm or {}))
        self._extra = dict(ctc=ctc, soundstorm=soundstorm or {}, voice_max_seconds=voice_max_seconds,
                           steps=steps, temperature=temperature)
        with torch.random.fork_rng(devices=[]):  # fresh weights from `seed`, global RNG untouched
            torch.manual_seed(seed)
            self._build(cfg)
            self.soundstorm = SoundStorm(ss)
        self.eval()

    def config(self) -> dict:
        d = asdict(self.cfg)
        d.pop("ctc_vocab")
        d["strides"] = list(d["strides"])
        return {**d, **self._extra, "soundstorm": dict(self._extra["soundstorm"])}

    @torch.no_grad()
    def encode(self, media: Any) -> torch.Tensor:
        """Waveform (samples,) at 16 kHz -> layer-1 codes (1, frames), 50 frames a second."""
        return self.encode_rvq(media)[:1]

    @torch.no_grad()
    def voice_prompt(self, voice: Any) -> torch.Tensor:
        """A voice (path, waveform, or (waveform, rate)) cut to voice_max_seconds -> all layers (n_q, P)."""
        wav = to_waveform(voice, self.sample_rate, source="voice prompt", max_seconds=self.voice_max_seconds)
        return self.net.encode(_prepare(wav, self.hop))[0]

    @torch.no_grad()
    def fill(self, codes: torch.Tensor, *, voice: Any = None, seed: int | None = None) -> torch.Tensor:
        """Layer-1 codes (1, T) -> every layer (n_q, T), layers 2..n_q from SoundStorm; row 0 is `codes`."""
        semantic = check_codes(codes, self.name, 1, self.codebook_size)
        prompt = None if voice is None else self.voice_prompt(voice).T[None]  # (1, P, n_q)
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
        full = self.soundstorm.generate(semantic, prompt, schedule=self.schedule, generator=generator)
        return full[0].T  # (n_q, T)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, *, voice: Any = None, seed: int | None = None) -> np.ndarray:
        """Layer-1 codes (1, T) -> float32 waveform (T * 320,) at 16 kHz, in the voice of `voice`
        (SoundStorm keeps its codes unmasked in front), or a random one; `seed` (None: 0) fixes sampling."""
        return self.decode_rvq(self.fill(codes, voice=voice, seed=seed))

    @torch.no_grad()
    def transcribe(self, media: Any) -> str:
        """What the CTC head reads from layer 1 alone (greedy): how much of the words layer 1 carries."""
        if self.net.ctc is None:
            raise BundleError("small-speech: this codec was built without a CTC head (ctc=False)")
        codes = self.encode(media)  # (1, T)
        return ctc_greedy(self.net.ctc_logits(self.net.rvq.layers[0].lookup(codes))[0])


@register_codec("small-music", "music")
class SmallMusicCodec(_AudioCodecBase):
    """32 kHz, 50 Hz, 4 RVQ layers, every layer to the LLM (frame-major in the vocabulary layout)."""

    name = "small-music"

    def __init__(self, sample_rate: int = 32000, strides: list[int] | tuple[int, ...] = (4, 4, 5, 8),
                 channels: int = 8, max_channels: int = 96, code_dim: int = 32, num_codebooks: int = 4,
                 codebook_size: int = 2048, decay: float = 0.99, seed: int = 0):
        super().__init__()
        cfg = AudioCodecConfig(sample_rate, tuple(strides), channels, max_channels, code_dim, num_codebooks,
                               codebook_size, 0, decay, seed)
        self.modality = "music"
        self.num_codebooks = num_codebooks
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._build(cfg)
        self.eval()

    def config(self) -> dict:
        d = asdict(self.cfg)
        d.pop("ctc_vocab")
        d["strides"] = list(d["strides"])
        d["num_codebooks"] = d.pop("n_q")
        return d

    @torch.no_grad()
    def encode(self, media: Any) -> torch.Tensor:
        """Waveform (samples,) at 32 kHz -> codes (num_codebooks, frames), 50 frames a second."""
        return self.encode_rvq(media)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, *, voice: Any = None, seed: int | None = None) -> np.ndarray:
        """Codes (num_codebooks, T) -> float32 waveform (T * 640,); voice and seed are unused."""
        return self.decode_rvq(codes)
