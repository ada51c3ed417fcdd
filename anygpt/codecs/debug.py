"""Tiny random codecs behind the real codec interface, so every pipeline path runs on CPU in seconds.

They really encode and decode, only badly: each patch (image) or 20 ms frame (audio) is projected
onto a random rotation of its `dim` lowest-frequency cosines, then vector-quantized.

    image  64x64 RGB -> 4x8 patches (16x8 px) -> (32, dim) -> nearest codebook entry -> codes (1, 32)
    speech 16 kHz    -> frames of 320 samples -> (T, dim)  -> residual VQ, 8 layers -> codes (8, T);
                        the LLM sees layer 1 only, the decoder invents layers 2..8 (stand-in SoundStorm)
    music  32 kHz    -> frames of 640 samples -> (T, dim)  -> residual VQ, 4 layers -> codes (4, T)

Codebooks are drawn from random data of the right range (random smooth images; noise frames of
random loudness), so a round trip keeps the coarse, loud, low-frequency part of its input. Every
weight is a buffer built from `seed`, so `config()` plus the state dict rebuild a codec exactly.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from anygpt.codecs.base import check_codes, register_codec
from anygpt.media import as_image, as_waveform

AUDIO_PEAK = 0.9  # decoded audio is scaled down to at most this peak, leaving headroom


# ---------------------------------------------------------------------------------------------
# Shared pieces


def _random_rotation(dim: int, gen: torch.Generator) -> torch.Tensor:
    """A random orthogonal (dim, dim) matrix (QR of a Gaussian, signs fixed so it is unique)."""
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=gen))
    return q * torch.sign(torch.diagonal(r))


def _cosines(n: int, k: int) -> torch.Tensor:
    """Orthonormal DCT-II basis vector of frequency k over n samples: (n,)."""
    i = torch.arange(n, dtype=torch.float64)
    v = torch.cos(math.pi * (2 * i + 1) * k / (2 * n))
    return (v / v.norm()).float()


def _nearest(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codebook row for each row of x: (N, dim), (K, dim) -> (N,)."""
    # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 is the same for every c, so it is left out.
    return torch.addmm(codebook.square().sum(1), x, codebook.T, alpha=-2).argmin(1)  # (N, K) -> (N,)


def residual_quantize(x: torch.Tensor, codebooks: torch.Tensor) -> torch.Tensor:
    """Residual VQ: each layer quantizes what the layers before it missed. (T, dim) -> (n_q, T)."""
    codes = []
    residual = x
    for book in codebooks:  # (K, dim)
        idx = _nearest(residual, book)
        residual = residual - book[idx]
        codes.append(idx)
    return torch.stack(codes)


def residual_dequantize(codes: torch.Tensor, codebooks: torch.Tensor) -> torch.Tensor:
    """Sum of each layer's codebook vectors: (n_q, T) -> (T, dim)."""
    return sum(book[c] for book, c in zip(codebooks, codes))


def _fit_residual_codebooks(draw: Callable[[int], torch.Tensor], n_q: int, size: int) -> torch.Tensor:
    """Codebooks for residual VQ from example vectors `draw(n) -> (n, dim)`: (n_q, size, dim).

    Layer 1 is `size` examples; each later layer is what the layers before it leave of fresh
    examples, so every layer covers the range of the residual it will see (k-means seeding without
    the iterations). Fresh examples per layer keep exact zero residuals out of the codebooks.
    """
    books: list[torch.Tensor] = []
    for _ in range(n_q):
        x = draw(size)  # (size, dim)
        if books:
            earlier = torch.stack(books)  # (layers so far, size, dim)
            x = x - residual_dequantize(residual_quantize(x, earlier), earlier)
        books.append(x)
    return torch.stack(books)


# ---------------------------------------------------------------------------------------------
# Image


def _split(n: int, parts: int) -> list[int]:
    """n items in `parts` near-equal groups, larger ones first: (10, 4) -> [3, 3, 2, 2]."""
    return [n // parts + (i < n % parts) for i in range(parts)]


def _square_grid(n: int) -> tuple[int, int]:
    """The most nearly square (rows, cols) with rows * cols == n and rows <= cols: 32 -> (4, 8)."""
    rows = max(r for r in range(1, math.isqrt(n) + 1) if n % r == 0)
    return rows, n // rows


@register_codec("debug-image", "image")
class DebugImageCodec(torch.nn.Module):
    """Patch VQ: each patch of the resized image becomes one code."""

    def __init__(
        self,
        codebook_size: int = 8192,
        tokens_per_item: int = 32,
        image_size: int = 64,
        dim: int = 16,
        patch_grid: tuple[int, int] | list[int] | None = None,
        seed: int = 0,
    ):
        super().__init__()
        rows, cols = tuple(patch_grid) if patch_grid is not None else _square_grid(tokens_per_item)
        if rows * cols != tokens_per_item:
            raise ValueError(
                f"debug-image: patch_grid {rows}x{cols} gives {rows * cols} patches, "
                f"not tokens_per_item={tokens_per_item}"
            )
        if image_size % rows or image_size % cols:
            raise ValueError(
                f"debug-image: image_size {image_size} is not divisible by patch_grid {rows}x{cols}"
            )
        self.patch_h, self.patch_w = image_size // rows, image_size // cols
        patch_numel = 3 * self.patch_h * self.patch_w
        if not 1 <= dim <= patch_numel:
            raise ValueError(
                f"debug-image: dim must be in [1, {patch_numel}] for "
                f"{self.patch_h}x{self.patch_w} patches, got {dim}"
            )

        self.modality = "image"
        self.codebook_size = codebook_size
        self.num_codebooks = 1
        self.frame_rate = None
        self.tokens_per_item = tokens_per_item
        self.sample_rate = None
        self.image_size, self.dim, self.patch_grid, self.seed = image_size, dim, (rows, cols), seed

        gen = torch.Generator().manual_seed(seed)
        # The dim smoothest 2-D cosines of a patch (mean colour first: it carries most of an image's
        # energy; a plain random projection would miss it and decode noise), randomly rotated.
        freqs = sorted(
            ((u, v, c) for u in range(self.patch_h) for v in range(self.patch_w) for c in range(3)),
            key=lambda f: (f[0] + f[1], f[0], f[2]),
        )[:dim]
        basis = torch.zeros(dim, 3, self.patch_h, self.patch_w)
        for row, (u, v, c) in enumerate(freqs):
            basis[row, c] = torch.outer(_cosines(self.patch_h, u), _cosines(self.patch_w, v))
        projection = _random_rotation(dim, gen) @ basis.flatten(1)  # (dim, 3 * ph * pw)
        self.register_buffer("projection", projection)
        # Codebook entries are projected patches of random smooth images, so they lie where the
        # patches of real images do; smoothness varies from 2x2 to 16x16 random colour grids.
        n_images = math.ceil(codebook_size / tokens_per_item)
        images = torch.cat([
            F.interpolate(torch.rand(n, 3, grid, grid, generator=gen) - 0.5, size=image_size, mode="bilinear")
            for grid, n in zip((2, 4, 8, 16), _split(n_images, 4))
            if n > 0
        ])  # (n_images, 3, H, W) in [-0.5, 0.5]
        patches = self._patches(images)  # (n_images * tokens, 3 * ph * pw)
        chosen = torch.randperm(len(patches), generator=gen)[:codebook_size]
        self.register_buffer("codebook", patches[chosen] @ projection.T)  # (codebook_size, dim)

    def config(self) -> dict:
        return dict(
            codebook_size=self.codebook_size,
            tokens_per_item=self.tokens_per_item,
            image_size=self.image_size,
            dim=self.dim,
            patch_grid=list(self.patch_grid),
            seed=self.seed,
        )

    def _patches(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B * rows * cols, 3 * ph * pw), patches in row-major order."""
        rows, cols = self.patch_grid
        x = images.unflatten(2, (rows, self.patch_h)).unflatten(4, (cols, self.patch_w))
        # (B, 3, rows, ph, cols, pw) -> (B, rows, cols, 3, ph, pw) -> (B * rows * cols, 3 * ph * pw)
        return x.permute(0, 2, 4, 1, 3, 5).flatten(3).flatten(0, 2)

    def _unpatch(self, patches: torch.Tensor) -> torch.Tensor:
        """(rows * cols, 3 * ph * pw) -> (3, H, W)."""
        rows, cols = self.patch_grid
        x = patches.reshape(rows, cols, 3, self.patch_h, self.patch_w)
        return x.permute(2, 0, 3, 1, 4).reshape(3, self.image_size, self.image_size)

    @torch.no_grad()
    def encode(self, media: Image.Image | np.ndarray) -> torch.Tensor:
        """RGB image (PIL, or an HxWx3 uint8 array) -> codes (1, tokens_per_item)."""
        size = (self.image_size, self.image_size)
        media = as_image(media, source="debug-image")
        small = np.asarray(media.resize(size, Image.Resampling.BICUBIC), dtype=np.float32)
        x = torch.from_numpy(small / 255.0 - 0.5).permute(2, 0, 1)  # (3, H, W) in [-0.5, 0.5]
        features = self._patches(x[None]) @ self.projection.T  # (tokens, dim)
        return _nearest(features, self.codebook)[None]  # (1, tokens)

    @torch.no_grad()
    def decode(
        self, codes: torch.Tensor, *, voice: np.ndarray | None = None, seed: int | None = None
    ) -> Image.Image:
        """Codes (1, tokens_per_item) -> image_size x image_size RGB image; voice and seed are unused."""
        codes = check_codes(codes, "debug-image", 1, self.codebook_size, length=self.tokens_per_item)
        # The projection rows are orthonormal, so its transpose is its pseudo-inverse.
        patches = self.codebook[codes[0]] @ self.projection  # (tokens, 3 * ph * pw)
        pixels = ((self._unpatch(patches) + 0.5) * 255.0).round().clamp(0, 255).to(torch.uint8)
        return Image.fromarray(pixels.permute(1, 2, 0).numpy(), mode="RGB")


# ---------------------------------------------------------------------------------------------
# Audio


class _FrameRVQ(torch.nn.Module):
    """Shared by both audio codecs: waveform <-> frames <-> (dim,) features <-> residual VQ codes."""

    def __init__(
        self, name: str, sample_rate: int, frame_rate: int, n_q: int, codebook_size: int, dim: int, seed: int
    ):
        super().__init__()
        if sample_rate % frame_rate:
            raise ValueError(
                f"{name}: sample_rate {sample_rate} is not a multiple of frame_rate {frame_rate}"
            )
        self.name = name
        self.hop = sample_rate // frame_rate  # samples per code frame
        if not 1 <= dim <= self.hop:
            raise ValueError(f"{name}: dim must be in [1, {self.hop}], got {dim}")
        self.sample_rate, self.n_q, self.codebook_size = sample_rate, n_q, codebook_size
        gen = torch.Generator().manual_seed(seed)
        # The dim lowest cosines of a frame (everything below dim * frame_rate / 2 Hz, 400 Hz with
        # the defaults), randomly rotated: a random projection that keeps the loud part of audio.
        basis = torch.stack([_cosines(self.hop, k) for k in range(dim)])  # (dim, hop)
        self.register_buffer("projection", _random_rotation(dim, gen) @ basis)
        # Example features: noise frames at loudness log-uniform in [-60, -6] dBFS RMS, so codebooks
        # cover quiet and loud frames alike. A frame of RMS r has feature norm <= r * sqrt(hop).
        def noise_features(n: int) -> torch.Tensor:
            rms = 10 ** (torch.rand(n, 1, generator=gen) * 2.7 - 3.0)  # (n, 1)
            return torch.randn(n, dim, generator=gen) * rms * math.sqrt(self.hop / dim)  # (n, dim)

        codebooks = _fit_residual_codebooks(noise_features, n_q, codebook_size)  # (n_q, K, dim)
        self.register_buffer("codebooks", codebooks)

    def encode(self, wav: Any, source: str = "waveform") -> torch.Tensor:
        """Waveform (samples,) -> RVQ codes (n_q, frames); the end is zero-padded to a whole hop."""
        x = torch.from_numpy(as_waveform(wav, self.sample_rate, source=f"{self.name} {source}"))
        x = F.pad(x, (0, -len(x) % self.hop))
        features = x.view(-1, self.hop) @ self.projection.T  # (T, dim)
        return residual_quantize(features, self.codebooks)

    def decode(self, codes: torch.Tensor) -> np.ndarray:
        """RVQ codes (n_q, T) -> float32 waveform (T * hop,), peak at most AUDIO_PEAK."""
        frames = residual_dequantize(codes, self.codebooks) @ self.projection  # (T, hop)
        wav = frames.flatten()
        peak = float(wav.abs().max())
        if peak > AUDIO_PEAK:
            wav = wav * (AUDIO_PEAK / peak)
        return wav.numpy().astype(np.float32)


@register_codec("debug-speech", "speech")
class DebugSpeechCodec(torch.nn.Module):
    """RVQ over frames; the LLM sees the first ('semantic') layer, the decoder invents the rest."""

    def __init__(
        self,
        sample_rate: int = 16000,
        frame_rate: int = 50,
        n_q: int = 8,
        codebook_size: int = 1024,
        dim: int = 16,
        seed: int = 0,
    ):
        super().__init__()
        self.modality = "speech"
        self.codebook_size = codebook_size
        self.num_codebooks = 1
        self.frame_rate = frame_rate
        self.tokens_per_item = None
        self.sample_rate = sample_rate
        self.n_q, self.dim, self.seed = n_q, dim, seed
        self.rvq = _FrameRVQ("debug-speech", sample_rate, frame_rate, n_q, codebook_size, dim, seed)

    def config(self) -> dict:
        return dict(
            sample_rate=self.sample_rate,
            frame_rate=self.frame_rate,
            n_q=self.n_q,
            codebook_size=self.codebook_size,
            dim=self.dim,
            seed=self.seed,
        )

    @torch.no_grad()
    def encode_rvq(self, media: Any) -> torch.Tensor:
        """Waveform (samples,) at sample_rate -> all RVQ layers (n_q, frames)."""
        return self.rvq.encode(media)

    @torch.no_grad()
    def encode(self, media: Any) -> torch.Tensor:
        """Waveform (samples,) at sample_rate -> semantic codes (1, frames)."""
        return self.rvq.encode(media)[:1]

    @torch.no_grad()
    def decode_rvq(self, codes: torch.Tensor) -> np.ndarray:
        """All RVQ layers (n_q, T) -> waveform (T * hop,)."""
        return self.rvq.decode(check_codes(codes, "debug-speech", self.n_q, self.codebook_size))

    @torch.no_grad()
    def decode(
        self, codes: torch.Tensor, *, voice: np.ndarray | None = None, seed: int | None = None
    ) -> np.ndarray:
        """Semantic codes (1, T) -> waveform (T * hop,).

        Layers 2..n_q (timbre, detail) are a stand-in for SoundStorm: the voice prompt's own codes,
        cycled over the frames, when `voice` is given; otherwise random codes from `seed` (None
        means 0, so decoding is always reproducible).
        """
        semantic = check_codes(codes, "debug-speech", 1, self.codebook_size)  # (1, T)
        T = semantic.shape[1]
        if voice is not None:
            prompt = self.rvq.encode(voice, "voice prompt")[1:]  # (n_q - 1, T_voice)
            acoustic = prompt[:, torch.arange(T) % prompt.shape[1]]  # (n_q - 1, T)
        else:
            gen = torch.Generator().manual_seed(0 if seed is None else seed)
            acoustic = torch.randint(self.codebook_size, (self.n_q - 1, T), generator=gen)
        return self.rvq.decode(torch.cat([semantic, acoustic]))


@register_codec("debug-music", "music")
class DebugMusicCodec(torch.nn.Module):
    """RVQ over frames; every layer goes to the LLM."""

    def __init__(
        self,
        sample_rate: int = 32000,
        frame_rate: int = 50,
        num_codebooks: int = 4,
        codebook_size: int = 2048,
        dim: int = 16,
        seed: int = 0,
    ):
        super().__init__()
        self.modality = "music"
        self.codebook_size = codebook_size
        self.num_codebooks = num_codebooks
        self.frame_rate = frame_rate
        self.tokens_per_item = None
        self.sample_rate = sample_rate
        self.dim, self.seed = dim, seed
        self.rvq = _FrameRVQ("debug-music", sample_rate, frame_rate, num_codebooks, codebook_size, dim, seed)

    def config(self) -> dict:
        return dict(
            sample_rate=self.sample_rate,
            frame_rate=self.frame_rate,
            num_codebooks=self.num_codebooks,
            codebook_size=self.codebook_size,
            dim=self.dim,
            seed=self.seed,
        )

    @torch.no_grad()
    def encode(self, media: Any) -> torch.Tensor:
        """Waveform (samples,) at sample_rate -> codes (num_codebooks, frames)."""
        return self.rvq.encode(media)

    @torch.no_grad()
    def decode(
        self, codes: torch.Tensor, *, voice: np.ndarray | None = None, seed: int | None = None
    ) -> np.ndarray:
        """Codes (num_codebooks, T) -> waveform (T * hop,); voice and seed are unused."""
        codes = check_codes(codes, "debug-music", self.num_codebooks, self.codebook_size)
        return self.rvq.decode(codes)
