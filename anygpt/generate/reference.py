"""The former generation path, kept as the reference the engine is tested and measured against:
every phase is one `model.generate` call over the whole (left-padded) sequences, with the
processors of processors.py as HF logits processors.

    text decoded by sampling/greedy:  one call; ModalitySampler switches settings per row and step
    text decoded by beam search:      text phase  = beam search until a stop token or a span start
                                      span phase  = sampling with the span's settings until its end
                                      ... alternating, each row on its own, until it stops

Each phase call re-reads the prompt (no cache crosses phases or turns). `generate_ids` in engine.py
gives the same ids for the same settings and seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from anygpt.generate.config import DecodingConfig
from anygpt.generate.engine import GenerationRequest
from anygpt.generate.processors import ModalitySampler, SpanConstraint, SpanTracker
from anygpt.layout import VocabLayout


def generate_ids_reference(model, layout: VocabLayout, requests: list[GenerationRequest],
                           decoding: DecodingConfig, *, stop_ids: list[int], pad_id: int) -> list[list[int]]:
    """New token ids for each request (the stop token included when one was produced)."""
    if decoding.seed is not None:
        torch.manual_seed(decoding.seed)
    rows = [_Row(list(r.prompt), r.allowed_starts) for r in requests]
    tracker = SpanTracker(layout)
    beam_text = decoding.text.num_beams > 1
    start_ids = [m.start_id for m in layout.modalities.values()]
    end_ids = [m.end_id for m in layout.modalities.values()]
    vocab_rows = model.get_output_embeddings().weight.shape[0]

    while True:
        active = [r for r in rows if not r.done and r.generated < decoding.max_new_tokens]
        if not active:
            break
        if not beam_text:
            groups = [(active, False, stop_ids)]
        else:
            open_ = [_in_span(tracker, r) for r in active]
            groups = [
                ([r for r, o in zip(active, open_) if not o], True, stop_ids + start_ids),
                ([r for r, o in zip(active, open_) if o], False, stop_ids + end_ids),
            ]
        for group, beams, eos in groups:
            # rows that share their allowed span starts share one constraint and one call; ordered
            # (not a set) so that seeded sampling draws in the same order in every process
            for starts in dict.fromkeys(r.allowed_starts for r in group):
                batch = [r for r in group if r.allowed_starts == starts]
                constraint = None
                if decoding.constrained:
                    constraint = SpanConstraint(layout, max_seconds=decoding.max_seconds,
                                                allowed_starts=None if starts is None else list(starts),
                                                vocab_rows=vocab_rows)
                _run_phase(model, layout, batch, decoding, beams, eos, stop_ids, pad_id, constraint)
    return [r.ids[len(r.ids) - r.generated:] for r in rows]


@dataclass
class _Row:
    ids: list[int]
    allowed_starts: tuple[str, ...] | None
    generated: int = 0
    done: bool = False


def _in_span(tracker: SpanTracker, row: _Row) -> bool:
    return bool(tracker.state(torch.tensor([row.ids])).modality[0] >= 0)


def _run_phase(model, layout, rows: list[_Row], decoding: DecodingConfig, beams: bool, eos: list[int],
               stop_ids: list[int], pad_id: int, constraint: SpanConstraint | None) -> None:
    from transformers import GenerationConfig, LogitsProcessorList

    device = model.device
    width = max(len(r.ids) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):  # left padding
        input_ids[i, width - len(r.ids):] = torch.tensor(r.ids)
        mask[i, width - len(r.ids):] = 1
    budget = max(decoding.max_new_tokens - r.generated for r in rows)

    processors = [constraint] if constraint is not None else []
    if constraint is not None:
        constraint.set_budget(torch.tensor([width + decoding.max_new_tokens - r.generated for r in rows]))
    text = decoding.text
    if beams:  # HF's own beam search (or beam sampling) with the text settings
        sampling = text.do_sample
        settings = dict(num_beams=text.num_beams, do_sample=sampling, early_stopping=True,
                        temperature=text.temperature if sampling else None,
                        top_k=(text.top_k or None) if sampling else None,
                        top_p=text.top_p if sampling and text.top_p < 1 else None,
                        repetition_penalty=text.repetition_penalty if text.repetition_penalty != 1 else None)
    else:
        sampler = ModalitySampler(layout, decoding)
        processors.append(sampler)
        settings = dict(num_beams=1, do_sample=any(c.do_sample for c in sampler.configs),
                        top_k=None, top_p=None, temperature=None)
    config = GenerationConfig(max_new_tokens=budget, eos_token_id=eos, pad_token_id=pad_id,
                              use_cache=True, **settings)
    with torch.no_grad():
        out = model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                             generation_config=config, logits_processor=LogitsProcessorList(processors))
    new = out[:, width:].tolist()
    ends = set(eos)
    for r, toks in zip(rows, new):
        cut = next((i + 1 for i, t in enumerate(toks) if t in ends), len(toks))
        toks = toks[: min(cut, decoding.max_new_tokens - r.generated)]
        r.ids += toks
        r.generated += len(toks)
        if toks and toks[-1] in stop_ids:
            r.done = True
