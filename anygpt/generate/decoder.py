"""Forward passes over a key/value cache of independent rows ("slots"), for the decoding engine.

A decoder owns the cache; the engine owns the rows. Active rows always sit in slots 0..B-1, each
with its own length, so a row can join (prefill into a free slot) or leave (the last slot moves
into its place) without touching the others:

    slot 0   h h h h h h h h p p p . . . .      h: history kept from the last turn
    slot 1   q q q q g g . . . . . . . . .      q: prompt, g: generated, p: new prompt tokens
    slot 2   q q g g g g g g g g g g . . .      .: free capacity (preallocated: a static cache)
             0                         T-1      a decode step writes one column per row, at its length

Two implementations of one interface:
    LlamaDecoder  the forward of any Llama-architecture HF model, written out over the model's own
                  weights and rotary table, on a preallocated cache (one sdpa call per layer for the
                  whole batch, no per-step allocation of the cache, no HF generation machinery)
    HFDecoder     any other HF causal LM through its own forward, one DynamicCache per row (correct
                  everywhere, batched only in the processors)
Both give float32 logits of the last position, as `model.generate` does; the output layer is split
off (`logits`) so that the engine computes only the columns the span constraint allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F


@dataclass
class KVPrefix:
    """The cache of one sequence, kept between phases and chat turns: `ids[:length]` are cached."""

    ids: list[int]
    state: object  # the decoder's own form (tensors or a DynamicCache)

    @property
    def length(self) -> int:
        return len(self.ids)


class Decoder(Protocol):
    def prefill(self, slot: int, ids: list[int], start: int) -> torch.Tensor:
        """Write `ids` at positions start.. of `slot` (positions < start are already cached);
        return the output state after the last one, (C,), for `logits`."""

    def decode(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """One token per active slot: tokens (B,) at positions lengths (B,) of slots 0..B-1;
        return (B, C) output states."""

    def logits(self, states: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C) output states -> (B, V) float32 logits, or (B, len(columns)) for those token ids
        only (the span constraint usually allows a small part of the vocabulary)."""

    def move(self, src: int, dst: int, length: int) -> None:
        """Copy the first `length` cached positions of slot src into slot dst."""

    def export(self, slot: int, ids: list[int]) -> KVPrefix:
        """A copy of the slot's cache for the cached `ids`."""

    def load(self, slot: int, prefix: KVPrefix, length: int) -> None:
        """Put the first `length` positions of a prefix into `slot`."""


FUSE_MAX_BYTES = 1 << 30  # fuse the projections of models whose layers take at most 1 GiB
HEAD_CACHE = 32  # column sets of the output layer kept gathered (text, each codebook, ends...)


def make_decoder(model, *, rows: int = 8, length: int = 512) -> Decoder:
    """The fast decoder when the model is a Llama, else the generic one."""
    if LlamaDecoder.supports(model):
        return LlamaDecoder(model, rows=rows, length=length)
    return HFDecoder(model)


class LlamaDecoder:
    """LlamaForCausalLM's forward (RMSNorm, rotary q/k, grouped-query sdpa, SwiGLU), op for op as
    in transformers' modeling_llama, over a cache of shape (rows, kv_heads, capacity, head_dim) per
    layer that grows by doubling when a row outgrows it."""

    @staticmethod
    def supports(model) -> bool:
        cfg = getattr(model, "config", None)
        return (getattr(cfg, "model_type", None) == "llama" and getattr(cfg, "pretraining_tp", 1) == 1
                and hasattr(model, "model") and hasattr(model.model, "rotary_emb"))

    def __init__(self, model, *, rows: int = 8, length: int = 512):
        cfg = model.config
        base = model.model
        self.device = model.device
        self.dtype = base.embed_tokens.weight.dtype
        self.embed = base.embed_tokens.weight
        self.heads = cfg.num_attention_heads
        self.kv_heads = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.scaling = self.head_dim ** -0.5
        # q/k/v and gate/up as one matrix each (fewer, wider matmuls: what small models need on a
        # CPU); a copy of the layer weights, so only below FUSE_MAX_BYTES
        layer_bytes = sum(p.numel() * p.element_size() for p in base.layers.parameters())
        fuse = layer_bytes <= FUSE_MAX_BYTES
        self.layers = []
        for layer in base.layers:
            a, m = layer.self_attn, layer.mlp
            qkv = _join([a.q_proj, a.k_proj, a.v_proj]) if fuse else None
            gate_up = _join([m.gate_proj, m.up_proj]) if fuse else None
            self.layers.append(_Layer(
                layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon,
                a.q_proj, a.k_proj, a.v_proj, qkv, (a.o_proj.weight, a.o_proj.bias),
                layer.post_attention_layernorm.weight, layer.post_attention_layernorm.variance_epsilon,
                m.gate_proj, m.up_proj, gate_up, (m.down_proj.weight, m.down_proj.bias), m.act_fn))
        self.norm = (base.norm.weight, base.norm.variance_epsilon)
        self.lm_head = (model.lm_head.weight, model.lm_head.bias)
        self.rotary = base.rotary_emb
        self._heads: dict[bytes, tuple] = {}  # output-layer rows per column set
        self.rows, self.capacity = 0, 0
        self.k: list[torch.Tensor] = []
        self.v: list[torch.Tensor] = []
        self.cos = self.sin = torch.empty(0)
        self.reserve(rows, length)

    # --- cache ------------------------------------------------------------------------------------
    def reserve(self, rows: int, length: int) -> None:
        """Make room for `rows` slots of `length` positions (doubling, so growth is rare)."""
        if rows <= self.rows and length <= self.capacity:
            return
        new_rows = max(rows, self.rows)
        new_cap = self.capacity
        while new_cap < length:
            new_cap = max(2 * new_cap, 64)
        shape = (new_rows, self.kv_heads, new_cap, self.head_dim)
        for i in range(len(self.layers)):
            for store in (self.k, self.v):
                fresh = torch.zeros(shape, dtype=self.dtype, device=self.device)
                if i < len(store):
                    fresh[: self.rows, :, : self.capacity] = store[i]
                    store[i] = fresh
                else:
                    store.append(fresh)
        if new_cap > self.capacity:  # the rotary table for every position the cache can hold
            pos = torch.arange(new_cap, device=self.device)[None]
            probe = torch.empty(0, dtype=self.dtype, device=self.device)
            cos, sin = self.rotary(probe, pos)  # (1, T, D), as the model computes them
            self.cos, self.sin = cos[0], sin[0]
        self.rows, self.capacity = new_rows, new_cap

    def move(self, src: int, dst: int, length: int) -> None:
        for store in (self.k, self.v):
            for t in store:
                t[dst, :, :length] = t[src, :, :length]

    def export(self, slot: int, ids: list[int]) -> KVPrefix:
        n = len(ids)
        state = [(k[slot, :, :n].clone(), v[slot, :, :n].clone()) for k, v in zip(self.k, self.v)]
        return KVPrefix(list(ids), state)

    def load(self, slot: int, prefix: KVPrefix, length: int) -> None:
        self.reserve(slot + 1, length + 1)
        for (pk, pv), k, v in zip(prefix.state, self.k, self.v):
            k[slot, :, :length] = pk[:, :length]
            v[slot, :, :length] = pv[:, :length]

    # --- forward ----------------------------------------------------------------------------------
    @torch.no_grad()
    def prefill(self, slot: int, ids: list[int], start: int) -> torch.Tensor:
        n = len(ids)
        self.reserve(slot + 1, start + n + 1)
        x = torch.tensor([ids], device=self.device)  # (1, n)
        pos = torch.arange(start, start + n, device=self.device)
        if start == 0:
            mask = None  # plain causal attention
        else:  # query i sees every cached position and the new ones up to itself
            mask = torch.arange(start + n, device=self.device)[None, :] <= pos[:, None]  # (n, start+n)
            mask = mask[None, None]
        write = (torch.tensor([slot], device=self.device), slice(start, start + n))
        return self._forward(x, pos[None], write, slice(slot, slot + 1), start + n, mask)[0]  # (C,)

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        b = tokens.shape[0]
        kv_len = int(lengths.max()) + 1
        self.reserve(b, kv_len)
        lengths = lengths.to(self.device)
        mask = None
        if bool((lengths != lengths[0]).any()):
            mask = (torch.arange(kv_len, device=self.device)[None, :] <= lengths[:, None])[:, None, None, :]
        write = (torch.arange(b, device=self.device), lengths)
        return self._forward(tokens.to(self.device)[:, None], lengths[:, None], write, slice(0, b), kv_len, mask)

    def _forward(self, x, pos, write, rows: slice, kv_len: int, mask) -> torch.Tensor:
        bsz, n = x.shape
        h = F.embedding(x, self.embed)  # (B, n, C)
        cos, sin = self.cos[pos][:, None], self.sin[pos][:, None]  # (B, 1, n, D)
        decode = isinstance(write[1], torch.Tensor)
        hd = self.head_dim
        for i, L in enumerate(self.layers):
            y = _rms_norm(h, L.w_in, L.eps_in)
            if L.qkv is not None:  # q and k are adjacent: rotate them together, (B, H + Hkv, n, D)
                qkv = F.linear(y, *L.qkv)
                split = (self.heads + self.kv_heads) * hd
                qk = qkv[..., :split].view(bsz, n, -1, hd).transpose(1, 2)
                qk = qk * cos + _rotate_half(qk) * sin
                q, k = qk.split([self.heads, self.kv_heads], 1)  # (B, H, n, D), (B, Hkv, n, D)
                v = qkv[..., split:]
            else:
                q = L.q(y).view(bsz, n, -1, hd).transpose(1, 2)
                k = L.k(y).view(bsz, n, -1, hd).transpose(1, 2)
                q = q * cos + _rotate_half(q) * sin
                k = k * cos + _rotate_half(k) * sin
                v = L.v(y)
            v = v.reshape(bsz, n, -1, hd).transpose(1, 2)  # (B, Hkv, n, D)
            kc, vc = self.k[i], self.v[i]
            if decode:  # one new column per row, each at its own length
                kc[write[0], :, write[1]] = k[:, :, 0]
                vc[write[0], :, write[1]] = v[:, :, 0]
            else:
                kc[write[0], :, write[1]] = k
                vc[write[0], :, write[1]] = v
            keys, values = kc[rows, :, :kv_len], vc[rows, :, :kv_len]
            o = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=self.scaling,
                                               is_causal=mask is None and n > 1,
                                               enable_gqa=self.heads != self.kv_heads)
            h = h + F.linear(o.transpose(1, 2).reshape(bsz, n, -1), *L.o)
            y = _rms_norm(h, L.w_post, L.eps_post)
            if L.gate_up is not None:
                g, u = F.linear(y, *L.gate_up).chunk(2, dim=-1)
            else:
                g, u = L.gate(y), L.up(y)
            h = h + F.linear(L.act(g) * u, *L.down)
        return _rms_norm(h[:, -1], *self.norm)  # (B, C)

    @torch.no_grad()
    def logits(self, states: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        w, b = self.lm_head
        if columns is not None:  # the rows of those tokens, gathered once per set (a span's codebook)
            key = columns.cpu().numpy().tobytes()
            if key not in self._heads:
                if len(self._heads) >= HEAD_CACHE:
                    self._heads.pop(next(iter(self._heads)))
                columns = columns.to(w.device)
                self._heads[key] = (w[columns], None if b is None else b[columns])
            w, b = self._heads[key]
        return F.linear(states, w, b).float()


@dataclass
class _Layer:
    w_in: torch.Tensor
    eps_in: float
    q: torch.nn.Module
    k: torch.nn.Module
    v: torch.nn.Module
    qkv: tuple | None  # (weight, bias) of q, k and v stacked
    o: tuple
    w_post: torch.Tensor
    eps_post: float
    gate: torch.nn.Module
    up: torch.nn.Module
    gate_up: tuple | None
    down: tuple
    act: object


def _join(linears) -> tuple:
    bias = None if linears[0].bias is None else torch.cat([m.bias for m in linears]).detach()
    return torch.cat([m.weight for m in linears]).detach(), bias


def _rms_norm(h: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    if h.dtype == torch.float32:  # the casts below are no-ops: skip their dispatch
        return weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps))
    dtype = h.dtype
    h32 = h.to(torch.float32)
    h32 = h32 * torch.rsqrt(h32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h32.to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class HFDecoder:
    """Any HF causal LM through its own forward: a DynamicCache per slot, rows run one by one."""

    def __init__(self, model):
        self.model = model
        self.caches: dict[int, object] = {}

    def _fresh(self):
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config)

    def _run(self, slot: int, ids: list[int], start: int) -> torch.Tensor:
        cache = self.caches.get(slot)
        if cache is None or start == 0:
            cache = self.caches[slot] = self._fresh()
        else:
            _crop(cache, start)
        dev = self.model.device
        out = self.model(input_ids=torch.tensor([ids], device=dev), past_key_values=cache, use_cache=True,
                         position_ids=torch.arange(start, start + len(ids), device=dev)[None])
        return out.logits[0, -1].float()  # the output state is the logits row itself

    @torch.no_grad()
    def prefill(self, slot: int, ids: list[int], start: int) -> torch.Tensor:
        return self._run(slot, ids, start)

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._run(i, [int(t)], int(n)) for i, (t, n) in enumerate(zip(tokens, lengths))])

    def logits(self, states: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        return states if columns is None else states[:, columns]

    def move(self, src: int, dst: int, length: int) -> None:
        self.caches[dst] = self.caches.pop(src)

    def export(self, slot: int, ids: list[int]) -> KVPrefix:
        import copy

        cache = copy.deepcopy(self.caches[slot])
        _crop(cache, len(ids))
        return KVPrefix(list(ids), cache)

    def load(self, slot: int, prefix: KVPrefix, length: int) -> None:
        import copy

        cache = copy.deepcopy(prefix.state)
        _crop(cache, length)
        self.caches[slot] = cache


def _crop(cache, length: int) -> None:
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)  # transformers 5: a negative count of positions to drop
