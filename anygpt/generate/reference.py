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


import torch

from anygpt.generate.config import DecodingConfig
from anygpt.generate.engine import (
    GenerationRequest,
    Row,
    beam_settings,
    extend_row,
    generate_inputs,
    phase_cohorts,
    span_constraint,
)
from anygpt.generate.processors import ModalitySampler, SpanConstraint
from anygpt.layout import VocabLayout


def generate_ids_reference(model, layout: VocabLayout, requests: list[GenerationRequest],
                           decoding: DecodingConfig, *, stop_ids: list[int], pad_id: int) -> list[list[int]]:
    """New token ids for each request (the stop token included when one was produced). Without
    classifier-free guidance, which only the engine does (its tests check it against transformers'
    guidance processor)."""
    if decoding.guided(None) and any(r.unconditional is not None for r in requests):
        raise ValueError("the reference path does not guide: use generate_ids (engine.py)")
    if decoding.seed is not None:
        torch.manual_seed(decoding.seed)
    rows = [Row(list(r.prompt), r.allowed_starts) for r in requests]
    vocab_rows = model.get_output_embeddings().weight.shape[0]
    for batch, beams, eos, starts in phase_cohorts(rows, layout, decoding, stop_ids):
        constraint = span_constraint(layout, decoding, starts, vocab_rows)
        _run_phase(model, layout, batch, decoding, beams, eos, stop_ids, pad_id, constraint)
    return [r.ids[len(r.ids) - r.generated:] for r in rows]


def _run_phase(model, layout, rows: list[Row], decoding: DecodingConfig, beams: bool, eos: list[int],
               stop_ids: list[int], pad_id: int, constraint: SpanConstraint | None) -> None:
    from transformers import GenerationConfig, LogitsProcessorList

    device = model.device
    input_ids, mask, budget, processors = generate_inputs(rows, decoding, pad_id, constraint)
    width = input_ids.shape[1]
    if beams:  # HF's own beam search (or beam sampling) with the text settings
        settings = beam_settings(decoding)
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
    for r, toks in zip(rows, out[:, width:].tolist()):
        extend_row(r, toks, decoding, eos, stop_ids)
