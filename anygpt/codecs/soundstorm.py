"""SoundStorm: fills in the acoustic RVQ layers 2..8 of SpeechTokenizer given the semantic layer 1.

A masked conformer (MaskGIT-style), as released with AnyGPT (`speechtokenizer_soundstorm_mls.pt`).
Every code frame is one conformer position; its input is the sum of one embedding per acoustic
level plus the embedding of the frame's semantic code:

    semantic  s_0 s_1 ... s_{N-1}                     (B, N)       -> semantic_token_emb -> (B, N, dim)
    acoustic  a[n, q] for q in 0..6 (RVQ layers 2..8) (B, N, 7)    -> code_embeds, summed over q
              (code 1024 = "masked"; each level has its own 1025 rows)
    conformer (B, N, dim) -> heads: (B, N, 7, dim) -> per-level LayerNorm + Linear -> logits (B, N, 7, 1024)

Decoding (`SoundStorm.generate`) with an optional voice prompt in front:

    frames      | prompt (P frames)     | target (T frames)              |
    semantic    | prompt layer 1        | semantic codes to voice        |  never changed
    level 0     | prompt layer 2        | `steps` MaskGIT passes         |  cosine schedule
    level 1..6  | prompt layers 3..8    | one greedy pass each           |  levels above q stay masked

MaskGIT on a level (S = `steps`): each pass predicts every still-masked code; passes before the
last sample from the top 30 % of logits at temperature i / S (pass 0 is argmax), keep the most
confident and re-mask the floor(cos(pi/2 * (i+1) / S) * T) least confident; the last pass commits
the rest by argmax. This follows the release (3 steps, cosine, top-k 0.7 threshold, annealed
temperature, greedy last pass, one greedy pass per later level) but not its slips, on purpose:
its re-mask count is taken over all 7 levels and the prompt instead of the level's target frames
(and lags one pass), it refills the prompt's acoustic codes with predictions from level 2 on,
and it feeds predictions rather than mask codes for the levels above the one being decoded
(training always masked them). So outputs are not bit-identical to the release's `generate`.

The state dict keeps the release's parameter names (e.g. `net.conformer.layers.0.ff1.fn.fn.net.0.weight`),
so its checkpoint loads as is; that is why some modules below are `Sequential`s with parameter-free
members at fixed positions.
"""

from __future__ import annotations

import math
import pickle
import zipfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from anygpt.errors import BundleError

# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class SoundStormConfig:
    """Shapes of a SoundStorm network; the defaults are the released AnyGPT model."""

    codebook_size: int = 1024  # entries per acoustic codebook; code `codebook_size` means "masked"
    num_quantizers: int = 7  # acoustic levels to fill: SpeechTokenizer RVQ layers 2..8
    semantic_vocab: int = 1024  # semantic (RVQ layer 1) codes
    pad_id: int = 1024  # padding id of the release's training data (unused when decoding)
    dim: int = 1024
    depth: int = 12
    heads: int = 8
    head_dim: int = 128
    ff_mult: int = 4
    conv_expansion: int = 2
    conv_kernel: int = 31
    rotary_theta: float = 10000.0

    @property
    def mask_id(self) -> int:
        return self.codebook_size

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SoundStormConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"SoundStormConfig: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**d)


PRESETS: dict[str, SoundStormConfig] = {
    "official": SoundStormConfig(),  # 351 M parameters
    "tiny": SoundStormConfig(dim=32, depth=2, heads=2, head_dim=16, conv_kernel=7),  # tests
}


def soundstorm_config(spec: str | dict | SoundStormConfig) -> SoundStormConfig:
    """A preset name, a dict of fields, or a config -> SoundStormConfig."""
    if isinstance(spec, SoundStormConfig):
        return spec
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ValueError(f"unknown SoundStorm preset {spec!r}; known: {', '.join(PRESETS)}")
        return PRESETS[spec]
    return SoundStormConfig.from_dict(dict(spec))


@dataclass(frozen=True)
class MaskGITSchedule:
    """How `generate` fills the levels. Defaults: what the AnyGPT release runs (`vc_steps` = 3)."""

    steps: int = 3  # MaskGIT passes on each of the first `sampled_levels` levels
    sampled_levels: int = 1  # the remaining levels get one greedy (argmax) pass each
    top_k_fraction: float = 0.3  # sampling keeps this share of the most likely codes (release: 0.3)
    temperature: float = 1.0  # pass i of S samples at temperature * i / S (release: 1); 0 is greedy


# ---------------------------------------------------------------------------------------------
# Network (module and parameter names follow the release's checkpoint)


class _Transpose12(nn.Module):
    """(B, N, C) <-> (B, C, N); parameter-free, it only holds a place in a Sequential."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


class _ChannelNorm(nn.Module):
    """LayerNorm over channels of (B, C, N), scale only; variance clamped (not offset) by eps."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eps = 1e-6 if x.dtype == torch.float32 else 1e-4
        var, mean = torch.var_mean(x, dim=1, unbiased=False, keepdim=True)
        return (x - mean) * var.clamp(min=eps).rsqrt() * self.gamma


class _PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self.fn(self.norm(x), **kwargs)


class _HalfStep(nn.Module):
    """Macaron feed-forward: the residual branch is scaled by 1/2."""

    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.fn(x)


class _FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int):
        super().__init__()
        # Positions 0 and 3 hold the weights, as in the release (2 and 4 were dropouts).
        self.net = nn.Sequential(
            nn.Linear(dim, dim * mult), nn.SiLU(), nn.Identity(), nn.Linear(dim * mult, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, head_dim: int):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, heads * head_dim, bias=False)
        self.to_kv = nn.Linear(dim, 2 * heads * head_dim, bias=False)
        self.to_out = nn.Linear(heads * head_dim, dim)

    def forward(self, x: torch.Tensor, rotary: torch.Tensor) -> torch.Tensor:
        q, k, v = (self.to_q(x), *self.to_kv(x).chunk(2, dim=-1))  # each (B, N, H * D)
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))  # (B, H, N, D)
        cos, sin = rotary.cos().to(q.dtype), rotary.sin().to(q.dtype)  # (N, D)
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        out = F.scaled_dot_product_attention(q, k, v)  # bidirectional, scale D ** -0.5
        return self.to_out(out.transpose(1, 2).flatten(2))


class _DepthwiseConv(nn.Module):
    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.padding = (
            kernel // 2,
            kernel // 2 - (kernel + 1) % 2,
        )  # "same" length, also for even kernels
        self.conv = nn.Conv1d(channels, channels, kernel, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.padding))


class _ConvModule(nn.Module):
    def __init__(self, dim: int, expansion: int, kernel: int):
        super().__init__()
        inner = dim * expansion
        # LayerNorm, (B, N, C) -> (B, C, N), pointwise conv, GLU over channels
        self.net1 = nn.Sequential(
            nn.LayerNorm(dim), _Transpose12(), nn.Conv1d(dim, 2 * inner, 1), nn.GLU(dim=1)
        )
        self.ds_conv = _DepthwiseConv(inner, kernel)
        # Swish, channel norm, pointwise conv, back to (B, N, C)
        self.net2 = nn.Sequential(nn.SiLU(), _ChannelNorm(inner), nn.Conv1d(inner, dim, 1), _Transpose12())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net2(self.ds_conv(self.net1(x)))


class _ConformerBlock(nn.Module):
    def __init__(self, c: SoundStormConfig):
        super().__init__()
        # Registration order is the release's: ff1, attn, conv, ff2, post_norm.
        self.ff1 = _HalfStep(_PreNorm(c.dim, _FeedForward(c.dim, c.ff_mult)))
        self.attn = _PreNorm(c.dim, _Attention(c.dim, c.heads, c.head_dim))
        self.conv = _ConvModule(c.dim, c.conv_expansion, c.conv_kernel)
        self.ff2 = _HalfStep(_PreNorm(c.dim, _FeedForward(c.dim, c.ff_mult)))
        self.post_norm = nn.LayerNorm(c.dim)

    def forward(self, x: torch.Tensor, rotary: torch.Tensor) -> torch.Tensor:
        x = x + self.ff1(x)
        x = x + self.attn(x, rotary=rotary)
        x = x + self.conv(x)
        x = x + self.ff2(x)
        return self.post_norm(x)


class _Conformer(nn.Module):
    def __init__(self, c: SoundStormConfig):
        super().__init__()
        self.head_dim, self.theta = c.head_dim, c.rotary_theta
        self.layers = nn.ModuleList(_ConformerBlock(c) for _ in range(c.depth))

    def rotary(self, n: int, device: torch.device) -> torch.Tensor:
        """Rotary angles (n, head_dim): both halves of each head rotate by the same frequencies."""
        inv_freq = self.theta ** -(torch.arange(0, self.head_dim, 2, device=device).float() / self.head_dim)
        angles = torch.outer(torch.arange(n, device=device).float(), inv_freq)  # (n, head_dim / 2)
        return torch.cat((angles, angles), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rotary = self.rotary(x.shape[1], x.device)
        for block in self.layers:
            x = block(x, rotary)
        return x


class _PerLevelLinear(nn.Module):
    """One (dim -> codebook) projection per acoustic level: (B, N, Q, dim) -> (B, N, Q, K)."""

    def __init__(self, levels: int, dim: int, codebook: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(levels, dim, codebook))  # (Q, dim, K)
        self.bias = nn.Parameter(torch.zeros(1, 1, levels, codebook))  # broadcast over (B, N)
        nn.init.uniform_(self.weight, -math.sqrt(3 / dim), math.sqrt(3 / dim))

    def forward(self, x: torch.Tensor, level: int | None = None) -> torch.Tensor:
        if level is None:
            return torch.einsum("bnqd,qdk->bnqk", x, self.weight) + self.bias
        return x @ self.weight[level] + self.bias[0, 0, level]  # (B, N, dim) -> (B, N, K)


class _CodeConformer(nn.Module):
    """Acoustic codes (+ semantic condition) -> per-level logits; the release's ConformerWrapper."""

    def __init__(self, c: SoundStormConfig):
        super().__init__()
        self.levels, self.codes_per_level = c.num_quantizers, c.codebook_size + 1  # + the mask code
        self.code_embeds = nn.Embedding(self.levels * self.codes_per_level, c.dim)
        self.conformer = _Conformer(c)
        self.heads = nn.Sequential(nn.Linear(c.dim, c.dim * c.num_quantizers))
        self.to_logits = nn.Sequential(
            nn.LayerNorm(c.dim), nn.Identity(), _PerLevelLinear(c.num_quantizers, c.dim, c.codebook_size)
        )

    def forward(self, codes: torch.Tensor, cond: torch.Tensor, level: int | None = None) -> torch.Tensor:
        """codes (B, N, Q) with mask ids, cond (B, N, dim) -> logits (B, N, Q, K), or (B, N, K) of `level`."""
        offsets = torch.arange(self.levels, device=codes.device) * self.codes_per_level  # (Q,)
        x = self.code_embeds(codes + offsets).sum(dim=2) + cond  # (B, N, dim)
        x = self.conformer(x)
        h = self.heads(x).unflatten(-1, (self.levels, -1))  # (B, N, Q, dim)
        norm, _, project = self.to_logits
        if level is None:
            return project(norm(h))
        return project(norm(h[:, :, level]), level)


class SoundStorm(nn.Module):
    """Semantic codes (+ an optional prompt of all RVQ layers) -> all RVQ layers."""

    def __init__(self, config: SoundStormConfig | None = None):
        super().__init__()
        self.config = c = config or SoundStormConfig()
        self.net = _CodeConformer(c)
        self.semantic_token_emb = nn.Embedding(c.semantic_vocab, c.dim)

    def forward(self, semantic: torch.Tensor, acoustic: torch.Tensor) -> torch.Tensor:
        """semantic (B, N), acoustic (B, N, Q) with mask ids -> logits (B, N, Q, codebook_size)."""
        return self.net(acoustic, self.semantic_token_emb(semantic))

    @torch.no_grad()
    def generate(
        self,
        semantic: torch.Tensor,
        prompt: torch.Tensor | None = None,
        *,
        schedule: MaskGITSchedule = MaskGITSchedule(),
        generator: torch.Generator | None = None,
        return_prompt: bool = False,
    ) -> torch.Tensor:
        """Fill the acoustic levels.

        semantic (B, T) codes of RVQ layer 1; prompt (B, P, 1 + Q) every RVQ layer of a voice prompt,
        kept unchanged in front. Returns (B, T, 1 + Q) (or (B, P + T, 1 + Q) with `return_prompt`),
        whose [..., 0] is exactly the semantic input. Sampling draws from `generator` only.
        """
        c = self.config
        device = self.semantic_token_emb.weight.device
        semantic = semantic.to(device).long()
        B, T = semantic.shape
        if prompt is None:
            prompt = torch.zeros(B, 0, 1 + c.num_quantizers, dtype=torch.long, device=device)
        prompt = prompt.to(device).long()
        if prompt.ndim != 3 or prompt.shape[0] != B or prompt.shape[2] != 1 + c.num_quantizers:
            raise ValueError(f"prompt must be (B={B}, P, {1 + c.num_quantizers}), got {tuple(prompt.shape)}")
        P = prompt.shape[1]
        for name, x, high in (("semantic", semantic, c.semantic_vocab), ("prompt layer 1", prompt[..., 0], c.semantic_vocab),
                              ("prompt", prompt[..., 1:], c.codebook_size)):
            if x.numel() and (x.min() < 0 or x.max() >= high):
                raise ValueError(f"{name} codes must lie in [0, {high}), got {int(x.min())}..{int(x.max())}")

        all_semantic = torch.cat([prompt[..., 0], semantic], dim=1)  # (B, N)
        cond = self.semantic_token_emb(all_semantic)  # (B, N, dim), fixed for every pass
        codes = torch.full((B, P + T, c.num_quantizers), c.mask_id, dtype=torch.long, device=device)
        codes[:, :P] = prompt[..., 1:]
        k = max(1, math.ceil(schedule.top_k_fraction * c.codebook_size))

        for q in range(c.num_quantizers):
            passes = schedule.steps if q < schedule.sampled_levels else 1
            masked = torch.zeros(B, P + T, dtype=torch.bool, device=device)
            masked[:, P:] = True  # (B, N): level-q positions still to fill
            for i in range(passes):
                logits = self.net(codes, cond, level=q).float()  # (B, N, K)
                if i == passes - 1:  # the last pass commits every remaining position, greedily
                    codes[..., q] = torch.where(masked, logits.argmax(-1), codes[..., q])
                    break
                top = logits.topk(k, dim=-1)
                filtered = torch.full_like(logits, float("-inf")).scatter_(-1, top.indices, top.values)
                temperature = schedule.temperature * i / passes  # 0 on pass 0: argmax
                ids = _gumbel_argmax(filtered, temperature, generator)  # (B, N)
                confidence = filtered.softmax(-1).gather(-1, ids[..., None])[..., 0]  # (B, N)
                codes[..., q] = torch.where(masked, ids, codes[..., q])
                # Cosine schedule: after pass i of S, cos(pi/2 * (i+1)/S) of the T frames stay masked,
                # the least confident of this pass's predictions; committed codes are never re-masked.
                n_masked = math.floor(math.cos(math.pi / 2 * (i + 1) / passes) * T)
                confidence = confidence.masked_fill(~masked, float("inf"))
                rank = confidence.argsort(dim=-1).argsort(dim=-1)  # 0 = least confident
                masked = (rank < n_masked) & masked
                codes[..., q] = codes[..., q].masked_fill(masked, c.mask_id)

        out = torch.cat([all_semantic[..., None], codes], dim=-1)  # (B, N, 1 + Q)
        return out if return_prompt else out[:, P:]


def _gumbel_argmax(
    logits: torch.Tensor, temperature: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Sample from softmax(logits / temperature); temperature 0 is argmax."""
    if temperature <= 0:
        return logits.argmax(-1)
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=torch.float32)
    gumbel = -torch.log((-torch.log(u.clamp_min(1e-10))).clamp_min(1e-10))  # Gumbel(0, 1) noise
    return (logits / temperature + gumbel).argmax(-1)


# ---------------------------------------------------------------------------------------------
# Checkpoints: untrusted files, read with weights_only=True; every failure is one BundleError line


def read_checkpoint(path: str | Path, what: str = "checkpoint") -> dict[str, torch.Tensor]:
    """A `torch.save`d state dict (or a trainer package {'model': state dict}) -> {name: tensor}."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"{path}: {what} not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=_is_zip(path))
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise BundleError(f"{path}: {what} is corrupt or truncated ({reason})") from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]  # a training package: {'model': ..., 'optim': ...}
    if isinstance(obj, dict) and obj:
        for prefix in ("module.", "_orig_mod."):  # saved from a DDP-wrapped or compiled model
            if all(isinstance(k, str) and k.startswith(prefix) for k in obj):
                obj = {k[len(prefix) :]: v for k, v in obj.items()}
    if not isinstance(obj, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise BundleError(f"{path}: {what} is not a state dict of named tensors ({type(obj).__name__})")
    return obj


def _is_zip(path: Path) -> bool:
    # torch.load(mmap=True) needs the zip format; the legacy format is read into memory.
    return zipfile.is_zipfile(path)


def _names(keys: list[str], limit: int = 3) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], path: str | Path, what: str) -> None:
    """Raise one BundleError line unless `state` has exactly the model's names and shapes."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {expected[k]}"
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_names(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch (checkpoint vs model): {_names(mismatched)}")
    if problems:
        raise BundleError(f"{path}: does not fit {what}: " + "; ".join(problems))


def parse_dtype(name: str | None) -> torch.dtype:
    """'float32' | 'float16' | 'bfloat16' (None: float32) -> torch dtype."""
    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if name is None:
        return torch.float32
    if name not in table:
        raise ValueError(f"dtype must be one of {', '.join(table)}, got {name!r}")
    return table[name]


def load_soundstorm(
    path: str | Path,
    config: str | dict | SoundStormConfig = "official",
    *,
    device: str | torch.device = "cpu",
    dtype: str | None = None,
) -> SoundStorm:
    """Load a SoundStorm checkpoint (e.g. the release's `speechtokenizer_soundstorm_mls.pt`)."""
    cfg = soundstorm_config(config)
    state = read_checkpoint(path, "SoundStorm checkpoint")
    with torch.device("meta"):  # no allocation: the checkpoint's tensors become the parameters
        model = SoundStorm(cfg)
    check_state_dict(
        model, state, path, f"SoundStorm (dim {cfg.dim}, depth {cfg.depth}, {cfg.num_quantizers} levels)"
    )
    model.load_state_dict(state, strict=True, assign=True)
    return model.to(device=device, dtype=parse_dtype(dtype)).eval()
