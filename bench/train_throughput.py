"""Training throughput with the real data pipeline versus the same model on pre-made tensors.

    python bench/train_throughput.py --json
    -> {"pipeline_tok_s": ..., "tensor_tok_s": ..., "pipeline_overhead": ..., "padding_fraction": ...}

The data is made on the spot: the example raw dataset (images, speech, music, documents), tokenized
by the bundle's codecs, mixed by token budget and packed to rows of `--max-len` (4500, the paper's).
Then the same training step (forward with isolation, token-weighted loss, backward, clip, Adam)
runs twice over the same steps:
    pipeline  rows read from the packed Parquet shards, collated (positions, labels, block mask)
              in the background loader thread of the trainer, exactly as `anygpt train` does;
    tensor    the very same batches collated beforehand and held in memory (masks included).
The two runs alternate `--repeats` times; the figures are medians, and the overhead is the median
over repeats of 1 - pipeline / tensor within one repeat (both halves of a repeat ran under the same
load, which matters on a shared machine).
padding_fraction is the packed grid's padding: 1 - tokens / (rows x max_len).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build_data(root: Path, bundle, *, max_len: int, budget: int) -> tuple[Path, dict]:
    from anygpt.data.pipeline.example import PRETRAIN_MIXTURE, write_example_dataset
    from anygpt.data.pipeline.mixture import MixConfig, run_mix
    from anygpt.data.pipeline.packing import run_pack
    from anygpt.data.pipeline.tokenize import TokenizeConfig, run_tokenize

    files = write_example_dataset(root, pairs=40, docs=8, chats=2)
    for name in ("images", "speech", "music", "docs"):
        run_tokenize(TokenizeConfig(inputs=[str(files[name])], out=str(root / "units" / name), chunk_size=64),
                     quiet=True, bundle=bundle)
    (root / "mix.toml").write_text(PRETRAIN_MIXTURE.format(budget=budget), encoding="utf-8")
    cfg = MixConfig.from_toml(root / "mix.toml")
    cfg.val_fraction = 0.0
    run_mix(cfg, bundle.tokenizer, bundle.layout, root / "mix", quiet=True)
    manifest = run_pack(root / "mix" / "train", root / "packed", max_len, quiet=True)
    return root / "packed", manifest["stats"]


def make_step(model, optimizer, isolation: str, device):
    import torch

    from anygpt.train.trainer import forward_logits, token_losses

    def step(micro, masks=None) -> int:
        n = max(sum(b.num_labels for b in micro), 1)
        tokens = 0
        for i, b in enumerate(micro):
            if masks is None:
                b = b.to(device)
                logits = forward_logits(model, b, isolation)
            else:  # pre-made: the mask was built beforehand too
                logits = model(input_ids=b.input_ids, position_ids=b.position_ids, attention_mask=masks[i],
                               use_cache=False).logits
            (token_losses(logits, b.labels).sum() / n).backward()
            tokens += b.tokens
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return tokens

    return step


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", default="debug")
    p.add_argument("--max-len", type=int, default=4500)
    p.add_argument("--micro-batch", type=int, default=1)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--steps", type=int, default=2, help="timed steps per run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--budget-tokens", type=int, default=800_000, help="mixture size (sets the packing padding)")
    p.add_argument("--device", default="cuda" if _cuda() else "cpu")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    import torch

    from anygpt.bundles import load_bundle
    from anygpt.train.data import BatchPlan, PackedRows, Prefetcher, step_batches

    bundle = load_bundle(args.bundle)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        packed, stats = build_data(Path(tmp), bundle, max_len=args.max_len, budget=args.budget_tokens)
        prep_s = time.perf_counter() - t0
        device = torch.device(args.device)
        model = copy.deepcopy(bundle.model).to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.0)
        step = make_step(model, optimizer, "mask", device)
        rows = PackedRows(packed)
        plan = BatchPlan(len(rows), args.micro_batch, args.grad_accum, 1, seed=0)
        tags = rows.tags
        total = args.steps + 1  # one warm-up step

        def make(s):
            return step_batches(rows, plan, s, 0, pad_id=bundle.pad_id, loss_on="all", pad_to=None, tags=tags,
                                with_mask=True)

        def run_pipeline() -> float:
            pre = Prefetcher(make, range(total))
            try:
                step(pre.get()[1])
                t, tokens = time.perf_counter(), 0
                for _ in range(args.steps):
                    tokens += step(pre.get()[1])
                return tokens / (time.perf_counter() - t)
            finally:
                pre.close()

        premade = [[b.to(device) for b in make(s)] for s in range(total)]
        masks = [[b.mask for b in micro] for micro in premade]

        def run_tensor() -> float:
            step(premade[0], masks[0])
            t, tokens = time.perf_counter(), 0
            for s in range(1, total):
                tokens += step(premade[s], masks[s])
            return tokens / (time.perf_counter() - t)

        pipe, tens = [], []
        for _ in range(args.repeats):
            pipe.append(run_pipeline())
            tens.append(run_tensor())
        batch_tokens = sum(b.tokens for m in premade for b in m)
        batch_grid = sum(b.input_ids.numel() for m in premade for b in m)
    from statistics import median

    result = {
        "pipeline_tok_s": round(median(pipe), 1),
        "tensor_tok_s": round(median(tens), 1),
        # each repeat runs the two back to back, under the same load: compare within a repeat
        "pipeline_overhead": round(median(1 - p / t for p, t in zip(pipe, tens)), 4),
        "padding_fraction": round(stats["padding_fraction"], 5),
    }
    detail = {"bundle": args.bundle, "max_len": args.max_len, "micro_batch": args.micro_batch,
              "grad_accum": args.grad_accum, "steps": args.steps, "packed_rows": stats["rows"],
              "batch_padding_fraction": round(1 - batch_tokens / batch_grid, 5), "data_prep_s": round(prep_s, 1),
              "pipeline_runs": [round(x, 1) for x in pipe], "tensor_runs": [round(x, 1) for x in tens],
              "threads": torch.get_num_threads(), "device": args.device}
    if args.json:
        print(json.dumps(result))
        print(json.dumps(detail), file=sys.stderr)
    else:
        for k, v in {**result, **detail}.items():
            print(f"{k:24s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
