"""small-image: a 32-token VQ image tokenizer trained on the world's 64x64 pictures.

    image 64x64 RGB in [-1, 1]        (B, 3, 64, 64)
      encoder  4 strided convs         (B, C, 4, 8)   64x64 -> 32 -> 16 -> 8x8 -> 4x8 (last stride 2x1)
      project  1x1 conv                (B, code_dim, 4, 8)
      VQ       EMA codebook            codes (B, 32) in row-major order, `codebook_size` entries
      decoder  mirror of the encoder   (B, 3, 64, 64)

The same geometry as SEED's tokens for the LLM: 32 codes per image, one codebook; SEED's are a 1-D
causal sequence, ours a 4x8 grid read row by row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from anygpt.codecs.base import check_codes, register_codec
from anygpt.codecs.small.rvq import VectorQuantizer
from anygpt.media import as_image

GRID = (4, 8)  # latent rows x cols: 32 tokens


@dataclass(frozen=True)
class ImageCodecConfig:
    image_size: int = 64
    codebook_size: int = 1024
    code_dim: int = 32  # codebook vectors are small; the decoder lifts them back to `channels[-1]`
    channels: tuple[int, ...] = (32, 64, 128)  # after the 1st, 2nd, 3rd stride-2 conv; the 4x8 step keeps the last
    res_blocks: int = 2  # residual blocks at each resolution of 16x16 and below
    normalize: bool = True  # unit-length latents and codes (cosine-similarity lookup)
    decay: float = 0.99  # EMA of codebook updates
    seed: int = 0

    @property
    def tokens_per_item(self) -> int:
        return GRID[0] * GRID[1]


def _res(ch: int) -> nn.Module:
    return _Residual(nn.Sequential(nn.GELU(), nn.Conv2d(ch, ch, 3, padding=1), nn.GELU(), nn.Conv2d(ch, ch, 1)))


class _Residual(nn.Module):
    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fn(x)


class ImageVQ(nn.Module):
    """The network: encoder, one EMA codebook, decoder."""

    def __init__(self, c: ImageCodecConfig):
        super().__init__()
        if c.image_size != 64:
            raise ValueError(f"small-image: the strides are made for 64x64 images, got {c.image_size}")
        c1, c2, c3 = c.channels
        enc: list[nn.Module] = [nn.Conv2d(3, c1, 4, stride=2, padding=1)]  # 32x32
        enc += [nn.GELU(), nn.Conv2d(c1, c2, 4, stride=2, padding=1)]  # 16x16
        enc += [_res(c2) for _ in range(c.res_blocks)]
        enc += [nn.GELU(), nn.Conv2d(c2, c3, 4, stride=2, padding=1)]  # 8x8
        enc += [_res(c3) for _ in range(c.res_blocks)]
        enc += [nn.GELU(), nn.Conv2d(c3, c3, (4, 3), stride=(2, 1), padding=1)]  # 4x8
        enc += [_res(c3) for _ in range(c.res_blocks)]
        enc += [nn.GELU(), nn.Conv2d(c3, c.code_dim, 1)]
        self.encoder = nn.Sequential(*enc)
        self.vq = VectorQuantizer(c.codebook_size, c.code_dim, decay=c.decay, normalize=c.normalize)
        dec: list[nn.Module] = [nn.Conv2d(c.code_dim, c3, 3, padding=1)]
        dec += [_res(c3) for _ in range(c.res_blocks)]
        dec += [nn.GELU(), nn.ConvTranspose2d(c3, c3, (4, 3), stride=(2, 1), padding=1)]  # 8x8
        dec += [_res(c3) for _ in range(c.res_blocks)]
        dec += [nn.GELU(), nn.ConvTranspose2d(c3, c2, 4, stride=2, padding=1)]  # 16x16
        dec += [_res(c2) for _ in range(c.res_blocks)]
        dec += [nn.GELU(), nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1)]  # 32x32
        dec += [nn.GELU(), nn.ConvTranspose2d(c1, 3, 4, stride=2, padding=1)]  # 64x64
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 64, 64) in [-1, 1] -> codes (B, 32)."""
        z = self.encoder(x)  # (B, code_dim, 4, 8)
        flat = z.permute(0, 2, 3, 1).flatten(0, 2)  # (B * 32, code_dim), row-major
        return self.vq.codes(flat).view(len(x), -1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, 32) -> (B, 3, 64, 64), unclamped."""
        z = self.vq.lookup(codes).view(len(codes), *GRID, -1).permute(0, 3, 1, 2)  # (B, code_dim, 4, 8)
        return self.decoder(z)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """Training pass: (B, 3, 64, 64) -> (reconstruction, codes (B, 32), commitment loss)."""
        z = self.encoder(x)
        B, D = z.shape[:2]
        flat = z.permute(0, 2, 3, 1).flatten(0, 2)  # (B * 32, D)
        q, codes, commit = self.vq(flat, generator)
        zq = q.view(B, *GRID, D).permute(0, 3, 1, 2)
        return self.decoder(zq), codes.view(B, -1), commit


def image_losses(x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Reconstruction losses of y against x, both (B, 3, H, W) in [-1, 1]: L1, L2, and L1 of the
    horizontal and vertical pixel differences (keeps shape edges sharp without a perceptual net)."""
    edge = F.l1_loss(y.diff(dim=-1), x.diff(dim=-1)) + F.l1_loss(y.diff(dim=-2), x.diff(dim=-2))
    return {"l1": F.l1_loss(y, x), "l2": F.mse_loss(y, x), "edge": edge}


def image_to_tensor(media: Any, size: int, name: str = "small-image") -> torch.Tensor:
    """PIL image or HxWx3 uint8 array -> (3, size, size) float in [-1, 1]."""
    media = as_image(media, source=name)
    if media.size != (size, size):
        media = media.resize((size, size), Image.Resampling.BICUBIC)
    x = np.asarray(media, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(x).permute(2, 0, 1)


def tensor_to_image(x: torch.Tensor) -> Image.Image:
    """(3, H, W) in [-1, 1] -> PIL RGB."""
    pixels = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return Image.fromarray(pixels.permute(1, 2, 0).cpu().numpy(), mode="RGB")


@register_codec("small-image", "image")
class SmallImageCodec(nn.Module):
    """32 codes per image from a small trained VQ network (weights: a safetensors state dict)."""

    name = "small-image"

    def __init__(self, image_size: int = 64, codebook_size: int = 1024, code_dim: int = 32,
                 channels: list[int] | tuple[int, ...] = (32, 64, 128), res_blocks: int = 2,
                 normalize: bool = True, decay: float = 0.99, seed: int = 0):
        super().__init__()
        self.cfg = ImageCodecConfig(image_size, codebook_size, code_dim, tuple(channels), res_blocks, normalize, decay,
                                    seed)
        self.modality = "image"
        self.codebook_size = codebook_size
        self.num_codebooks = 1
        self.frame_rate = None
        self.tokens_per_item = self.cfg.tokens_per_item
        self.sample_rate = None
        with torch.random.fork_rng(devices=[]):  # fresh weights from `seed`, global RNG untouched
            torch.manual_seed(seed)
            self.net = ImageVQ(self.cfg)
        self.eval()

    def config(self) -> dict:
        d = asdict(self.cfg)
        d["channels"] = list(d["channels"])
        return d

    @torch.no_grad()
    def encode(self, media: Any) -> torch.Tensor:
        """RGB image (PIL, or an HxWx3 uint8 array) -> codes (1, 32)."""
        return self.net.encode(image_to_tensor(media, self.cfg.image_size)[None])

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, *, voice: np.ndarray | None = None, seed: int | None = None) -> Image.Image:
        """Codes (1, 32) -> 64x64 RGB image; voice and seed are unused."""
        codes = check_codes(codes, "small-image", 1, self.codebook_size, length=self.tokens_per_item)
        return tensor_to_image(self.net.decode(codes)[0])
