"""Vector quantization with EMA codebooks and dead-code restarts, single and residual.

    x (N, dim) -> nearest codebook row -> codes (N,), quantized (N, dim) (straight-through gradient)

Codebooks are not learned by gradient: in training each one moves to the running (EMA) mean of the
vectors assigned to it, and a code unused for a while (its EMA count below `dead_threshold`) is
restarted on a random vector of the batch. The first training batch seeds the codebook (a random
choice of its vectors), so codes start where the data are.

Randomness (seeding, restarts) comes only from the `generator` handed to `forward`, so a training
run that seeds one generator per step resumes exactly. The EMA statistics (`cluster_size`,
`embed_sum`) are non-persistent buffers: shipped weights hold only the codebook (`embed`); a
training checkpoint saves every buffer (see anygpt.train.checkpoint.full_state).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def nearest(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codebook row for each row of x: (N, dim), (K, dim) -> (N,)."""
    # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 is the same for every c, so it is left out.
    return torch.addmm(codebook.square().sum(1), x, codebook.T, alpha=-2).argmin(1)


class VectorQuantizer(nn.Module):
    """One codebook (K, dim) with EMA updates."""

    def __init__(self, codebook_size: int, dim: int, decay: float = 0.99, dead_threshold: float = 0.1,
                 eps: float = 1e-5, normalize: bool = False):
        super().__init__()
        self.normalize = normalize  # unit-length inputs and codes (cosine similarity): steadier code usage
        self.codebook_size, self.dim, self.decay, self.eps = codebook_size, dim, decay, eps
        self.dead_threshold = dead_threshold  # EMA assignments per step below which a code restarts
        embed = torch.randn(codebook_size, dim)
        self.register_buffer("embed", F.normalize(embed, dim=-1) if normalize else embed * 0.1)  # (K, dim)
        self.register_buffer("initted", torch.zeros((), dtype=torch.bool), persistent=False)
        self.register_buffer("cluster_size", torch.zeros(codebook_size), persistent=False)  # (K,)
        self.register_buffer("embed_sum", torch.zeros(codebook_size, dim), persistent=False)  # (K, dim)

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, dim) -> nearest codes (N,), no update."""
        x = x.detach().float()
        return nearest(F.normalize(x, dim=-1) if self.normalize else x, self.embed)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (...,) -> vectors (..., dim)."""
        return F.embedding(codes, self.embed)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """x (N, dim) -> (quantized (N, dim) straight-through, codes (N,), commitment loss)."""
        if self.normalize:
            x = F.normalize(x, dim=-1)
        flat = x.detach().float()
        if self.training and not bool(self.initted):
            self._seed(flat, generator)
        codes = nearest(flat, self.embed)
        quantized = self.lookup(codes)
        if self.training:
            self._ema_update(flat, codes, generator)
        commit = F.mse_loss(x, quantized.detach())
        return x + (quantized - x).detach(), codes, commit

    @torch.no_grad()
    def _sample(self, flat: torch.Tensor, n: int, generator: torch.Generator | None) -> torch.Tensor:
        idx = torch.randint(len(flat), (n,), generator=generator)
        return flat[idx] + 1e-4 * torch.randn(n, self.dim, generator=generator)

    @torch.no_grad()
    def _seed(self, flat: torch.Tensor, generator: torch.Generator | None) -> None:
        fresh = self._sample(flat, self.codebook_size, generator)
        self.embed.copy_(F.normalize(fresh, dim=-1) if self.normalize else fresh)
        self.cluster_size.fill_(2 * self.dead_threshold)
        self.embed_sum.copy_(self.embed * 2 * self.dead_threshold)
        self.initted.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, codes: torch.Tensor, generator: torch.Generator | None) -> None:
        onehot_count = torch.bincount(codes, minlength=self.codebook_size).float()  # (K,)
        sums = torch.zeros_like(self.embed_sum).index_add_(0, codes, flat)  # (K, dim)
        self.cluster_size.mul_(self.decay).add_(onehot_count, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        # Laplace smoothing keeps rarely used codes from dividing by ~0.
        smoothed = (self.cluster_size + self.eps) / (n + self.codebook_size * self.eps) * n
        self.embed.copy_(self.embed_sum / smoothed[:, None])
        if self.normalize:
            self.embed.copy_(F.normalize(self.embed, dim=-1))
        dead = self.cluster_size < self.dead_threshold  # (K,): EMA assignments per step
        n_dead = int(dead.sum())
        if n_dead:
            fresh = self._sample(flat, n_dead, generator)
            if self.normalize:
                fresh = F.normalize(fresh, dim=-1)
            # a restarted code that stays unused is restarted again after ~ln(2)/(1-decay) steps
            size = 2 * self.dead_threshold
            self.embed[dead] = fresh
            self.embed_sum[dead] = fresh * size
            self.cluster_size[dead] = size


class ResidualVQ(nn.Module):
    """n_q codebooks, each quantizing what the ones before it missed."""

    def __init__(self, n_q: int, codebook_size: int, dim: int, decay: float = 0.99, dead_threshold: float = 0.1):
        super().__init__()
        self.n_q, self.codebook_size, self.dim = n_q, codebook_size, dim
        self.layers = nn.ModuleList(VectorQuantizer(codebook_size, dim, decay, dead_threshold) for _ in range(n_q))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None, n_q: int | None = None):
        """x (N, dim) -> (sum of quantized layers (N, dim), codes (n_q, N), per-layer quantized
        (n_q, N, dim), mean commitment loss). `n_q` uses only the first layers (quantizer dropout)."""
        residual, total = x, torch.zeros_like(x)
        codes, parts, commit = [], [], x.new_zeros(())
        for layer in self.layers[: n_q or self.n_q]:
            q, c, loss = layer(residual, generator)
            residual = residual - q.detach()  # later layers see what this one missed
            total = total + q
            codes.append(c)
            parts.append(q)
            commit = commit + loss
        return total, torch.stack(codes), torch.stack(parts), commit / len(codes)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, dim) -> codes (n_q, N)."""
        residual, codes = x, []
        for layer in self.layers:
            c = layer.codes(residual)
            residual = residual - layer.lookup(c)
            codes.append(c)
        return torch.stack(codes)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (n_q', ...) with n_q' <= n_q -> sum of their vectors (..., dim)."""
        return sum(layer.lookup(c) for layer, c in zip(self.layers, codes))
