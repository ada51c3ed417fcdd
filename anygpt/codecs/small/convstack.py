"""The 1-D conv stack of the small audio codecs and the voice renderer: (B, dim_in, T) -> (B, dim_out, T)."""

from __future__ import annotations

import torch
from torch import nn


class _Block(nn.Module):
    def __init__(self, ch: int, dilation: int):
        super().__init__()
        self.net = nn.Sequential(nn.GELU(), nn.Conv1d(ch, ch, 3, dilation=dilation, padding=dilation),
                                 nn.GELU(), nn.Conv1d(ch, ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


def conv_stack(dim_in: int, width: int, dim_out: int, depth: int) -> nn.Sequential:
    """(B, dim_in, T) -> (B, dim_out, T): conv 3, `depth` residual blocks (dilations 1, 2, 4, 1, ...), 1x1."""
    return nn.Sequential(nn.Conv1d(dim_in, width, 3, padding=1),
                         *[_Block(width, 2 ** (i % 3)) for i in range(depth)],
                         nn.GELU(), nn.Conv1d(width, dim_out, 1))
