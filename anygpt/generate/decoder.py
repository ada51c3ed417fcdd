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
        self.inner = cfg.intermediate_size
        half = self.head_dim // 2  # rotate_half as a gather: x[perm] is (x[half:], x[:half])
        self.perm = torch.cat([torch.arange(half, self.head_dim), torch.arange(half)]).to(self.device)
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
        self.cos = self.sin = torch.empty(0)  # (capacity, D) rotary tables; sin's first half negated
        self._positions = self._slots = torch.empty(0, dtype=torch.long)  # arange(capacity), arange(rows)
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
            half = self.head_dim // 2  # rotate_half(x) = (-x[half:], x[:half]): the minus moves to sin
            self.cos, self.sin = cos[0], torch.cat([-sin[0, :, :half], sin[0, :, half:]], dim=-1)
            self._positions = pos[0]
        self.rows, self.capacity = new_rows, new_cap
        self._slots = torch.arange(self.rows, device=self.device)

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
        pos = torch.arange(start, start + n, device=self.device)
        mask = None  # from position 0: plain causal attention
        if start:  # query i sees every cached position and the new ones up to itself
            mask = (self._positions[: start + n][None, :] <= pos[:, None])[None, None]  # (1, 1, n, start+n)
        put = ((slot, slice(None), slice(start, start + n)), 0)
        read = (slice(slot, slot + 1), slice(None), slice(0, start + n))
        return self._forward(torch.tensor(ids, device=self.device), pos, 1, n, put, read, mask)[0]  # (C,)

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        b = tokens.shape[0]
        lo, hi = torch.aminmax(lengths)
        lo, hi = int(lo), int(hi)
        self.reserve(b, hi + 1)
        lengths = lengths.to(self.device)
        if lo == hi:  # every row at the same length: a plain column write, no mask
            put, mask = ((slice(0, b), slice(None), lo), 2), None
        else:  # row r writes at lengths[r] and sees positions <= lengths[r]
            put = ((self._slots[:b], slice(None), lengths), 2)
            mask = (self._positions[: hi + 1][None, :] <= lengths[:, None])[:, None, None, :]  # (B, 1, 1, T)
        read = (slice(0, b), slice(None), slice(0, hi + 1))
        return self._forward(tokens.to(self.device), lengths, b, 1, put, read, mask)

    def _forward(self, x, pos, rows: int, n: int, put, read, mask) -> torch.Tensor:
        """`rows` rows of `n` new tokens each: x and pos (rows*n,) their ids and positions. The new
        keys/values go to `cache[put[0]]` (their (rows, Hkv, n, D) block without dimension put[1]);
        attention reads `cache[read]` under `mask` (None: causal). Returns (rows, C) last states.

            one layer, on (rows*n, C) states:   norm -> qkv linear -> rotary on q|k (one op for both)
            -> keys/values into the cache -> sdpa over the cache -> out linear -> + -> norm -> SwiGLU -> +
        """
        H, Hkv, D = self.heads, self.kv_heads, self.head_dim
        split = (H + Hkv) * D
        h = F.embedding(x, self.embed)  # (R*n, C)
        cos, sin = self.cos[pos][:, None], self.sin[pos][:, None]  # (R*n, 1, D)
        where, drop = put
        causal = mask is None and n > 1
        for L, kc, vc in zip(self.layers, self.k, self.v):
            y = _rms_norm(h, L.w_in, L.eps_in)
            qkv = F.linear(y, *L.qkv) if L.qkv is not None else torch.cat([L.q(y), L.k(y), L.v(y)], dim=-1)
            qk = qkv[:, :split].view(-1, H + Hkv, D)
            # rotate_half(x) * sin == x[perm] * sin with the sign of its first half folded into `sin`
            qk = (qk * cos + qk.index_select(-1, self.perm) * sin).view(rows, n, H + Hkv, D).transpose(1, 2)
            v = qkv[:, split:].view(rows, n, Hkv, D).transpose(1, 2)  # (R, Hkv, n, D)
            kc[where] = qk[:, H:].squeeze(drop)
            vc[where] = v.squeeze(drop)
            o = F.scaled_dot_product_attention(qk[:, :H], kc[read], vc[read], attn_mask=mask, scale=self.scaling,
                                               is_causal=causal, enable_gqa=H != Hkv)  # (R, H, n, D)
            h = h + F.linear(o.transpose(1, 2).reshape(rows * n, H * D), *L.o)
            y = _rms_norm(h, L.w_post, L.eps_post)
            if L.gate_up is not None:
                gu = F.linear(y, *L.gate_up)
                g, u = gu[:, : self.inner], gu[:, self.inner:]
            else:
                g, u = L.gate(y), L.up(y)
            h = h + F.linear(L.act(g) * u, *L.down)
        return _rms_norm(h.view(rows, n, -1)[:, -1], *self.norm)  # (R, C)

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
