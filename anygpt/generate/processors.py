"""Modality-aware generation as logits processors over token ids.

Both processors are stateless: each call reads the span state of every row off `input_ids` (the
last start/end token and how many tokens followed it), so they stay correct under beam search's row
reordering, left padding and prompts that end inside an open span.

    ... text text <soim> c c c ... c <eoim> text <somu> m0 m1 m2 m3 m0 m1 | next?
                                                 ^start            pos = 6 -> layer 6 % 4 = 2

Rules enforced by SpanConstraint:
    text        anything but code tokens and end tokens (optionally no span starts, or only some)
    fixed span  (image) codes of the position's codebook until tokens_per_item, then only the end
    open span   (speech, music) codes of the layer `pos % K`; the end token only on a whole frame
                (pos % K == 0, pos > 0); only the end token once the span reaches its maximum
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from anygpt.generate.config import DecodingConfig, SamplingConfig
from anygpt.layout import VocabLayout


@dataclass
class SpanState:
    modality: torch.Tensor  # (B,) index into layout.names of the open span, -1 in text
    pos: torch.Tensor  # (B,) tokens generated since the span's start token (valid where modality >= 0)
    start: torch.Tensor  # (B,) position of that start token, -1 if none


class SpanTracker:
    """Reads the span state of each row from its ids; shared by the processors and the engine."""

    def __init__(self, layout: VocabLayout):
        self.layout = layout
        kinds = layout.kind_table()
        # boundary[id]: m+1 for a start token of modality m, -1 for any end token, 0 otherwise
        self.boundary = torch.where(kinds < 0, torch.where(kinds > -100, -kinds, torch.full_like(kinds, -1)), 0)

    def state(self, input_ids: torch.Tensor) -> SpanState:
        ids = input_ids.clamp(0, self.boundary.numel() - 1)
        b = self.boundary.to(ids.device)[ids]  # (B, T)
        positions = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
        last = torch.where(b != 0, positions, -1).max(dim=1).values  # (B,)
        kind = b.gather(1, last.clamp(min=0)[:, None])[:, 0]
        is_open = (last >= 0) & (kind > 0)
        modality = torch.where(is_open, kind - 1, -1)
        pos = ids.shape[1] - 1 - last
        return SpanState(modality, pos, torch.where(is_open, last, -1))

    def advance(self, st: SpanState, tokens: torch.Tensor, index: torch.Tensor) -> SpanState:
        """The state after appending `tokens` (B,) at positions `index` (B,): what `state` would read
        off the longer ids, in O(1) per row (the decoding engine keeps it instead of rescanning)."""
        b = self.boundary.to(tokens.device)[tokens.clamp(0, self.boundary.numel() - 1)]  # (B,)
        opens, closes = b > 0, b < 0
        modality = torch.where(opens, b - 1, torch.where(closes, -1, st.modality))
        pos = torch.where(opens | closes, 0, st.pos + 1)
        start = torch.where(opens, index, torch.where(closes, -1, st.start))
        return SpanState(modality, pos, start)


class SpanConstraint:
    """Masks every token that would make the sequence an invalid span (see the module docstring).

    `allowed_starts`: modalities the text may open (None: all); `max_seconds`: length caps of
    variable-length spans. Vocabulary rows beyond the layout (padding) are never allowed."""

    def __init__(self, layout: VocabLayout, *, max_seconds: dict | None = None,
                 allowed_starts: list[str] | None = None, vocab_rows: int | None = None):
        self.layout = layout
        rows = vocab_rows or layout.vocab_size
        max_seconds = max_seconds or {}
        states: list[torch.Tensor] = []

        def mask(ids=(), ranges=()) -> int:
            m = torch.zeros(rows, dtype=torch.bool)
            for lo, hi in ranges:
                m[lo:hi] = True
            for i in ids:
                m[i] = True
            states.append(m)
            return len(states) - 1

        states.append(text_mask(layout, rows, allowed_starts))  # state 0: text

        # per modality: a state per codebook layer without / with the end token, and end-only
        self.table: list[dict] = []
        for m in layout.modalities.values():
            s, cs = m.spec, m.spec.codebook_size
            layers = [(m.first_id + k * cs, m.first_id + (k + 1) * cs) for k in range(s.num_codebooks)]
            self.table.append({
                "layer": [mask(ranges=[r]) for r in layers],
                "layer_or_end": [mask(ids=[m.end_id], ranges=[r]) for r in layers],
                "end": mask(ids=[m.end_id]),
                "K": s.num_codebooks,
                "fixed": s.tokens_per_item,
                "max": s.max_span_tokens(max_seconds.get(s.name)),
            })
        self.masks = torch.stack(states)  # (S, V)
        # the table as one (M, 6) tensor, so that a whole batch is looked up with one gather:
        # K, fixed length (-1: open), longest span, first layer state, first layer-or-end state, end state
        self.packed = torch.tensor([[t["K"], -1 if t["fixed"] is None else t["fixed"],
                                     1 << 40 if t["max"] is None else t["max"],
                                     t["layer"][0], t["layer_or_end"][0], t["end"]] for t in self.table],
                                   dtype=torch.long).reshape(-1, 6)

        # Shortest complete span per modality (start + codes + end), to know whether one still fits.
        self.min_span = torch.tensor([2 + (t["fixed"] or t["K"]) for t in self.table])
        self.start_ids = torch.tensor([m.start_id for m in layout.modalities.values()])
        self.budget_end: torch.Tensor | None = None

    @cached_property
    def tracker(self) -> SpanTracker:  # only the logits-processor calls read states off the ids
        return SpanTracker(self.layout)

    def set_budget(self, budget_end: torch.Tensor | None) -> None:
        """(B,) sequence length at which each row's token budget runs out (None: unlimited). Spans are
        then closed on a whole frame before the budget ends, and none opens that could not close."""
        self.budget_end = budget_end

    def _remaining(self, input_ids: torch.Tensor) -> torch.Tensor | None:
        if self.budget_end is None:
            return None
        end = self.budget_end.to(input_ids.device)
        if input_ids.shape[0] != end.shape[0]:  # beam search: each row's beams are adjacent
            end = end.repeat_interleave(input_ids.shape[0] // end.shape[0])
        return end - input_ids.shape[1]  # tokens still allowed, this one included

    def state_index(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.state_index_of(self.tracker.state(input_ids), self._remaining(input_ids))

    def state_index_of(self, st: SpanState, remaining: torch.Tensor | None) -> torch.Tensor:
        """(B,) row of `masks` for each row's span state; `remaining`: (B,) tokens still allowed."""
        if not self.table:
            return torch.zeros_like(st.modality)
        m = st.modality.clamp(min=0)
        K, fixed, cap, layer_base, layer_or_end_base, end = _on(self.packed, m.device)[m].unbind(1)
        pos = st.pos
        layer = pos % K
        layer_state = layer_base + layer
        fixed_idx = torch.where(pos < fixed, layer_state, end)
        can_end = (layer == 0) & (pos > 0)
        open_idx = torch.where(can_end, layer_or_end_base + layer, layer_state)
        if remaining is not None:  # leave room for the end token, on a whole frame
            cap = torch.minimum(cap, (pos + remaining - 1) // K * K)
        open_idx = torch.where((pos >= cap) & (pos > 0), end, open_idx)
        idx = torch.where(fixed >= 0, fixed_idx, open_idx)
        return torch.where(st.modality >= 0, idx, 0)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return self.apply(scores, self.tracker.state(input_ids), self._remaining(input_ids))

    def apply(self, scores: torch.Tensor, st: SpanState, remaining: torch.Tensor | None,
              text_allowed: torch.Tensor | None = None) -> torch.Tensor:
        """Mask `scores` (B, V) given each row's span state and remaining budget (B,) or None."""
        allowed = self.allowed(st, remaining, text_allowed, device=scores.device)
        return scores.masked_fill(~allowed[:, : scores.shape[1]], float("-inf"))

    def allowed(self, st: SpanState, remaining: torch.Tensor | None, text_allowed: torch.Tensor | None = None,
                *, device=None) -> torch.Tensor:
        """(B, V) bool: the tokens each row may produce next. It depends on the state only, not on
        the logits, so a decoder can skip the rest of the output layer. `text_allowed` (B, V):
        each row's own allowed tokens in text (rows that may open different spans), instead of
        this constraint's `allowed_starts`."""
        device = device or st.modality.device
        idx = self.state_index_of(st, remaining)
        allowed = _on(self.masks, device)[idx]  # (B, V)
        if text_allowed is not None:
            allowed = torch.where((idx == 0)[:, None], _on(text_allowed, device), allowed)
        if remaining is not None:  # no span may open that cannot be completed within the budget
            starts = _on(self.start_ids, device)
            too_long = remaining[:, None] < _on(self.min_span, device)[None, :]  # (B, M)
            allowed[:, starts] = allowed[:, starts] & ~too_long
        return allowed


def text_mask(layout: VocabLayout, rows: int, allowed_starts: list[str] | None = None) -> torch.Tensor:
    """(rows,) bool: the tokens text may continue with: text tokens and the starts of the spans
    `allowed_starts` (None: all); never codes, end tokens or padding rows."""
    text = torch.zeros(rows, dtype=torch.bool)
    text[: layout.vocab_size] = layout.kind_table() == 0
    for name, m in layout.modalities.items():
        if allowed_starts is None or name in allowed_starts:
            text[m.start_id] = True
    return text


def _on(t: torch.Tensor, device) -> torch.Tensor:
    return t if t.device == torch.device(device) else t.to(device)


class ModalitySampler:
    """Applies the sampling settings of whatever each row is producing (text or a span's modality):
    repetition penalty within the span, temperature, top-k, top-p, or greedy (keep only the argmax).
    Rows of greedy modalities stay deterministic even when `generate` samples. Each setting is a
    (M+1,) tensor indexed by each row's mode, so a mixed batch is processed in one pass."""

    def __init__(self, layout: VocabLayout, decoding: DecodingConfig):
        self.layout = layout
        self.configs: list[SamplingConfig] = [decoding.text] + [decoding.for_modality(n) for n in layout.names]
        c = self.configs
        self.greedy = torch.tensor([not x.do_sample for x in c])
        self.temperature = torch.tensor([x.temperature for x in c], dtype=torch.float32)
        self.top_k = torch.tensor([x.top_k for x in c])
        self.top_p = torch.tensor([x.top_p for x in c], dtype=torch.float32)
        self.penalty = torch.tensor([1.0] + [x.repetition_penalty for x in c[1:]], dtype=torch.float32)
        self.uses_penalty = bool((self.penalty != 1.0).any())

    @cached_property
    def tracker(self) -> SpanTracker:  # only the logits-processor calls read states off the ids
        return SpanTracker(self.layout)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        st = self.tracker.state(input_ids)
        seen = span_tokens_seen(input_ids, st.start, scores.shape[1]) if self.uses_penalty else None
        return self.apply(scores, st.modality + 1, seen)

    def apply(self, scores: torch.Tensor, mode: torch.Tensor, seen: torch.Tensor | None) -> torch.Tensor:
        """`scores` (B, V); `mode` (B,) 0 for text, m+1 inside a span of modality m; `seen` (B, V):
        tokens already produced inside the current span (None: no penalty configured)."""
        dev = scores.device
        if seen is not None:
            pen = self.penalty.to(dev)[mode][:, None]  # (B, 1); 1.0 in text
            hit = seen[:, : scores.shape[1]] & (pen != 1.0)
            scores = torch.where(hit, torch.where(scores > 0, scores / pen, scores * pen), scores)
        return _warp_rows(scores, self.greedy.to(dev)[mode], self.temperature.to(dev)[mode],
                          self.top_k.to(dev)[mode], self.top_p.to(dev)[mode])


def span_tokens_seen(ids: torch.Tensor, start: torch.Tensor, vocab: int) -> torch.Tensor:
    """(R, V) bool: the tokens of `ids` (R, T) after each row's span start (none where start is -1,
    i.e. in text): the rest of the conversation does not count for the repetition penalty."""
    positions = torch.arange(ids.shape[1], device=ids.device)
    in_span = (positions[None, :] > start[:, None]) & (start[:, None] >= 0)  # (R, T)
    seen = torch.zeros(ids.shape[0], vocab + 1, dtype=torch.bool, device=ids.device)
    seen.scatter_(1, torch.where(in_span, ids.clamp(max=vocab - 1), vocab), True)  # outside: extra column
    return seen[:, :-1]


def _warp_rows(scores: torch.Tensor, greedy: torch.Tensor, temperature: torch.Tensor, top_k: torch.Tensor,
               top_p: torch.Tensor) -> torch.Tensor:
    """Per-row temperature, top-k, top-p; greedy rows keep only their argmax. Each rule touches only
    the rows that set it (a top-p of 1.0 is off, not a cumulative sum compared with 1.0)."""
    neg_inf = float("-inf")
    if bool(greedy.all()):
        keep = scores.argmax(dim=-1, keepdim=True)
        return torch.full_like(scores, neg_inf).scatter(1, keep, scores.gather(1, keep))
    out = scores
    if bool((temperature != 1.0).any()):
        out = out / temperature[:, None]
    k_rows = top_k > 0
    if bool(k_rows.any()):
        k = top_k.clamp(1, out.shape[-1])
        kmax = int(k.max())
        kth = out.topk(kmax, dim=-1).values.gather(1, (k - 1)[:, None])  # (B, 1)
        out = torch.where(k_rows[:, None] & (out < kth), neg_inf, out)
    p_rows = top_p < 1.0
    if bool(p_rows.any()):
        sorted_scores, order = out.sort(dim=-1, descending=True)
        probs = sorted_scores.softmax(dim=-1)
        # drop a token once the mass before it already reaches top_p (the best token always stays)
        drop_sorted = (probs.cumsum(dim=-1) - probs) >= top_p[:, None]
        drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
        out = torch.where(p_rows[:, None] & drop, neg_inf, out)
    if bool(greedy.any()):
        keep = scores.argmax(dim=-1, keepdim=True)
        only = torch.full_like(scores, neg_inf).scatter(1, keep, scores.gather(1, keep))
        out = torch.where(greedy[:, None], only, out)
    return out
