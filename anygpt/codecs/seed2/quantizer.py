"""SEED-2's vector quantizer and the ViT block of its generation-embedding decoder.

Quantizing is a plain nearest-neighbour search in squared Euclidean distance over the raw vectors:
the release computes |z|^2 + |e|^2 - 2 z.e and takes the argmin, and does not l2-normalise either
side (its `l2norm` helper is commented out). Distances are computed in float32 here whatever the
model's dtype: in fp16 near-ties between 8192 entries would flip codes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from anygpt.codecs.seed2.eva_vit import attention, split_heads


class VectorQuantizer(nn.Module):
    """A codebook (size, dim); named `quantize.embedding` in the release's checkpoint."""

    def __init__(self, size: int, dim: int):
        super().__init__()
        self.embedding = nn.Embedding(size, dim)

    @torch.no_grad()
    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """(..., dim) -> indices (...) of the nearest codebook rows."""
        book = self.embedding.weight.float()  # (K, dim)
        flat = z.reshape(-1, book.shape[1]).float()  # (N, dim)
        # |z - e|^2 = |z|^2 + |e|^2 - 2 z.e, all terms kept as in the release.
        d = flat.square().sum(1, keepdim=True) + book.square().sum(1) - 2 * flat @ book.T  # (N, K)
        return d.argmin(1).reshape(z.shape[:-1])

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Indices (...) -> codebook rows (..., dim)."""
        return self.embedding(codes)


class ViTBlock(nn.Module):
    """A pre-norm ViT-B block (timm/BLIP naming: fused qkv with bias, LayerNorm eps 1e-6)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (split_heads(t, self.num_heads) for t in self.qkv(x).chunk(3, dim=-1))
        return self.proj(attention(q, k, v))  # bidirectional over the 32 query positions


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))
