"""Batched, modality-aware generation over any Hugging Face causal LM.

Generation runs in phases on the decoding engine (kvengine.py) with the processors of processors.py:

    text decoded by sampling/greedy:  one engine cohort; ModalitySampler switches settings per row and step
    text decoded by beam search:      text phase  = beam search until a stop token or a span start
                                      span phase  = an engine cohort with the span's settings until its end
                                      ... alternating, each row on its own, until it stops

The key/value cache crosses phases and chat turns: each engine phase starts from the cache the row
ended its previous engine phase with (`GenerationRequest.prefix` for a chat history), so only new
tokens are computed. Beam phases start from that cache too: our beam search on the Llama decoder
(beams.py; transformers' ids), or `model.generate`'s beam search for other models. Beam sampling
alone computes its prompt again (see `_hf_beam_phase`).
Ids are those of the former path (every phase a `model.generate` call) for the same settings and
seed: a cohort samples as `generate` samples its batch. The engine sees only token ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from anygpt.generate import beams
from anygpt.generate.config import DecodingConfig
from anygpt.generate.decoder import Decoder, KVPrefix
from anygpt.generate.kvengine import Engine, Request, common_prefix
from anygpt.generate.processors import SpanConstraint, SpanTracker
from anygpt.layout import VocabLayout


@dataclass(frozen=True)
class GenerationRequest:
    prompt: list[int]
    allowed_starts: tuple[str, ...] | None = None  # modalities the reply may open; None: any
    prefix: KVPrefix | None = None  # the cache of an earlier sequence (a chat's history)
    # the prompt that classifier-free guidance contrasts with (e.g. without the user's text); used in
    # spans of modalities whose guidance_scale is not 1 (kvengine.py)
    unconditional: list[int] | None = None


@dataclass
class Generation:
    ids: list[int]  # new token ids (the stop token included when one was produced)
    cache: KVPrefix | None  # cache of a prefix of prompt + ids (to the last engine phase), for a next turn


def generate_ids(model, layout: VocabLayout, requests: list[GenerationRequest], decoding: DecodingConfig,
                 *, stop_ids: list[int], pad_id: int, **kwargs) -> list[list[int]]:
    """New token ids for each request (the stop token included when one was produced)."""
    return [g.ids for g in generate(model, layout, requests, decoding, stop_ids=stop_ids, pad_id=pad_id, **kwargs)]


def generate(model, layout: VocabLayout, requests: list[GenerationRequest], decoding: DecodingConfig,
             *, stop_ids: list[int], pad_id: int, on_token: Callable[[int, int], None] | None = None,
             decoder: Decoder | None = None) -> list[Generation]:
    """Generate for every request; `on_token(request_index, token_id)` streams tokens as they come
    (a beam phase's tokens arrive when the phase ends). `decoder`: reuse one decoder (its cache
    memory) across calls, e.g. over the turns of a chat."""
    if decoding.seed is not None:
        torch.manual_seed(decoding.seed)
    guides = decoding.guided(None)
    rows = [Row(list(r.prompt), r.allowed_starts, cache=r.prefix,
                unconditional=list(r.unconditional) if guides and r.unconditional is not None else None)
            for r in requests]
    vocab_rows = model.get_output_embeddings().weight.shape[0]
    slots = len(rows) + sum(r.unconditional is not None for r in rows)  # a guided row has a shadow row
    engine = Engine(model, layout, decoding, stop_ids=stop_ids, max_batch=max(slots, 1), decoder=decoder)
    index = {id(r): i for i, r in enumerate(rows)}

    def stream(row: Row):
        return None if on_token is None else (lambda tok: on_token(index[id(row)], tok))

    for batch, beam_phase, eos, starts in phase_cohorts(rows, layout, decoding, stop_ids):
        if beam_phase:
            for r in batch:
                cache_for_beams(engine, r)
            constraint = span_constraint(layout, decoding, starts, vocab_rows)
            run_beam_phase(model, batch, decoding, eos, stop_ids, pad_id, constraint, stream)
        else:
            _run_engine_phase(engine, batch, decoding, eos, stop_ids, stream)
    out = []
    for r in rows:
        cache = r.cache if r.cache is not None and r.cache.length > 0 else None
        out.append(Generation(r.ids[len(r.ids) - r.generated:], cache))
    return out


@dataclass
class Row:
    """One request's sequence while it is generated."""

    ids: list[int]
    allowed_starts: tuple[str, ...] | None
    generated: int = 0
    done: bool = False
    cache: KVPrefix | None = None  # the cache of a prefix of ids, from the last engine phase
    unconditional: list[int] | None = None  # the request's unconditional prompt (guidance)

    def guide(self) -> list[int] | None:
        """The unconditional prompt followed by the tokens generated so far."""
        return None if self.unconditional is None else self.unconditional + self.ids[len(self.ids) - self.generated:]


def phase_cohorts(rows: list[Row], layout: VocabLayout, decoding: DecodingConfig, stop_ids: list[int]):
    """The phases of a generation, until every row is done or out of budget: yields (cohort, beams,
    phase end ids, allowed span starts) for each group of rows decoded together in one phase. With
    beam-searched text, rows in text run a beam phase until a stop or a span start, rows in a span a
    sampled phase until its end; otherwise one sampled phase runs to the stop."""
    beam_text = decoding.text.num_beams > 1
    tracker = SpanTracker(layout) if beam_text else None
    start_ids = [m.start_id for m in layout.modalities.values()]
    end_ids = [m.end_id for m in layout.modalities.values()]
    while True:
        active = [r for r in rows if not r.done and r.generated < decoding.max_new_tokens]
        if not active:
            return
        if not beam_text:
            groups = [(active, False, stop_ids)]
        else:
            open_ = [in_span(tracker, r) for r in active]
            groups = [
                ([r for r, o in zip(active, open_) if not o], True, stop_ids + start_ids),
                ([r for r, o in zip(active, open_) if o], False, stop_ids + end_ids),
            ]
        for group, beam_phase, eos in groups:
            # rows that share their allowed span starts share one constraint and one cohort; ordered
            # (not a set) so that seeded sampling draws in the same order in every process
            for starts in dict.fromkeys(r.allowed_starts for r in group):
                yield [r for r in group if r.allowed_starts == starts], beam_phase, eos, starts


def span_constraint(layout: VocabLayout, decoding: DecodingConfig, starts, vocab_rows: int) -> SpanConstraint | None:
    """The span constraint of a cohort whose rows may open the spans `starts` (None: any)."""
    if not decoding.constrained:
        return None
    return SpanConstraint(layout, max_seconds=decoding.max_seconds,
                          allowed_starts=None if starts is None else list(starts), vocab_rows=vocab_rows)


def _run_engine_phase(engine: Engine, rows: list[Row], decoding: DecodingConfig, eos: list[int],
                      stop_ids: list[int], stream) -> None:
    """One cohort on the engine until every row meets `eos` or the phase budget, as one
    `model.generate` call over the batch would: rows share the budget of the row with the most
    left (each row's own budget bounds its spans and its output)."""
    budget = max(decoding.max_new_tokens - r.generated for r in rows)
    handles = engine.submit_batch([
        Request(r.ids, r.allowed_starts, max_new_tokens=budget, span_budget=decoding.max_new_tokens - r.generated,
                stop_ids=tuple(eos), prefix=r.cache, keep_cache=True, on_token=stream(r), guide=r.guide())
        for r in rows])
    engine.run()
    for r, h in zip(rows, handles):
        r.cache = h.cache
        extend_row(r, h.ids, decoding, eos, stop_ids)


def cache_for_beams(engine: Engine, r: Row) -> None:
    """Give a row about to run a beam phase the cache of its sequence (but the last token), so that
    the beam search does not compute it once per beam; kept when the row's cache covers it."""
    if r.cache is None or r.cache.length < len(r.ids) - 1:
        r.cache = engine.cache_prompt(r.ids, r.cache) or r.cache


def extend_row(r: Row, toks: list[int], decoding: DecodingConfig, eos: list[int], stop_ids: list[int]) -> None:
    ends = set(eos)
    cut = next((i + 1 for i, t in enumerate(toks) if t in ends), len(toks))
    toks = toks[: min(cut, decoding.max_new_tokens - r.generated)]
    r.ids += toks
    r.generated += len(toks)
    if toks and toks[-1] in stop_ids:
        r.done = True


def _beam_cache(model, rows: list[Row], width: int, num_beams: int):
    """HF's cache for the first C columns of the left-padded batch, built from the rows' kept caches
    (tensors of the Llama decoder), each row repeated for its beams; None when there is none.

        row 0   p p p h h h h h h | q q      p: padding (zeros, masked), h: cached, q: computed by HF
        row 1   h h h h h h h h h | h q      C = the shortest cached width over the rows
                                  C
    """
    from transformers import DynamicCache

    if any(r.cache is None or not isinstance(r.cache.state, list) for r in rows):
        return None
    pads = [width - len(r.ids) for r in rows]
    C = min(pad + common_prefix(r.cache.ids, r.ids, limit=len(r.ids) - 1) for pad, r in zip(pads, rows))
    if C <= 0:
        return None
    cache = DynamicCache(config=model.config)
    for layer in range(len(rows[0].cache.state)):
        keys, values = [], []
        for pad, r in zip(pads, rows):
            k, v = r.cache.state[layer]  # (Hkv, T, D)
            kk, vv = k.new_zeros((k.shape[0], C, k.shape[2])), v.new_zeros((v.shape[0], C, v.shape[2]))
            if pad < C:  # a row padded past C has only padding in the first C columns
                kk[:, pad:], vv[:, pad:] = k[:, : C - pad], v[:, : C - pad]
            keys.append(kk)
            values.append(vv)
        cache.update(torch.stack(keys).repeat_interleave(num_beams, 0),
                     torch.stack(values).repeat_interleave(num_beams, 0), layer)
    return cache


def in_span(tracker: SpanTracker, row: Row) -> bool:
    return bool(tracker.state(torch.tensor([row.ids])).modality[0] >= 0)


def left_padded(rows: list[Row], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows' ids, left-padded to the longest: input ids and attention mask, (rows, width) each."""
    width = max(len(r.ids) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        input_ids[i, width - len(r.ids):] = torch.tensor(r.ids)
        mask[i, width - len(r.ids):] = 1
    return input_ids, mask


def generate_inputs(rows: list[Row], decoding: DecodingConfig, pad_id: int, constraint: SpanConstraint | None):
    """What one `model.generate` call over the rows takes: left-padded ids and mask, the phase's token
    budget (the row with the most left), and the processors (the constraint, its budgets set)."""
    input_ids, mask = left_padded(rows, pad_id)
    width = input_ids.shape[1]
    budget = max(decoding.max_new_tokens - r.generated for r in rows)
    processors = [constraint] if constraint is not None else []
    if constraint is not None:
        constraint.set_budget(torch.tensor([width + decoding.max_new_tokens - r.generated for r in rows]))
    return input_ids, mask, budget, processors


def beam_settings(decoding: DecodingConfig) -> dict:
    """HF generate's settings for a beam phase: beam search (or beam sampling) with the text settings."""
    text = decoding.text
    sampling = text.do_sample
    return dict(num_beams=text.num_beams, do_sample=sampling, early_stopping=True,
                temperature=text.temperature if sampling else None,
                top_k=(text.top_k or None) if sampling else None,
                top_p=text.top_p if sampling and text.top_p < 1 else None,
                repetition_penalty=text.repetition_penalty if text.repetition_penalty != 1 else None)


def run_beam_phase(model, rows: list[Row], decoding: DecodingConfig, eos: list[int], stop_ids: list[int],
                    pad_id: int, constraint: SpanConstraint | None, stream, *, search: str = "auto") -> None:
    """Beam search (or beam sampling) with the text settings, from the rows' kept caches: our own
    search on the Llama decoder where it gives transformers' ids (beams.py), else HF's own.
    `search`: "auto", "ours" or "generate" (the benchmark and the parity tests run both)."""
    text = decoding.text
    input_ids, mask, budget, processors = generate_inputs(rows, decoding, pad_id, constraint)
    ours = beams.supports(model, do_sample=text.do_sample, repetition_penalty=text.repetition_penalty)
    if search == "ours" and not ours:
        raise ValueError("our beam search runs greedy beams without a repetition penalty on a Llama only")
    if ours and search != "generate":
        new = beams.beam_search(beams.beam_decoder(model), [r.ids for r in rows], [r.cache for r in rows], input_ids,
                                num_beams=text.num_beams, new_tokens=budget, eos=eos, pad_id=pad_id,
                                processors=processors)
    else:
        new = _hf_beam_phase(model, rows, decoding, eos, pad_id, input_ids, mask, budget, processors)
    for r, toks in zip(rows, new):
        before = r.generated
        extend_row(r, toks, decoding, eos, stop_ids)
        if stream(r) is not None:
            for tok in r.ids[len(r.ids) - (r.generated - before):]:
                stream(r)(tok)


def _hf_beam_phase(model, rows: list[Row], decoding: DecodingConfig, eos: list[int], pad_id: int,
                   input_ids: torch.Tensor, mask: torch.Tensor, budget: int, processors: list) -> list[list[int]]:
    """`model.generate`'s beam search over the left-padded rows: the new ids of each. A beam search
    starts from the rows' kept caches; beam sampling computes the prompt itself, as the former path
    did: it draws from all beams' tokens at once, where a cache kept from decode steps (its last bit
    differs from a prefill's on some CPUs) can move a draw across a boundary (seen with the random
    debug model's flat distributions on an AVX-512 EPYC)."""
    from transformers import GenerationConfig, LogitsProcessorList

    device = model.device
    width = input_ids.shape[1]
    config = GenerationConfig(max_new_tokens=budget, eos_token_id=eos, pad_token_id=pad_id,
                              use_cache=True, **beam_settings(decoding))
    past = None if decoding.text.do_sample else _beam_cache(model, rows, width, decoding.text.num_beams)
    with torch.no_grad():
        out = model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                             generation_config=config, logits_processor=LogitsProcessorList(processors),
                             **({} if past is None else {"past_key_values": past}))
    return out[:, width:].tolist()
