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


class SpanConstraint:
    """Masks every token that would make the sequence an invalid span (see the module docstring).

    `allowed_starts`: modalities the text may open (None: all); `max_seconds`: length caps of
    variable-length spans. Vocabulary rows beyond the layout (padding) are never allowed."""

    def __init__(self, layout: VocabLayout, *, max_seconds: dict | None = None,
                 allowed_starts: list[str] | None = None, vocab_rows: int | None = None):
        self.layout = layout
        self.tracker = SpanTracker(layout)
        rows = vocab_rows or layout.vocab_size
        kinds = layout.kind_table()
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

        text = torch.zeros(rows, dtype=torch.bool)
        text[: layout.vocab_size] = kinds == 0
        for name, m in layout.modalities.items():
            if allowed_starts is None or name in allowed_starts:
                text[m.start_id] = True
        states.append(text)  # state 0: text

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

        # Shortest complete span per modality (start + codes + end), to know whether one still fits.
        self.min_span = torch.tensor([2 + (t["fixed"] or t["K"]) for t in self.table])
        self.start_ids = torch.tensor([m.start_id for m in layout.modalities.values()])
        self.budget_end: torch.Tensor | None = None

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
        st = self.tracker.state(input_ids)
        remaining = self._remaining(input_ids)
        out = torch.zeros_like(st.modality)
        for i, t in enumerate(self.table):
            rows = st.modality == i
            if not rows.any():
                continue
            pos = st.pos[rows]
            layer = pos % t["K"]
            layer_state = torch.tensor(t["layer"], device=pos.device)[layer]
            if t["fixed"] is not None:
                idx = torch.where(pos < t["fixed"], layer_state, t["end"])
            else:
                can_end = (layer == 0) & (pos > 0)
                idx = torch.where(can_end, torch.tensor(t["layer_or_end"], device=pos.device)[layer], layer_state)
                cap = torch.full_like(pos, t["max"] if t["max"] is not None else 1 << 40)
                if remaining is not None:  # leave room for the end token, on a whole frame
                    cap = torch.minimum(cap, (pos + remaining[rows] - 1) // t["K"] * t["K"])
                idx = torch.where((pos >= cap) & (pos > 0), t["end"], idx)
            out[rows] = idx
        return out

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        allowed = self.masks.to(scores.device)[self.state_index(input_ids)]  # (B, V)
        remaining = self._remaining(input_ids)
        if remaining is not None:  # no span may open that cannot be completed within the budget
            too_long = remaining[:, None] < self.min_span.to(scores.device)[None, :]  # (B, M)
            starts = torch.zeros_like(allowed)
            starts[:, self.start_ids.to(scores.device)] = too_long
            allowed &= ~starts
        return scores.masked_fill(~allowed[:, : scores.shape[1]], float("-inf"))


class ModalitySampler:
    """Applies the sampling settings of whatever each row is producing (text or a span's modality):
    repetition penalty within the span, temperature, top-k, top-p, or greedy (keep only the argmax).
    Rows of greedy modalities stay deterministic even when `generate` samples."""

    def __init__(self, layout: VocabLayout, decoding: DecodingConfig):
        self.tracker = SpanTracker(layout)
        self.configs: list[SamplingConfig] = [decoding.text] + [decoding.for_modality(n) for n in layout.names]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        st = self.tracker.state(input_ids)
        mode = st.modality + 1  # 0: text
        scores = scores.clone()
        for m in mode.unique().tolist():
            rows = (mode == m).nonzero()[:, 0]
            cfg = self.configs[m]
            s = scores[rows]
            if cfg.repetition_penalty != 1.0 and m > 0:
                s = _span_repetition_penalty(input_ids[rows], st.start[rows], s, cfg.repetition_penalty)
            scores[rows] = _warp(s, cfg)
        return scores


def _span_repetition_penalty(ids: torch.Tensor, start: torch.Tensor, scores: torch.Tensor,
                             penalty: float) -> torch.Tensor:
    """CTRL-style penalty (divide positive logits, multiply negative ones) on tokens seen after the
    span's start token only: the rest of the conversation does not count."""
    positions = torch.arange(ids.shape[1], device=ids.device)
    in_span = positions[None, :] > start[:, None]  # (R, T)
    seen = torch.zeros(scores.shape[0], scores.shape[1] + 1, dtype=torch.bool, device=ids.device)
    dump = scores.shape[1]  # tokens outside the span are scattered into an extra column
    seen.scatter_(1, torch.where(in_span, ids.clamp(max=dump - 1), dump), True)
    seen = seen[:, :-1]
    penalized = torch.where(scores > 0, scores / penalty, scores * penalty)
    return torch.where(seen, penalized, scores)


def _warp(scores: torch.Tensor, cfg: SamplingConfig) -> torch.Tensor:
    neg_inf = float("-inf")
    if not cfg.do_sample:
        keep = scores.argmax(dim=-1, keepdim=True)
        return torch.full_like(scores, neg_inf).scatter(1, keep, scores.gather(1, keep))
    if cfg.temperature != 1.0:
        scores = scores / cfg.temperature
    if cfg.top_k:
        k = min(cfg.top_k, scores.shape[-1])
        kth = scores.topk(k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, neg_inf)
    if cfg.top_p < 1.0:
        sorted_scores, order = scores.sort(dim=-1, descending=True)
        cum = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        # drop a token once the mass before it already reaches top_p (the best token always stays)
        drop_sorted = (cum - sorted_scores.softmax(dim=-1)) >= cfg.top_p
        drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
        scores = scores.masked_fill(drop, neg_inf)
    return scores
