"""Decoding speed: plain `model.generate` against our engine, on the same weights and prompts, in one run.

    python bench/decode.py [--threads 1] [--quick]
    -> one JSON line per measurement, then one summary line:
       {"speedup_bs1": ..., "speedup_bs8": ..., "history_turn_cost_ratio": ..., ...}

Models: the shipped `tiny` bundle, and a random Llama shaped like LLaMA-2-7B (head_dim 128, SwiGLU
ratio 11008/4096, the official AnyGPT layout) scaled down to what a CPU runs in minutes; its size
is printed. Replies: text (64 tokens), a 5 s music reply and a 3 s speech reply (their spans, capped
by `max_seconds`), at batch 1 and 8, greedy.

    hf      `model.generate` with no processors at all, the same number of new tokens per row
    engine  `generate_ids` (the default path of chat and generate): the engine with the span
            constraint and per-modality sampling, rows leaving when done

tokens/s counts new tokens of all rows over wall time. Each pair runs back to back, engine first
then hf (then hf first, and so on), `--repeats` times; figures are medians. speedup_bs1 /
speedup_bs8 are the tiny bundle's median engine / hf ratios over the three replies.

history_turn_cost_ratio: a chat whose first turn carries a 5 s music input (about 1,000 tokens of
history); the cost of the second turn's prompt (time to its first token) with the cache kept from
the first turn, over the same turn with the history computed again (our engine without the cache).
history_turn_whole_ratio: the same for the whole second turn (a 16-token text reply).
history_turn_engine_ratio: the same as history_turn_cost_ratio from the moment the turn's prompt ids
are ready (without encoding the new message's text, which costs the same in both).

--eager-step adds, per reply and batch, the engine with its TorchScript decode step over the same
engine with the eager step (`scripted_over_eager`, tokens/s; the same ids either way).
On a shared machine the timings are noisy: compare ratios measured in the same run only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# LLaMA-2-7B: hidden 4096, 32 layers, 32 heads of 128, SwiGLU 11008. Scaled down: heads of 128 and
# the MLP ratio kept, width and depth cut.
SEVEN_B_SCALED = dict(hidden_size=512, intermediate_size=1376, num_hidden_layers=4, num_attention_heads=4,
                      num_key_value_heads=4, max_position_embeddings=4096)
REPLIES = {"text": None, "music": 5.0, "speech": 3.0}  # seconds of audio per media reply
TEXT_TOKENS = 64


def load_models(quick: bool):
    from anygpt.bundles import load_bundle
    from anygpt.bundles.debug import build_text_tokenizer
    from anygpt.layout import official_layout_config
    from anygpt.model import random_llama

    tiny = load_bundle("tiny")
    tokenizer = build_text_tokenizer()
    dims = dict(SEVEN_B_SCALED, num_hidden_layers=2) if quick else SEVEN_B_SCALED
    model, layout = random_llama(tokenizer, official_layout_config(), seed=0, **dims)
    debug = load_bundle("debug")
    seven = replace(debug, name="7b-shaped", model=model, tokenizer=tokenizer, layout=layout)
    return {"tiny": tiny, "7b-shaped": seven}


def prompts(bundle, reply: str, batch: int) -> list[list[int]]:
    words = ["a red circle", "a calm tune", "hello there", "two blue squares", "a slow song", "good morning",
             "three green dots", "a fast beat"]
    out = []
    for i in range(batch):
        text = f"[Human]: {words[i % len(words)]}<eoh>\n[MMGPT]:"
        ids = bundle.tokenizer(text, add_special_tokens=False)["input_ids"]
        out.append(ids + ([] if reply == "text" else [bundle.layout[reply].start_id]))
    return out


def decoding_for(bundle, reply: str):
    from anygpt.generate.config import PRESETS

    seconds = REPLIES[reply]
    if reply == "text":
        return PRESETS["greedy"].override(max_new_tokens=TEXT_TOKENS)
    spec = bundle.layout[reply].spec
    cap = spec.max_span_tokens(seconds)
    return PRESETS["greedy"].override(max_new_tokens=cap + 1, max_seconds={reply: seconds})


def time_engine(bundle, ids, decoding) -> tuple[float, list[int]]:
    from anygpt.generate.engine import GenerationRequest, generate_ids

    allowed = () if decoding.max_new_tokens == TEXT_TOKENS else None
    reqs = [GenerationRequest(p, allowed) for p in ids]
    t = time.perf_counter()
    out = generate_ids(bundle.model, bundle.layout, reqs, decoding, stop_ids=[], pad_id=bundle.pad_id)
    return time.perf_counter() - t, [len(o) for o in out]


def time_hf(bundle, ids, new_tokens: int) -> float:
    import torch
    from transformers import GenerationConfig

    width = max(map(len, ids))
    dev = bundle.model.device
    x = torch.tensor([[bundle.pad_id] * (width - len(p)) + p for p in ids], device=dev)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in ids], device=dev)
    config = GenerationConfig(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                              pad_token_id=bundle.pad_id, eos_token_id=None)
    t = time.perf_counter()
    with torch.no_grad():
        bundle.model.generate(input_ids=x, attention_mask=mask, generation_config=config)
    _sync(bundle)
    return time.perf_counter() - t


def _sync(bundle) -> None:
    import torch

    if bundle.model.device.type == "cuda":
        torch.cuda.synchronize()


def bench_pair(bundle, reply: str, batch: int, repeats: int) -> dict:
    ids = prompts(bundle, reply, batch)
    decoding = decoding_for(bundle, reply)
    rates_e, rates_h = [], []
    n = 0
    for i in range(repeats):  # alternate which one runs first: the load of a shared machine drifts
        if i % 2 == 1:
            rates_h.append(batch * n / time_hf(bundle, ids, n))
        dt, lens = time_engine(bundle, ids, decoding)
        rates_e.append(sum(lens) / dt)
        n = max(lens)  # hf: every row that many tokens (the engine's rows may leave earlier)
        if i % 2 == 0:
            rates_h.append(batch * n / time_hf(bundle, ids, n))
    e, h = statistics.median(rates_e), statistics.median(rates_h)
    return {"model": bundle.name, "reply": reply, "batch": batch, "new_tokens_per_row": n,
            "engine_tok_s": round(e, 1), "hf_tok_s": round(h, 1), "speedup": round(e / h, 2)}


def scripted_over_eager(bundle, reply: str, batch: int, repeats: int) -> dict:
    """The engine with its scripted decode step against the same engine with the eager one."""
    from unittest import mock

    from anygpt.generate import decoder

    ids = prompts(bundle, reply, batch)
    decoding = decoding_for(bundle, reply)
    rates: dict[bool, list[float]] = {True: [], False: []}
    for i in range(repeats):
        for scripted in ((True, False) if i % 2 == 0 else (False, True)):
            with mock.patch.object(decoder, "_scripted_step", decoder._scripted_step if scripted else lambda: None):
                dt, lens = time_engine(bundle, ids, decoding)
            rates[scripted].append(sum(lens) / dt)
    s, e = statistics.median(rates[True]), statistics.median(rates[False])
    return {"model": bundle.name, "reply": reply, "batch": batch, "scripted_tok_s": round(s, 1),
            "eager_tok_s": round(e, 1), "scripted_over_eager": round(s / e, 3)}


def history_ratio(bundle, repeats: int) -> dict:
    import torch

    from anygpt.chat import ChatSession
    from anygpt.generate.config import PRESETS
    from anygpt.prompts import Media

    spec = bundle.layout["music"].spec
    frames = int(5.0 * spec.frame_rate)
    gen = torch.Generator().manual_seed(0)
    codes = torch.randint(0, spec.codebook_size, (spec.num_codebooks, frames), generator=gen)
    decoding = PRESETS["greedy"].override(max_new_tokens=16)
    kept, again, kept_whole, again_whole, kept_engine, again_engine, encoding = [], [], [], [], [], [], []
    history = 0
    for _ in range(repeats):
        for keep in (True, False):
            session = ChatSession(bundle, decoding=decoding)
            session.ask([Media("music", codes), "What is this music?"], want="text")
            history = len(session.history)
            if not keep:
                session._cache = None  # the history is computed again, as the former path did
            first: list[float] = []
            ready: list[float] = []
            encode = session.prompt_ids
            session.prompt_ids = lambda *a, **k: (encode(*a, **k), ready.append(time.perf_counter()))[0]
            t = time.perf_counter()
            session.ask(["And what instrument plays?"], want="text",
                        on_token=lambda _tok: first.append(time.perf_counter()) if not first else None)
            whole = time.perf_counter() - t
            (kept if keep else again).append(first[0] - t)
            (kept_whole if keep else again_whole).append(whole)
            (kept_engine if keep else again_engine).append(first[0] - ready[0])
            encoding.append(ready[0] - t)
    ratio = statistics.median(k / a for k, a in zip(kept, again))
    whole = statistics.median(k / a for k, a in zip(kept_whole, again_whole))
    engine = statistics.median(k / a for k, a in zip(kept_engine, again_engine))
    return {"history_tokens": history, "turn2_first_token_s_kept": round(statistics.median(kept), 4),
            "turn2_first_token_s_recomputed": round(statistics.median(again), 4),
            "turn2_prompt_encoding_s": round(statistics.median(encoding), 4),
            "history_turn_cost_ratio": round(ratio, 3), "history_turn_whole_ratio": round(whole, 3),
            "history_turn_engine_ratio": round(engine, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest on a shared machine)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="text and speech only, a 2-layer 7B-shaped model")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--models", default="tiny,7b-shaped", help="which of tiny, 7b-shaped")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (a GPU, where one is lent)")
    ap.add_argument("--eager-step", action="store_true", help="also: the scripted decode step over the eager one")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    models = {k: v for k, v in load_models(args.quick).items() if k in args.models.split(",")}
    for b in models.values():
        b.model.to(args.device)
    sizes = {name: sum(p.numel() for p in b.model.parameters()) for name, b in models.items()}
    import transformers

    print(json.dumps({"threads": args.threads, "device": args.device, "params": sizes, "torch": torch.__version__,
                      "transformers": transformers.__version__}), flush=True)
    results = []
    replies = ["text", "speech"] if args.quick else list(REPLIES)
    for name, bundle in models.items():
        for batch in [int(x) for x in args.batches.split(",")]:
            for reply in replies:
                row = bench_pair(bundle, reply, batch, args.repeats)
                print(json.dumps(row), flush=True)
                results.append(row)
                if args.eager_step:
                    print(json.dumps(scripted_over_eager(bundle, reply, batch, max(args.repeats, 3))), flush=True)
    hist = history_ratio(models["tiny"], max(args.repeats, 3))
    print(json.dumps(hist), flush=True)
    summary = {}
    for batch in (1, 8):
        ratios = [r["speedup"] for r in results if r["model"] == "tiny" and r["batch"] == batch]
        if ratios:
            summary[f"speedup_bs{batch}"] = round(statistics.median(ratios), 2)
        big = [r["speedup"] for r in results if r["model"] == "7b-shaped" and r["batch"] == batch]
        if big:
            summary[f"speedup_7b_shaped_bs{batch}"] = round(statistics.median(big), 2)
    summary["history_turn_cost_ratio"] = hist["history_turn_cost_ratio"]
    summary["history_turn_whole_ratio"] = hist["history_turn_whole_ratio"]
    summary["history_turn_engine_ratio"] = hist["history_turn_engine_ratio"]
    if "7b-shaped" in sizes:
        summary["params_7b_shaped"] = sizes["7b-shaped"]
    summary["threads"] = args.threads
    summary["device"] = args.device
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
