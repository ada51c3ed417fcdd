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
                  whole batch, no per-step allocation of the cache, no HF generation machinery); its
                  decode step runs as TorchScript (`_decode_step`: the same ATen calls in the same
                  order, so the same floats, without the interpreter's cost per call)
    HFDecoder     any other HF causal LM through its own forward, one DynamicCache per row (correct
                  everywhere, batched only in the processors)
Both give float32 logits of the last position, as `model.generate` does; the output layer is split
off (`logits`) so that the engine computes only the columns the span constraint allows.
"""

from __future__ import annotations

import copy
import functools
import warnings
import weakref
from dataclasses import dataclass
from typing import List, Optional, Protocol

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

    def prefill_rows(self, rows: list[tuple[int, list[int], int]]) -> torch.Tensor:
        """`prefill` for several (slot, ids, start): (R, C) output states."""

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


HEAD_CACHE_BYTES = 64 << 20  # gathered output-layer rows kept per model, across its decoders


class _Prepared:
    """What a Llama's decoders run besides the model's own tensors, made once per model and shared
    while its parameters stay the same (`version`): q/k/v and gate/up joined into one matrix each
    (fewer, wider matmuls: what small models need on a CPU; a copy of the layer weights, so only
    below FUSE_MAX_BYTES, and only without biases: a wider matmul gives each column the same value,
    but with a bias some CPUs' kernels (AVX-512 EPYC) add it differently, off by an ulp from
    transformers' separate projections), the scripted decode step's weight lists, and the output
    layer's rows of each column set met."""

    def __init__(self, model, version: tuple):
        self.version = version
        layers = model.model.layers
        fuse = sum(p.numel() * p.element_size() for p in layers.parameters()) <= FUSE_MAX_BYTES
        self.layers = []
        for layer in layers:
            a, m = layer.self_attn, layer.mlp
            qkv = _join([a.q_proj, a.k_proj, a.v_proj]) if fuse else None
            gate_up = _join([m.gate_proj, m.up_proj]) if fuse else None
            self.layers.append(_Layer(
                layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon,
                a.q_proj, a.k_proj, a.v_proj, qkv, (a.o_proj.weight, a.o_proj.bias),
                layer.post_attention_layernorm.weight, layer.post_attention_layernorm.variance_epsilon,
                m.gate_proj, m.up_proj, gate_up, (m.down_proj.weight, m.down_proj.bias),
                _plain(m.act_fn)))
        # the scripted decode step's weights: fused projections without biases, SiLU (else eager)
        L, norm = self.layers, model.model.norm
        plain = all(x.qkv is not None and x.gate_up is not None and x.o[1] is None and x.down[1] is None
                    and x.act is F.silu for x in L)
        self.step_weights = None if not plain else (
            [x.w_in for x in L], [float(x.eps_in) for x in L], [x.qkv[0] for x in L], [x.o[0] for x in L],
            [x.w_post for x in L], [float(x.eps_post) for x in L], [x.gate_up[0] for x in L],
            [x.down[0] for x in L], norm.weight, float(norm.variance_epsilon))
        self.heads: dict[bytes, tuple] = {}  # column ids -> (weight rows, bias rows), oldest first
        self.held = 0  # bytes in `heads`

    def head_rows(self, columns: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> tuple:
        """The output layer's rows (and bias) of the token ids `columns`, gathered once per set while
        they fit in HEAD_CACHE_BYTES (a generate call makes its own column tensors: keyed by value)."""
        key = columns.cpu().numpy().tobytes()
        rows = self.heads.get(key)
        if rows is None:
            index = columns.to(w.device)  # index_select: a few times faster than w[index]
            rows = (w.index_select(0, index), None if b is None else b.index_select(0, index))
            size = rows[0].numel() * rows[0].element_size()
            if size <= HEAD_CACHE_BYTES:
                while self.heads and self.held + size > HEAD_CACHE_BYTES:  # the oldest set goes
                    old = self.heads.pop(next(iter(self.heads)), None)  # (None: another thread took it)
                    self.held -= 0 if old is None else old[0].numel() * old[0].element_size()
                self.heads[key] = rows
                self.held += size
        return rows


_PREPARED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> _Prepared


def _version(model) -> tuple:
    """Changes when a parameter is replaced or changed in place (torch counts in-place writes;
    a tensor made in inference mode has no count, and only its storage is compared)."""
    return tuple((p.data_ptr(), -1 if p.is_inference() else p._version) for p in model.parameters())


def _prepared(model) -> _Prepared:
    version = _version(model)
    hit = _PREPARED.get(model)
    if hit is None or hit.version != version:
        hit = _PREPARED[model] = _Prepared(model, version)
    return hit


def make_decoder(model, *, rows: int = 8, length: int = 512) -> Decoder:
    """The fast decoder when the model is a Llama, else the generic one."""
    if LlamaDecoder.supports(model):
        return LlamaDecoder(model, rows=rows, length=length)
    return HFDecoder(model)


class LlamaDecoder:
    """LlamaForCausalLM's forward (RMSNorm, rotary q/k, grouped-query sdpa, SwiGLU), op for op as
    in transformers' modeling_llama (a decode step gives its logits to the bit), over a cache of
    shape (rows, 2 * kv_heads, capacity, head_dim) per layer (keys, then values) that grows by
    doubling when a row outgrows it."""

    @staticmethod
    def supports(model) -> bool:
        cfg = getattr(model, "config", None)
        return (getattr(cfg, "model_type", None) == "llama" and getattr(cfg, "pretraining_tp", 1) == 1
                and hasattr(model, "model") and hasattr(model.model, "rotary_emb"))

    def __init__(self, model, *, rows: int = 8, length: int = 512, script: bool = True):
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
        self._model = weakref.ref(model)
        self._weights = _prepared(model)  # fused projections, gathered output rows: shared per model
        self.layers = self._weights.layers
        self.norm = (base.norm.weight, base.norm.variance_epsilon)
        self.lm_head = (model.lm_head.weight, model.lm_head.bias)
        self._step_weights = self._weights.step_weights if script else None
        self.rotary = base.rotary_emb
        self._heads: dict[int, tuple] = {}  # id(columns) -> (columns, output-layer rows, bias)
        self.rows, self.capacity = 0, 0
        self.kv: list[torch.Tensor] = []  # per layer (rows, 2 * Hkv, capacity, D): keys, then values
        self.kv_t: list[torch.Tensor] = []  # the same as (rows, capacity, 2 * Hkv, D) views, for writes
        self.cos = self.sin = torch.empty(0)  # (capacity, D) rotary tables; sin's first half negated
        self._positions = self._slots = torch.empty(0, dtype=torch.long)  # arange(capacity), arange(rows)
        self.reserve(rows, length)

    def current(self) -> bool:
        """Whether the model's parameters are still those this decoder was made with (a training
        step or a load changes them in place)."""
        model = self._model()
        return model is not None and _version(model) == self._weights.version

    # --- cache ------------------------------------------------------------------------------------
    def reserve(self, rows: int, length: int) -> None:
        """Make room for `rows` slots of `length` positions (doubling, so growth is rare)."""
        if rows <= self.rows and length <= self.capacity:
            return
        new_rows = max(rows, self.rows)
        new_cap = self.capacity
        while new_cap < length:
            new_cap = max(2 * new_cap, 64)
        shape = (new_rows, 2 * self.kv_heads, new_cap, self.head_dim)
        for i in range(len(self.layers)):
            fresh = torch.zeros(shape, dtype=self.dtype, device=self.device)
            if i < len(self.kv):
                fresh[: self.rows, :, : self.capacity] = self.kv[i]
                self.kv[i] = fresh
            else:
                self.kv.append(fresh)
        self.kv_t = [kv.transpose(1, 2) for kv in self.kv]
        if new_cap > self.capacity:  # the rotary table for every position the cache can hold
            pos = torch.arange(new_cap, device=self.device)[None]
            probe = torch.empty(0, dtype=self.dtype, device=self.device)
            cos, sin = self.rotary(probe, pos)  # (1, T, D), as the model computes them
            half = self.head_dim // 2  # rotate_half(x) = (-x[half:], x[:half]): the minus moves to sin
            self.cos, self.sin = cos[0], torch.cat([-sin[0, :, :half], sin[0, :, half:]], dim=-1)
            self._positions = pos[0]
        self.rows, self.capacity = new_rows, new_cap
        self._slots = torch.arange(self.rows, device=self.device)

    @torch.inference_mode()
    def move(self, src: int, dst: int, length: int) -> None:
        for kv in self.kv:
            kv[dst, :, :length] = kv[src, :, :length]

    @torch.inference_mode()
    def gather(self, order: torch.Tensor, length: int) -> None:
        """Slot i takes the first `length` cached positions of slot order[i], for i < len(order)
        (a beam search's new beam order; a slot may be copied into several)."""
        n = order.shape[0]
        for kv in self.kv:
            kv[:n, :, :length] = kv[order, :, :length]

    @torch.inference_mode()
    def export(self, slot: int, ids: list[int]) -> KVPrefix:
        n = len(ids)
        h = self.kv_heads
        state = [(kv[slot, :h, :n].clone(), kv[slot, h:, :n].clone()) for kv in self.kv]  # (Hkv, n, D) each
        return KVPrefix(list(ids), state)

    @torch.inference_mode()
    def load(self, slot: int, prefix: KVPrefix, length: int) -> None:
        self.reserve(slot + 1, length + 1)
        h = self.kv_heads
        for (pk, pv), kv in zip(prefix.state, self.kv):
            kv[slot, :h, :length] = pk[:, :length]
            kv[slot, h:, :length] = pv[:, :length]

    # --- forward ----------------------------------------------------------------------------------
    @torch.inference_mode()
    def prefill(self, slot: int, ids: list[int], start: int) -> torch.Tensor:
        return self.prefill_rows([(slot, ids, start)])[0]

    @torch.inference_mode()
    def prefill_rows(self, rows: list[tuple[int, list[int], int]]) -> torch.Tensor:
        """`prefill` for several (slot, ids, start) at once: their tokens go through the linear layers
        together, packed (rows of one token alone: a one-row matmul rounds differently); (R, C)."""
        if len(rows) > 1 and any(len(ids) == 1 for _, ids, _ in rows):
            multi = [i for i, (_, ids, _) in enumerate(rows) if len(ids) > 1]
            states = dict(zip(multi, self.prefill_rows([rows[i] for i in multi]))) if multi else {}
            return torch.stack([states[i] if i in states else self.prefill_rows([r])[0] for i, r in enumerate(rows)])
        self.reserve(max(slot for slot, _, _ in rows) + 1, max(start + len(ids) for _, ids, start in rows) + 1)
        segments, ids, pos, ends, offset = [], [], [], [], 0
        for slot, row_ids, start in rows:
            n = len(row_ids)
            segments.append((slot, offset, n, start))
            ids += row_ids
            pos.append(self._positions[start: start + n])
            offset += n
            ends.append(offset - 1)
        x = torch.tensor(ids, device=self.device)
        pos = torch.cat(pos) if len(pos) > 1 else pos[0]

        def attend(q, kv, layer):  # q (N, H, D), kv (N, 2 * Hkv, D): each row on its own cache
            out = []
            for slot, off, n, start in segments:
                self.kv_t[layer][slot, start: start + n] = kv[off: off + n]
                mask = None  # from position 0: plain causal attention
                if start:  # query i sees every cached position and the new ones up to itself
                    mask = self._positions[: start + n][None, :] <= self._positions[start: start + n, None]
                keys, values = _halves(self.kv[layer][slot: slot + 1, :, : start + n], self.kv_heads)
                out.append(self._attention(q[off: off + n].transpose(0, 1)[None], keys, values, mask,
                                           causal=n > 1 and not start))
            o = torch.cat(out, dim=2) if len(out) > 1 else out[0]  # (1, H, N, D)
            return o[0].transpose(0, 1).reshape(-1, self.heads * self.head_dim)

        return self._forward(x, pos, attend, torch.tensor(ends, device=self.device))  # (R, C)

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        b = tokens.shape[0]
        lo, hi = torch.aminmax(lengths)
        lo, hi = int(lo), int(hi)
        self.reserve(b, hi + 1)
        lengths = lengths.to(self.device)
        step = _scripted_step() if self._step_weights is not None else None
        if step is not None:
            with torch.jit.optimized_execution(False):  # no fusion passes: the ops as written
                return step(
                    tokens.to(self.device), lengths, lo != hi, hi, self._slots, self._positions, self.embed,
                    self.cos, self.sin, self.perm, self.kv, self.kv_t, *self._step_weights,
                    self.heads, self.kv_heads, self.head_dim, self.inner, float(self.scaling))
        where = (self._slots[:b], lengths)  # row r writes at lengths[r] ...
        mask = None  # ... and sees positions <= lengths[r]: every cached one when the lengths are equal
        if lo != hi:  # as an additive mask: what sdpa makes of a boolean one in every layer
            seen = self._positions[: hi + 1][None, :] <= lengths[:, None]
            mask = torch.zeros(seen.shape, dtype=self.dtype, device=self.device).masked_fill_(~seen, float("-inf"))
            mask = mask[:, None, None, :]  # (B, 1, 1, T)
        read = (slice(0, b), slice(None), slice(0, hi + 1))

        def attend(q, kv, layer):  # q (B, H, D), kv (B, 2 * Hkv, D): one new column per row
            self.kv_t[layer].index_put_(where, kv)
            keys, values = _halves(self.kv[layer][read], self.kv_heads)
            return self._attention(q[:, :, None], keys, values, mask).view(b, -1)

        return self._forward(tokens.to(self.device), lengths, attend)

    def _attention(self, q, keys, values, mask, causal: bool = False) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=self.scaling, is_causal=causal,
                                              enable_gqa=self.heads != self.kv_heads)

    def _forward(self, x, pos, attend, last: torch.Tensor | None = None) -> torch.Tensor:
        """x and pos (N,): the new tokens (of one or several rows, packed) and their positions;
        `attend(q, kv, layer)` writes a layer's new keys|values into its cache and returns the
        attention output, (N, H*D). Returns the output states of the tokens `last`
        (None: all), (R, C).

            one layer, on (N, C) states:   norm -> qkv linear -> rotary on q|k (one op for both)
            -> attend (cache write, sdpa) -> out linear -> + -> norm -> SwiGLU -> +
        """
        H, Hkv, D = self.heads, self.kv_heads, self.head_dim
        split = (H + Hkv) * D
        h = F.embedding(x, self.embed)  # (N, C)
        cos, sin = self.cos[pos][:, None], self.sin[pos][:, None]  # (N, 1, D)
        for i, L in enumerate(self.layers):
            y = _rms_norm(h, L.w_in, L.eps_in)
            qkv = F.linear(y, *L.qkv) if L.qkv is not None else torch.cat([L.q(y), L.k(y), L.v(y)], dim=-1)
            qk = qkv[:, :split].view(-1, H + Hkv, D)
            # rotary on q and k in place: rotate_half(x) * sin == x[perm] * sin with the sign of its
            # first half folded into `sin`; then k and v are adjacent, as the cache keeps them
            torch.add(qk * cos, qk.index_select(-1, self.perm) * sin, out=qk)
            o = attend(qk[:, :H], qkv[:, H * D:].view(-1, 2 * Hkv, D), i)
            h = h + F.linear(o, *L.o)
            y = _rms_norm(h, L.w_post, L.eps_post)
            if L.gate_up is not None:
                g, u = F.linear(y, *L.gate_up).split_with_sizes((self.inner, self.inner), dim=-1)
            else:
                g, u = L.gate(y), L.up(y)
            h = h + F.linear(L.act(g) * u, *L.down)
        return _rms_norm(h if last is None else h[last], *self.norm)  # (R, C)

    @torch.inference_mode()
    def logits(self, states: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        w, b = self.lm_head
        if columns is not None:  # the rows of those tokens, looked up once per column tensor (the
            hit = self._heads.get(id(columns))  # engine keeps one per set); the entry holds it, so
            if hit is None or hit[0] is not columns:  # its id is not reused while the entry lives
                if len(self._heads) >= HEAD_CACHE:
                    self._heads.pop(next(iter(self._heads)))
                hit = self._heads[id(columns)] = (columns, *self._weights.head_rows(columns, w, b))
            _, w, b = hit
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


def _join(linears) -> tuple | None:
    """(weight, None) of linears stacked, or None where they have biases (kept separate)."""
    if any(m.bias is not None for m in linears):
        return None
    return torch.cat([m.weight for m in linears]).detach(), None


def _plain(act):
    """SiLU as the function itself (its module's forward is F.silu): a module call costs more than the op.
    transformers' SiLUActivation is recognised by name, so that this module does not import it."""
    silu = isinstance(act, torch.nn.SiLU) or (type(act).__name__ == "SiLUActivation"
                                               and type(act).__module__.startswith("transformers."))
    return F.silu if silu else act


def _halves(kv: torch.Tensor, heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 2 * heads, T, D) -> keys, values (B, heads, T, D): two slices (Tensor.split goes through Python)."""
    return kv[:, :heads], kv[:, heads:]


def _decode_step(tokens: torch.Tensor, lengths: torch.Tensor, ragged: bool, hi: int, slots: torch.Tensor,
                 positions: torch.Tensor, embed: torch.Tensor, cos_table: torch.Tensor, sin_table: torch.Tensor,
                 perm: torch.Tensor, kv: List[torch.Tensor], kv_t: List[torch.Tensor], w_in: List[torch.Tensor],
                 eps_in: List[float], qkv_w: List[torch.Tensor], o_w: List[torch.Tensor], w_post: List[torch.Tensor],
                 eps_post: List[float], gate_up_w: List[torch.Tensor], down_w: List[torch.Tensor],
                 norm_w: torch.Tensor, norm_eps: float, heads: int, kv_heads: int, head_dim: int, inner: int,
                 scaling: float) -> torch.Tensor:
    """LlamaDecoder.decode's forward (fused projections, no biases, SiLU) with its ops in the same
    order and shapes as `LlamaDecoder._forward` and its `attend`, for TorchScript: one token per
    row at positions `lengths`; `ragged`: the rows' lengths differ (an additive mask), hi: the
    longest. Returns the (B, C) output states."""
    b = tokens.shape[0]
    split = (heads + kv_heads) * head_dim
    mask: Optional[torch.Tensor] = None
    if ragged:
        seen = positions[: hi + 1][None, :] <= lengths[:, None]
        mask = torch.zeros(seen.shape, dtype=embed.dtype, device=embed.device).masked_fill_(~seen, float("-inf"))
        mask = mask[:, None, None, :]
    where: List[Optional[torch.Tensor]] = [slots[:b], lengths]
    h = F.embedding(tokens, embed)
    cos, sin = cos_table[lengths][:, None], sin_table[lengths][:, None]
    for i in range(len(w_in)):
        y = _rms_norm(h, w_in[i], eps_in[i])
        qkv = F.linear(y, qkv_w[i])
        qk = qkv[:, :split].view(-1, heads + kv_heads, head_dim)
        torch.add(qk * cos, qk.index_select(-1, perm) * sin, out=qk)
        kv_t[i].index_put_(where, qkv[:, heads * head_dim:].view(-1, 2 * kv_heads, head_dim))
        cached = kv[i][:b, :, : hi + 1]
        o = F.scaled_dot_product_attention(qk[:, :heads][:, :, None], cached[:, :kv_heads], cached[:, kv_heads:],
                                           attn_mask=mask, scale=scaling, enable_gqa=heads != kv_heads).view(b, -1)
        h = h + F.linear(o, o_w[i])
        y = _rms_norm(h, w_post[i], eps_post[i])
        gu = F.linear(y, gate_up_w[i])
        h = h + F.linear(F.silu(gu[:, :inner]) * gu[:, inner:], down_w[i])
    return _rms_norm(h, norm_w, norm_eps)


@functools.cache
def _scripted_step():
    """`_decode_step` compiled once per process, on first use (about 0.03 s), or None where this
    torch cannot (TorchScript is deprecated; the eager step then runs, with the same values)."""
    script = getattr(torch.jit, "script", None)
    if script is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # ours to handle: the fallback below
        try:
            return script(_decode_step)
        except Exception:  # any failure to compile leaves the eager step, which needs nothing
            return None


def _rms_norm(h: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    if h.dtype == torch.float32:  # the casts below are no-ops: torch's own op gives the same values
        return F.rms_norm(h, weight.shape, weight, eps)
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

    @torch.inference_mode()
    def prefill(self, slot: int, ids: list[int], start: int) -> torch.Tensor:
        return self._run(slot, ids, start)

    def prefill_rows(self, rows: list[tuple[int, list[int], int]]) -> torch.Tensor:
        return torch.stack([self.prefill(*row) for row in rows])

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._run(i, [int(t)], int(n)) for i, (t, n) in enumerate(zip(tokens, lengths))])

    def logits(self, states: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        return states if columns is None else states[:, columns]

    def move(self, src: int, dst: int, length: int) -> None:
        self.caches[dst] = self.caches.pop(src)

    def export(self, slot: int, ids: list[int]) -> KVPrefix:
        cache = copy.deepcopy(self.caches[slot])
        _crop(cache, len(ids))
        return KVPrefix(list(ids), cache)

    def load(self, slot: int, prefix: KVPrefix, length: int) -> None:
        cache = copy.deepcopy(prefix.state)
        _crop(cache, length)
        self.caches[slot] = cache


def _crop(cache, length: int) -> None:
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)  # transformers 5: a negative count of positions to drop
