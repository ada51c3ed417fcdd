"""Beam phases: our beam search (generate/beams.py) against transformers' `model.generate`, in one run.

    python bench/beams.py [--bundle tiny] [--beams 5] [--tokens 32] [--repeats 3] [--threads 1]
    -> one JSON line per batch size, then {"beam_speedup_bs1": ..., "beam_speedup_bs8": ..., "same_ids": ...}

Both run the same beam phase (`engine.run_beam_phase`: the text settings with `--beams` beams, the span
constraint, the bundle's stop ids) over the same prompts from the same state (no kept cache), one
after the other, alternating which goes first; figures are medians. `same_ids` says whether every
row got the same ids from both (for batch 1 they must; rows searched together may round differently
in `generate`'s left-padded batch). On a shared machine compare ratios measured in the same run only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WORDS = ["a red circle", "Describe this picture please", "hello there", "What is this music?",
         "two blue squares on grey", "sing me a song", "good morning", "a slow song"]


def run_phase(bundle, model, prompts, decoding, *, own: bool) -> tuple[float, list[list[int]]]:
    from anygpt.generate import engine as E

    eos = bundle.stop_ids + [m.start_id for m in bundle.layout.modalities.values()]
    vocab = model.get_output_embeddings().weight.shape[0]
    rows = [E.Row(list(p), ()) for p in prompts]
    t = time.perf_counter()
    E.run_beam_phase(model, rows, decoding, eos, bundle.stop_ids, bundle.pad_id,
                     E.span_constraint(bundle.layout, decoding, (), vocab), lambda r: None,
                     search="ours" if own else "generate")
    seconds = time.perf_counter() - t
    return seconds, [r.ids[len(p):] for r, p in zip(rows, prompts)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", default="tiny")
    ap.add_argument("--beams", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=32, help="the phase's token budget")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch

    from anygpt.bundles import load_bundle
    from anygpt.generate.config import SamplingConfig

    torch.set_num_threads(args.threads)
    bundle = load_bundle(args.bundle)
    model = bundle.model  # transformers' model: both searches run on the same weights
    decoding = bundle.decoding.override(text=SamplingConfig(do_sample=False, num_beams=args.beams),
                                        max_new_tokens=args.tokens)
    summary, same = {}, True
    for batch in (1, 8):
        prompts = [bundle.tokenizer(f"[Human]: {WORDS[i % len(WORDS)]}<eoh>\n[MMGPT]:", add_special_tokens=False)
                   ["input_ids"] for i in range(batch)]
        ours, theirs = [], []
        for i in range(args.repeats):
            for own in ((True, False) if i % 2 == 0 else (False, True)):
                seconds, ids = run_phase(bundle, model, prompts, decoding, own=own)
                (ours if own else theirs).append((seconds, ids))
        tokens = sum(len(x) for x in ours[0][1])
        equal = ours[0][1] == theirs[0][1]
        same = same and equal
        o, t = statistics.median(s for s, _ in ours), statistics.median(s for s, _ in theirs)
        row = {"bundle": bundle.name, "batch": batch, "beams": args.beams, "new_tokens": tokens,
               "ours_tok_s": round(tokens / o, 1), "generate_tok_s": round(tokens / t, 1),
               "speedup": round(t / o, 2), "same_ids": equal}
        print(json.dumps(row), flush=True)
        summary[f"beam_speedup_bs{batch}"] = row["speedup"]
    print(json.dumps({**summary, "same_ids": same, "threads": args.threads}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
