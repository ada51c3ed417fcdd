"""The decoding engine: a running batch of independent rows over one key/value cache.

    submit ──> waiting ──admit (prefill the uncached part of the prompt)──> active rows ──> finished
                                                                             │  ^
                                                   one decode step: ids ─────┘  │ one token per row
                                                   (B,) -> allowed tokens (SpanConstraint) -> logits ->
                                                   ModalitySampler -> pick -> on_token callbacks

Rows start and stop independently: a request joins the running batch at the next step, a row
leaves as soon as it produces a stop token or reaches its token budget. A request may carry a
`KVPrefix` (the cache of an earlier sequence, e.g. the chat history or the previous phase of the
same reply): only the tokens after the common prefix are computed.

The engine sees only token ids. The processors keep their semantics (processors.py) but the engine
keeps each row's span state as tensors instead of rescanning the ids: a step moves every position on
by one, and the state is advanced from the tokens only when a row opens or closes a span. What the
constraint allows is looked up per combination of the rows' keys, planned PLAN_STEPS steps ahead:

    step t:   keys (B,) = plan[t]  ->  (columns, banned) cached per keys  ->  logits over columns only

These tensors live on the CPU (a few per row); only the logits of the allowed tokens come back from
the model's device each step.

Seeded sampling draws like `model.generate`: requests submitted together form a cohort, and each
step draws one (cohort size, V) block of exponential noise per live cohort, in submission order, on
the model's device (with that device's generator, as generate draws); a row's token is
argmax(probs / noise), which is what `torch.multinomial(probs, 1)` computes.
So a cohort run alone gives the ids `model.generate` gives for that batch with the same seed.

Classifier-free guidance: a request may name an unconditional prompt (`Request.guide`, e.g. the
prompt without the user's text). It then decodes as two rows, the request's and a shadow one after the
unconditional prompt, given the same token each step. Inside a span of a modality whose
`guidance_scale` s is not 1, the request's scores become u + s * (c - u) over the log-probabilities of
the allowed tokens (c its own, u the shadow's), before the sampling settings apply, as
transformers' `UnbatchedClassifierFreeGuidanceLogitsProcessor` computes them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import Callable

import torch

from anygpt.generate.config import DecodingConfig
from anygpt.generate.decoder import Decoder, KVPrefix, make_decoder
from anygpt.generate.processors import (
    ModalitySampler,
    SpanConstraint,
    SpanState,
    SpanTracker,
    span_tokens_seen,
    text_mask,
)
from anygpt.layout import VocabLayout

# `model.generate` fills an unset top_k with transformers' global default and, whenever it samples,
# appends a top-k warper after the processors. The former path (reference.py) sampled that way, so
# the engine does too, to give the same ids: every sampled token is drawn from at most 50 tokens.
GENERATE_DEFAULT_TOP_K = 50
# The output layer is computed only for the tokens some row may produce, when they are at most this
# share of the vocabulary (in a span, one codebook; in text, the text tokens and span starts).
COLUMNS_FRACTION = 0.5
# Combinations of the rows' constraint states whose allowed tokens are kept (a batch in lockstep
# cycles through a handful: one per codebook layer, with or without the end token).
ALLOWED_CACHE = 256
# The rows' constraint keys are computed for this many steps ahead in one batched call: inside a
# span or a stretch of text they follow from the position and the budget alone, until a row opens
# or closes a span, or rows join or leave (then the plan is made again).
PLAN_STEPS = 16


@dataclass
class Request:
    prompt: list[int]
    allowed_starts: tuple[str, ...] | None = None  # modalities the reply may open; None: any
    max_new_tokens: int | None = None  # the row leaves after this many tokens; None: the decoding's
    span_budget: int | None = None  # tokens the span constraint fits spans into; None: max_new_tokens
    stop_ids: tuple[int, ...] | None = None  # tokens that end the row; None: the engine's
    prefix: KVPrefix | None = None  # cache of an earlier sequence that shares a prefix with `prompt`
    keep_cache: bool = False  # export the row's cache when it finishes (Handle.cache)
    on_token: Callable[[int], None] | None = None  # called with each new token as it is chosen
    guide: list[int] | None = None  # unconditional prompt for classifier-free guidance (see above)


@dataclass
class Handle:
    """What a submitted request becomes: its new ids so far, and its cache once finished."""

    request: Request
    ids: list[int] = field(default_factory=list)
    done: bool = False
    cache: KVPrefix | None = None
    cached_prompt: int = 0  # prompt tokens whose cache came from the prefix (not computed)


@dataclass
class _Row:
    handle: Handle
    seq: list[int]  # prompt + generated
    cached: int  # positions of seq in the decoder's cache
    max_new: int
    stops: frozenset
    cohort: "_Cohort"
    index: int  # within the cohort
    state: torch.Tensor | None = None  # decoder output of the prefill, for the first token
    shadow: "_Row | None" = None  # the row decoding the same tokens after the unconditional prompt
    guided: "_Row | None" = None  # for a shadow row: the row it follows


@dataclass
class _Cohort:
    size: int
    live: int


class Engine:
    """Continuous batching over one decoder. `submit` a request (or `submit_batch` several, as one
    cohort), then `step` or `run`; each step gives every active row one token."""

    def __init__(self, model, layout: VocabLayout, decoding: DecodingConfig, *, stop_ids: list[int],
                 max_batch: int = 8, decoder: Decoder | None = None):
        self.layout = layout
        self.decoding = decoding
        self.stop_ids = tuple(stop_ids)
        self.max_batch = max_batch
        self.decoder = decoder or make_decoder(model, rows=max_batch)
        self.vocab = model.get_output_embeddings().weight.shape[0]
        self.noise_device = model.get_output_embeddings().weight.device  # where generate draws its noise
        self.tracker = SpanTracker(layout)
        self.constraint = SpanConstraint(layout, max_seconds=decoding.max_seconds, vocab_rows=self.vocab) \
            if decoding.constrained else None
        self._text_masks: dict = {}  # allowed_starts -> id
        self._text_masks_by_id: list = []  # id -> (V,) allowed tokens in text
        self._bits = None if self.constraint is None else 1 << torch.arange(len(layout.names))  # (M,)
        self._allowed: dict[tuple, tuple] = {}  # the rows' constraint keys -> (columns, banned)
        self._row_masks: dict[int, torch.Tensor] = {}  # one row's key -> (V,) its allowed tokens
        self._columns: dict[bytes, torch.Tensor] = {}  # column sets met so far, one tensor each
        self._plan: deque[tuple] = deque()  # the rows' constraint keys of the next steps
        boundary = self.tracker.boundary
        self._boundary_ids = set(boundary.nonzero()[:, 0].tolist())  # span start and end tokens
        self._last_id = boundary.numel() - 1  # ids beyond the layout read as this one (as in advance)
        self.sampler = ModalitySampler(layout, decoding)
        self.sampling = any(c.do_sample for c in self.sampler.configs)
        # (M+1,) guidance scale by mode (0: text, never guided; m+1: a span of modality m)
        self.guidance = torch.tensor([1.0] + [c.guidance_scale for c in self.sampler.configs[1:]])
        self.guides = bool((self.guidance != 1.0).any())  # whether requests' `guide` prompts are used
        self.waiting: deque[_Row] = deque()
        self.rows: list[_Row] = []
        # per active row, aligned with self.rows and with the decoder's slots
        self.state = SpanState(*(torch.empty(0, dtype=torch.long) for _ in range(3)))
        self.remaining = torch.empty(0, dtype=torch.long)  # tokens the constraint may still plan for
        self.text_id = torch.empty(0, dtype=torch.long)  # which allowed tokens in text (_text_masks)
        self.lengths = torch.empty(0, dtype=torch.long)  # positions in the decoder's cache
        self.last = torch.empty(0, dtype=torch.long)  # the last token, not yet in the cache
        self.seen = torch.empty(0, self.vocab, dtype=torch.bool)  # tokens seen in the current span
        self.cohorts: list[_Cohort] = []

    # --- requests ---------------------------------------------------------------------------------
    def submit(self, request: Request) -> Handle:
        return self.submit_batch([request])[0]

    def submit_batch(self, requests: list[Request]) -> list[Handle]:
        cohort = _Cohort(len(requests), len(requests))
        self.cohorts.append(cohort)
        handles = []
        for i, req in enumerate(requests):
            h = Handle(req)
            max_new = self.decoding.max_new_tokens if req.max_new_tokens is None else req.max_new_tokens
            stops = frozenset(self.stop_ids if req.stop_ids is None else req.stop_ids)
            row = _Row(h, list(req.prompt), 0, max_new, stops, cohort, i)
            if max_new <= 0:
                self._finish(row)
            else:
                self.waiting.append(row)
                if req.guide is not None and self.guides:
                    if self.max_batch < 2:
                        raise ValueError("a guided request decodes as two rows: max_batch must be at least 2")
                    shadow = replace(req, prompt=list(req.guide), prefix=None, keep_cache=False, on_token=None,
                                     guide=None)
                    row.shadow = _Row(Handle(shadow), list(req.guide), 0, max_new, stops, cohort, i, guided=row)
                    self.waiting.append(row.shadow)
            handles.append(h)
        return handles

    def cache_prompt(self, ids: list[int], prefix: KVPrefix | None = None) -> KVPrefix | None:
        """The cache of `ids` but their last token, computed in a free slot (reusing `prefix`
        where it matches), for a phase that runs outside the engine (a beam search starts from it
        instead of computing the prompt once per beam). None when no slot is free."""
        slot = len(self.rows)
        if slot >= self.max_batch or len(ids) < 2:
            return None
        start = 0
        if prefix is not None:
            start = common_prefix(prefix.ids, ids, limit=len(ids) - 1)
            if start:
                self.decoder.load(slot, prefix, start)
        if start < len(ids) - 1:
            self.decoder.prefill(slot, ids[start:-1], start)
        return self.decoder.export(slot, ids[:-1])

    @property
    def busy(self) -> bool:
        return bool(self.rows or self.waiting)

    def run(self) -> None:
        while self.busy:
            self.step()

    # --- one step ---------------------------------------------------------------------------------
    @torch.inference_mode()  # no autograd bookkeeping on any tensor op of the step
    def step(self) -> None:
        old = len(self.rows)
        joining = []
        while self.waiting and old + len(joining) + (2 if self.waiting[0].shadow else 1) <= self.max_batch:
            row = self.waiting.popleft()
            joining += [row, self.waiting.popleft()] if row.shadow else [row]  # a shadow joins with its row
        if joining:
            self._admit(joining)
        if not self.rows:
            return
        parts = []
        if old:  # rows already running: their last token goes through the model
            parts.append(self.decoder.decode(self.last[:old], self.lengths[:old]))
            self.lengths[:old] += 1
            for r in self.rows[:old]:
                r.cached += 1
        parts += [r.state[None] for r in self.rows[old:]]
        for r in self.rows[old:]:
            r.state = None
        states = torch.cat(parts) if len(parts) > 1 else parts[0]  # (B, C)
        columns, banned = self._allowed_tokens()
        logits = self.decoder.logits(states, columns).cpu()  # (B, V) or (B, len(columns)), float32
        pairs = self._guided_pairs() if self.guides else None
        if pairs is not None:
            logits = self._guide(logits, banned, *pairs)
        chosen = self._choose(logits, banned, columns)
        if pairs is not None:
            chosen[pairs[1]] = chosen[pairs[0]]  # a shadow row takes its row's token
        self._append(chosen)

    def _guided_pairs(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The slots of the rows that have a shadow row, and of their shadows; None when none has."""
        slot = {id(r): i for i, r in enumerate(self.rows)}
        pairs = [(i, slot[id(r.shadow)]) for i, r in enumerate(self.rows) if r.shadow is not None]
        return tuple(torch.tensor(x) for x in zip(*pairs)) if pairs else None

    def _guide(self, scores: torch.Tensor, banned: torch.Tensor | None, rows: torch.Tensor,
               shadows: torch.Tensor) -> torch.Tensor:
        """Classifier-free guidance for the guided rows in a span of a guided modality: their (V')
        scores become u + s * (c - u) over log-probabilities of the allowed tokens."""
        scale = self.guidance[self.state.modality[rows] + 1]
        on = scale != 1.0
        if not bool(on.any()):
            return scores
        rows, shadows, scale = rows[on], shadows[on], scale[on, None]

        def log_probs(slots: torch.Tensor) -> torch.Tensor:  # over the allowed tokens of those rows only
            x = scores[slots] if banned is None else scores[slots].masked_fill(banned[slots], float("-inf"))
            return torch.log_softmax(x, dim=-1)

        cond, uncond = log_probs(rows), log_probs(shadows)
        scores = scores.clone()
        scores[rows] = torch.where(torch.isfinite(cond), uncond + scale * (cond - uncond), float("-inf"))
        return scores

    def _allowed_tokens(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The tokens some row may produce (None: all) and, over those, each row's banned ones (B, V')
        (None: none). What the span constraint allows depends only on each row's constraint state,
        which text mask the row uses in text and which span starts still fit its budget, so it is
        computed once per combination of those keys:

            row key = state index (> 0 in a span)   or   -1 - (text_id * 2**M + starts that no longer fit)
        """
        if self.constraint is None:
            return None, None
        if not self._plan:
            self._plan = self._plan_keys(PLAN_STEPS)
        keys = self._plan.popleft()
        hit = self._allowed.get(keys)
        if hit is None:
            if len(self._allowed) >= ALLOWED_CACHE:
                self._allowed.pop(next(iter(self._allowed)))
            hit = self._allowed[keys] = self._columns_and_banned(keys)
        return hit

    def _columns_and_banned(self, keys: tuple) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """`_allowed_tokens` for rows with these keys, from each key's (V,) allowed tokens."""
        allowed = torch.stack([self._row_allowed(k) for k in keys])  # (B, V)
        union = allowed.any(dim=0)
        columns = None
        if int(union.sum()) <= COLUMNS_FRACTION * self.vocab:
            columns = union.nonzero()[:, 0]
            # one tensor per column set, however many key combinations share it: the decoder keeps
            # the output layer's rows gathered per column tensor
            if len(self._columns) >= ALLOWED_CACHE:
                self._columns.pop(next(iter(self._columns)))
            columns = self._columns.setdefault(columns.numpy().tobytes(), columns)
            allowed = allowed[:, columns]
        return columns, None if bool(allowed.all()) else ~allowed

    def _row_allowed(self, key: int) -> torch.Tensor:
        """(V,) the tokens a row with this key may produce: what `SpanConstraint.allowed` gives its
        state (in a span, the state's mask; in text, the row's text mask less the starts of spans
        that no longer fit its budget), kept per key."""
        mask = self._row_masks.get(key)
        if mask is None:
            c = self.constraint
            if key > 0:
                mask = c.masks[key]
            else:
                text_id, late = divmod(-1 - key, 1 << len(self._bits))
                mask = self._text_masks_by_id[text_id].clone()
                mask[c.start_ids[(late & self._bits) != 0]] = False
            self._row_masks[key] = mask
        return mask

    def _plan_keys(self, steps: int) -> deque[tuple]:
        """The rows' keys (see `_allowed_tokens`) for the next `steps` steps, supposing that no row
        opens or closes a span meanwhile: each step moves every position on by one and spends one
        token of every budget. One call over (steps * B) states instead of one per step."""
        c = self.constraint
        ahead = torch.arange(steps)[:, None]  # (S, 1)
        pos = (self.state.pos[None] + ahead).reshape(-1)  # (S * B,)
        remaining = (self.remaining[None] - ahead).reshape(-1)
        modality = self.state.modality.repeat(steps)
        idx = c.state_index_of(SpanState(modality, pos, modality), remaining)  # the start is not read
        too_long = remaining[:, None] < c.min_span[None, :]  # (S * B, M)
        late = (too_long * self._bits).sum(1)
        keys = torch.where(idx > 0, idx, -1 - (self.text_id.repeat(steps) << len(self._bits)) - late)
        return deque(map(tuple, keys.view(steps, -1).tolist()))

    def _choose(self, scores: torch.Tensor, banned: torch.Tensor | None,
                columns: torch.Tensor | None) -> torch.Tensor:
        """Token ids for (B, V') scores over `columns` of the vocabulary (None: all of it)."""
        if banned is not None:
            scores = scores.masked_fill(banned, float("-inf"))
        if not self.sampling and not self.sampler.uses_penalty:
            # greedy everywhere: the sampler would keep only each row's argmax
            picked = scores.argmax(dim=-1)
            return picked if columns is None else columns[picked]
        seen = None
        if self.sampler.uses_penalty:
            seen = self.seen if columns is None else self.seen[:, columns]
        scores = self.sampler.apply(scores, self.state.modality + 1, seen)
        if not self.sampling:
            picked = scores.argmax(dim=-1)
        else:
            k = min(GENERATE_DEFAULT_TOP_K, scores.shape[-1])
            scores = scores.masked_fill(scores < torch.topk(scores, k)[0][..., -1, None], float("-inf"))
            probs = torch.softmax(scores, dim=-1)
            noise = self._noise(self.vocab)  # drawn over the whole vocabulary, as generate draws
            picked = (probs / (noise if columns is None else noise[:, columns])).argmax(dim=-1)
        return picked if columns is None else columns[picked]

    def _noise(self, vocab: int) -> torch.Tensor:
        """(B, V) exponential noise: one block per live cohort, drawn in submission order."""
        blocks = {}
        for c in self.cohorts:
            if c.live and any(r.cohort is c for r in self.rows):
                blocks[id(c)] = torch.empty(c.size, vocab, device=self.noise_device).exponential_(1).cpu()
        return torch.stack([blocks[id(r.cohort)][r.index] for r in self.rows])

    def _append(self, chosen: torch.Tensor) -> None:
        index = self.lengths  # every row's cache now holds its whole sequence: the new token goes there
        tokens = chosen.tolist()
        if any(min(tok, self._last_id) in self._boundary_ids for tok in tokens):
            st = self.tracker.advance(self.state, chosen, index)
            self._plan.clear()
        else:  # no span opened or closed: only the positions move on
            st = SpanState(self.state.modality, self.state.pos + 1, self.state.start)
        if self.sampler.uses_penalty:  # restart at span boundaries, then mark the token inside spans
            boundary = st.start == index
            closed = (self.state.modality >= 0) & (st.modality < 0)
            self.seen[boundary | closed] = False
            inside = (st.modality >= 0) & ~boundary
            self.seen[torch.arange(len(self.rows)), chosen.clamp(max=self.vocab - 1)] |= inside
        self.state = st
        self.remaining = self.remaining - 1
        self.last = chosen
        finished = []
        for i, (r, tok) in enumerate(zip(self.rows, tokens)):
            r.seq.append(tok)
            r.handle.ids.append(tok)
            if r.handle.request.on_token is not None:
                r.handle.request.on_token(tok)
            if tok in r.stops or len(r.handle.ids) >= r.max_new:
                finished.append(i)
        for i in reversed(finished):
            self._leave(i)

    # --- rows joining and leaving -----------------------------------------------------------------
    def _admit(self, rows: list[_Row]) -> None:
        """Rows join the batch: each one's prompt after its cached prefix is computed (all of them in
        one prefill) into the next free slots."""
        self._plan.clear()
        jobs = []
        for row in rows:
            slot = len(self.rows)
            req = row.handle.request
            start = 0
            if req.prefix is not None:
                start = common_prefix(req.prefix.ids, row.seq, limit=len(row.seq) - 1)
                if start:
                    self.decoder.load(slot, req.prefix, start)
            row.handle.cached_prompt = start
            jobs.append((slot, row.seq[start:], start))
            row.cached = len(row.seq)
            self.rows.append(row)
            ids = torch.tensor([row.seq])
            st = self.tracker.state(ids)
            self.state = SpanState(*(torch.cat([a, b]) for a, b in
                                     zip((self.state.modality, self.state.pos, self.state.start),
                                         (st.modality, st.pos, st.start))))
            budget = row.max_new if req.span_budget is None else req.span_budget
            self.remaining = torch.cat([self.remaining, torch.tensor([budget])])
            self.text_id = torch.cat([self.text_id, torch.tensor([self._text_allowed(req.allowed_starts)])])
            self.lengths = torch.cat([self.lengths, torch.tensor([row.cached])])
            self.last = torch.cat([self.last, torch.tensor([row.seq[-1]])])
            self.seen = torch.cat([self.seen, span_tokens_seen(ids, st.start, self.vocab)])
        for row, state in zip(rows, self.decoder.prefill_rows(jobs)):
            row.state = state

    def _text_allowed(self, allowed_starts) -> int:
        """The id of the text mask of rows that may open the spans `allowed_starts` (None: any)."""
        key = None if allowed_starts is None else tuple(allowed_starts)
        if key not in self._text_masks:
            mask = None if self.constraint is None else text_mask(self.layout, self.vocab, key)
            self._text_masks[key] = len(self._text_masks)
            self._text_masks_by_id.append(mask)
        return self._text_masks[key]

    def _leave(self, i: int) -> None:
        self._plan.clear()
        last = len(self.rows) - 1
        row = self.rows[i]
        self._finish(row, slot=i)
        if i != last:  # the last row moves into the freed slot
            self.decoder.move(last, i, self.rows[last].cached)
            self.rows[i] = self.rows[last]
            for t in (self.state.modality, self.state.pos, self.state.start, self.remaining,
                      self.text_id, self.lengths, self.last, self.seen):
                t[i] = t[last]
        self.rows.pop()
        keep = slice(0, last)
        self.state = SpanState(self.state.modality[keep], self.state.pos[keep], self.state.start[keep])
        self.remaining, self.text_id, self.seen = self.remaining[keep], self.text_id[keep], self.seen[keep]
        self.lengths, self.last = self.lengths[keep], self.last[keep]

    def _finish(self, row: _Row, slot: int | None = None) -> None:
        h = row.handle
        h.done = True
        if row.guided is not None:  # a shadow row: not its cohort's, nothing to hand back
            return
        row.cohort.live -= 1
        if h.request.keep_cache and slot is not None:
            h.cache = self.decoder.export(slot, row.seq[: row.cached])
        elif h.request.keep_cache:
            h.cache = h.request.prefix
        if row.cohort.live == 0:
            self.cohorts.remove(row.cohort)


def common_prefix(a: list[int], b: list[int], *, limit: int) -> int:
    n = min(len(a), len(b), limit)
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
