"""Beam search on the Llama decoder's cache: the ids of transformers' beam search, without transformers.

A beam phase of a reply (engine.py) searches text until a stop token or a span start. This is the
algorithm of `model.generate(num_beams=N, do_sample=False, early_stopping=True)` step for step, on
the same tensors (left-padded sequences for the processors, (rows, beams) scores, top-k over
beams x vocabulary, finished hypotheses kept by length-normalised score), with the forward on the
decoder's slots instead of a DynamicCache:

    slots   row 0: beam 0 .. N-1 | row 1: beam 0 .. N-1 | ...      each slot: one beam's cache
    start   each row's cache (all but its last token) copied into its N slots, then its last
            token decoded in every slot at once: N rows of one token, as generate's cached step
    step    logits -> log_softmax -> processors -> + running scores -> top 2N (or more, one
            extra N per stop id) -> finished / running -> slots gathered in the new beam order
            -> the running beams' last tokens decoded

A row on its own gets the ids of `model.generate` on that row to the bit (the logits are the same
numbers); rows searched together are independent here, where generate's left-padded batch rounds
their prompts slightly differently. Beam sampling and a repetition penalty stay with transformers.
"""

from __future__ import annotations

import weakref

import torch

from anygpt.generate.decoder import LlamaDecoder
from anygpt.generate.kvengine import common_prefix

FINISHED = -1.0e9  # the score transformers gives beams that may not be picked

_decoders: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> its beam decoder


def supports(model, *, do_sample: bool, repetition_penalty: float) -> bool:
    """Whether this search gives `generate`'s ids for these settings and this model."""
    return not do_sample and repetition_penalty == 1 and LlamaDecoder.supports(model)


def beam_decoder(model) -> LlamaDecoder:
    """One decoder per model for beam phases, kept (its cache memory is reused between phases)
    while the model's weights stay the same."""
    decoder = _decoders.get(model)
    if decoder is None or not decoder.current():
        decoder = _decoders[model] = LlamaDecoder(model, rows=1, length=64)
    return decoder


@torch.inference_mode()
def beam_search(decoder: LlamaDecoder, prompts: list[list[int]], caches: list, input_ids: torch.Tensor, *,
                num_beams: int, new_tokens: int, eos: list[int], pad_id: int, processors: list,
                length_penalty: float = 1.0) -> list[list[int]]:
    """Search every prompt; the new ids of each row's best hypothesis, as `generate` returns them
    for the left-padded batch `input_ids` (R, W) of the prompts (cut at the batch's longest, the
    fill id after a stop). `caches`: per row a KVPrefix of a prefix of its prompt, or None. The
    search's tensors live on the decoder's device."""
    R, N = len(prompts), num_beams
    W = input_ids.shape[1]
    max_length = W + new_tokens
    fill = (pad_id or eos[0]) if eos else -1
    dev = decoder.device
    keep = max(2, 1 + len(eos)) * N
    top_mask = (torch.arange(keep, device=dev) < N)
    eos_t = torch.tensor(eos, dtype=torch.long, device=dev)

    running = torch.full((R, N, max_length), fill, dtype=torch.long, device=dev)
    running[:, :, :W] = input_ids.to(dev)[:, None]  # left-padded, as the processors read generate's sequences
    sequences = running.clone()
    running_scores = torch.zeros((R, N), device=dev)
    running_scores[:, 1:] = FINISHED
    scores = torch.full((R, N), FINISHED, device=dev)
    finished = torch.zeros((R, N), dtype=torch.bool, device=dev)
    improvable = torch.ones((R, 1), dtype=torch.bool, device=dev)
    running_idx = torch.full((R, N, max_length - W), -1, dtype=torch.int32, device=dev)
    beam_idx = running_idx.clone()
    offsets = torch.arange(R, device=dev)[:, None] * N

    lengths = torch.tensor([len(p) - 1 for p in prompts], device=dev).repeat_interleave(N)  # cached per slot
    states = _start(decoder, prompts, caches, N, lengths)
    lengths = lengths + 1
    cur = W
    while True:
        log_probs = torch.log_softmax(decoder.logits(states), dim=-1)
        flat = running[:, :, :cur].reshape(R * N, cur)
        for p in processors:
            log_probs = p(flat, log_probs)
        V = log_probs.shape[-1]
        log_probs = (log_probs.view(R, N, V) + running_scores[:, :, None]).reshape(R, -1)

        top_scores, top_index = torch.topk(log_probs, k=keep)
        from_beam = top_index // V
        top_seq = _gather(running, from_beam)
        top_idx = _gather(running_idx, from_beam)
        top_ids = top_index % V
        top_seq[:, :, cur] = top_ids
        top_idx[:, :, cur - W] = (from_beam + offsets).to(top_idx.dtype)
        hits = torch.isin(top_ids, eos_t) | (cur + 1 >= max_length)

        # the best beams that go on
        live = top_scores + hits.to(torch.float32) * FINISHED
        pick = torch.topk(live, k=N)[1]
        running, running_scores, running_idx = _gather(top_seq, pick), _gather(live, pick), _gather(top_idx, pick)

        # the finished hypotheses, kept when better than those found before
        done_now = hits & top_mask[None, :]
        normed = top_scores / ((cur + 1 - W) ** length_penalty)
        normed = normed + torch.all(finished, dim=-1, keepdim=True).to(torch.float32) * FINISHED
        normed = normed + (~improvable).to(torch.float32) * FINISHED
        normed = normed + (~done_now) * FINISHED
        merged = torch.topk(torch.cat((scores, normed), dim=1), k=N)[1]
        sequences = _gather(torch.cat((sequences, top_seq), dim=1), merged)
        scores = _gather(torch.cat((scores, normed), dim=1), merged)
        beam_idx = _gather(torch.cat((beam_idx, top_idx), dim=1), merged)
        finished = _gather(torch.cat((finished, done_now), dim=1), merged)

        order = running_idx[..., cur - W].reshape(-1).long()
        cur += 1
        best_possible = running_scores[:, :1] / ((cur - W) ** length_penalty)
        worst_kept = torch.where(finished, torch.min(scores, dim=1, keepdim=True)[0], FINISHED)
        improvable = improvable & torch.any(best_possible > worst_kept, dim=-1, keepdim=True)
        if not (bool(improvable.any()) and not bool(finished.all()) and not bool(hits.all())):
            break
        decoder.gather(order, int(lengths.max()))
        states = decoder.decode(running[:, :, cur - 1].reshape(-1), lengths)
        lengths = lengths + 1

    longest = int((beam_idx[:, 0] >= 0).sum(dim=1).max())
    return sequences[:, 0, W: W + longest].tolist()


def _start(decoder: LlamaDecoder, prompts, caches, beams: int, lengths: torch.Tensor) -> torch.Tensor:
    """Every slot holds its row's prompt but the last token; that token decoded in all slots: (R*N, C)."""
    decoder.reserve(len(prompts) * beams, int(lengths.max()) + 2)
    fresh = []
    for i, (p, cache) in enumerate(zip(prompts, caches)):
        slot, start = i * beams, 0
        if cache is not None:
            start = common_prefix(cache.ids, p, limit=len(p) - 1)
            if start:
                decoder.load(slot, cache, start)
        if start < len(p) - 1:
            fresh.append((slot, p[start:-1], start))
    if fresh:
        decoder.prefill_rows(fresh)
    dev = decoder.device
    order = torch.arange(len(prompts), device=dev).repeat_interleave(beams) * beams  # each beam from its row's slot
    decoder.gather(order, int(lengths.max()))
    last = torch.tensor([p[-1] for p in prompts], device=dev).repeat_interleave(beams)
    return decoder.decode(last, lengths)


def _gather(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """t[r, index[r, j], ...] for (rows, beams, ...) tensors, as transformers gathers beams."""
    while index.dim() < t.dim():
        index = index.unsqueeze(-1)
    return torch.take_along_dim(t, index, dim=1)
