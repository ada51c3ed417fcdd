"""EVA-CLIP ViT-g/14, the image encoder of SEED-2 (and BLIP-2), as the release runs it.

    pixels (B, 3, 224, 224) -> 14x14 patches -> (B, 256, 1408) -> [CLS] + absolute positions
                            -> 39 pre-norm blocks -> (B, 257, 1408)   (no final norm: `ln_vision` follows)

Parameter names match the release's checkpoint (`visual_encoder.*` there), so its weights load as
they are. One peculiarity of EVA: the fused qkv projection has no bias tensor of its own; queries
and values get learned biases (`q_bias`, `v_bias`) and keys none.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from anygpt.codecs.seed2.config import EvaViTConfig


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False) -> torch.Tensor:
    """Softmax attention over heads: (B, heads, Tq, d), (B, heads, Tk, d) -> (B, Tq, heads * d).

    Scaled by 1/sqrt(d), as every attention in the release is. Its BERT masks add -10000 rather than
    -inf; after the softmax both are exactly 0 in fp16 and fp32, so a boolean causal mask matches.
    """
    out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # (B, heads, Tq, d)
    return out.transpose(1, 2).flatten(2)


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, T, heads * d) -> (B, heads, T, d)."""
    return x.unflatten(-1, (num_heads, -1)).transpose(1, 2)


class PatchEmbed(nn.Module):
    def __init__(self, cfg: EvaViTConfig):
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.width, kernel_size=cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, 3, H, W) -> (B, patches, width)


class EvaAttention(nn.Module):
    def __init__(self, cfg: EvaViTConfig):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(cfg.width))
        self.v_bias = nn.Parameter(torch.zeros(cfg.width))
        self.proj = nn.Linear(cfg.width, cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])  # keys: no bias
        q, k, v = F.linear(x, self.qkv.weight, bias).chunk(3, dim=-1)  # 3 x (B, T, width)
        h = self.num_heads
        return self.proj(attention(split_heads(q, h), split_heads(k, h), split_heads(v, h)))


class EvaMlp(nn.Module):
    def __init__(self, cfg: EvaViTConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.width, cfg.mlp_dim)
        self.fc2 = nn.Linear(cfg.mlp_dim, cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU, nn.GELU's default


class EvaBlock(nn.Module):
    def __init__(self, cfg: EvaViTConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width, eps=cfg.layer_norm_eps)
        self.attn = EvaAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.width, eps=cfg.layer_norm_eps)
        self.mlp = EvaMlp(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class EvaViT(nn.Module):
    """Pixels (B, 3, S, S), CLIP-normalised -> tokens (B, (S / patch)^2 + 1, width)."""

    def __init__(self, cfg: EvaViTConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_tokens, cfg.width))
        self.blocks = nn.ModuleList(EvaBlock(cfg) for _ in range(cfg.depth))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(pixels)  # (B, patches, width)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return x  # (B, tokens, width)
