"""Ablation for AnyGPT-tiny's ASR: is a speech token per 20 ms frame, or one per phone, the better unit
for a small LLM? The tiny speech codec's layer 1 is the phone of each 50 Hz frame (its codes run about
4.4 frames); `dedup` keeps one token per run. The same Llama (the tiny LLM's body: 4 layers, 192 wide)
is trained from scratch on the same speech -> transcript pairs with the same batches and schedule, and
scored on 100 validation pairs by greedy decoding (WER after lower-casing and dropping punctuation).

    python scripts/asr_units_ablation.py UNITS raw|dedup STEPS OUT.json
    UNITS: the token shards that scripts/train_tiny.sh writes (RUNS/records-big/units: speech_pairs)

One torch thread, seeded; the numbers are in docs/tiny.md.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import random
import time
from pathlib import Path

import jiwer
import numpy as np
import pyarrow.parquet as pq
import torch
from tokenizers import Tokenizer
from transformers import LlamaConfig, LlamaForCausalLM

from anygpt.codecs.small.voice import merge_runs

REPO = Path(__file__).resolve().parents[1]
TEXT_VOCAB = 1024  # the tiny layout's text tokens (its base vocabulary); transcripts use only these
SPEECH = TEXT_VOCAB  # speech code c is token SPEECH + c (1024 codes)
SEP, EOS, PAD = TEXT_VOCAB + 1024, TEXT_VOCAB + 1025, TEXT_VOCAB + 1026
BATCH, LR, WARMUP = 32, 2e-3, 100
TRAIN_ITEMS, VAL_ITEMS, SCORED = 20000, 200, 100


def load_pairs(units: str, split: str, limit: int, dedup: bool) -> list[tuple[list[int], str]]:
    """(speech token ids, transcript) of the speech -> text pairs of a split, in shard order."""
    rows = []
    for shard in sorted(glob.glob(f"{units}/{split}/speech_pairs/*.parquet")):
        for r in pq.read_table(shard, columns=["seg_modality", "seg_text", "seg_codes"]).to_pylist():
            if r["seg_modality"] != ["speech", "text"]:
                continue
            codes = r["seg_codes"][0]
            if dedup:  # one token per run of equal layer-1 codes, as the codec's runs "merged" gives them
                codes = merge_runs(torch.tensor([codes]))[0][0].tolist()
            rows.append(([SPEECH + c for c in codes], r["seg_text"][1]))
            if len(rows) >= limit:
                return rows
    return rows


def normalise(text: str) -> str:
    for mark in ".,?!":
        text = text.replace(mark, "")
    return " ".join(text.lower().split())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("units")
    p.add_argument("mode", choices=["raw", "dedup"])
    p.add_argument("steps", type=int)
    p.add_argument("out")
    args = p.parse_args()
    torch.manual_seed(0)
    random.seed(0)
    torch.set_num_threads(1)
    tok = Tokenizer.from_file(str(REPO / "anygpt/bundles/tiny/tokenizer/tokenizer.json"))
    train = load_pairs(args.units, "train", TRAIN_ITEMS, args.mode == "dedup")
    val = load_pairs(args.units, "validation", VAL_ITEMS, args.mode == "dedup")
    speech_tokens = float(np.mean([len(s) for s, _ in train]))
    print(f"{args.mode}: {len(train)} train, {len(val)} validation pairs, {speech_tokens:.1f} speech tokens each",
          flush=True)

    def encode(text: str) -> list[int]:
        ids = tok.encode(text, add_special_tokens=False).ids
        assert max(ids) < TEXT_VOCAB, text
        return ids

    def batch(items):  # speech SEP text EOS, loss on the text and EOS only
        seqs, labels = [], []
        for speech, text in items:
            ids = speech + [SEP] + encode(text) + [EOS]
            seqs.append(ids)
            labels.append([-100] * (len(speech) + 1) + ids[len(speech) + 1:])
        width = max(map(len, seqs))
        x = torch.full((len(seqs), width), PAD)
        y = torch.full((len(seqs), width), -100)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, (ids, lab) in enumerate(zip(seqs, labels)):
            x[i, :len(ids)] = torch.tensor(ids)
            y[i, :len(lab)] = torch.tensor(lab)
            mask[i, :len(ids)] = 1
        return x, y, mask

    config = LlamaConfig(vocab_size=TEXT_VOCAB + 1027, hidden_size=192, intermediate_size=512, num_hidden_layers=4,
                         num_attention_heads=6, num_key_value_heads=3, head_dim=32, max_position_embeddings=1024,
                         bos_token_id=None, eos_token_id=EOS, pad_token_id=PAD, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01, betas=(0.9, 0.95))
    start, log = time.time(), []
    for step in range(args.steps):
        lr = LR * min(1, (step + 1) / WARMUP) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        x, y, mask = batch(random.sample(train, BATCH))
        loss = model(input_ids=x, attention_mask=mask, labels=y).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == args.steps - 1:
            print(f"{args.mode} step {step} loss {loss.item():.3f} {time.time() - start:.0f}s", flush=True)
            log.append((step, loss.item(), time.time() - start))
    model.eval()
    with torch.no_grad():
        x, y, mask = batch(val)
        val_loss = model(input_ids=x, attention_mask=mask, labels=y).loss.item()
        heard = []
        for speech, _ in val[:SCORED]:
            ids = torch.tensor([speech + [SEP]])
            out = model.generate(ids, max_new_tokens=40, do_sample=False, eos_token_id=EOS, pad_token_id=PAD)
            new = out[0, ids.shape[1]:].tolist()
            new = new[:new.index(EOS)] if EOS in new else new
            heard.append(tok.decode([i for i in new if i < TEXT_VOCAB]))
    wer = jiwer.wer([normalise(t) for _, t in val[:SCORED]], [normalise(h) for h in heard])
    result = {"mode": args.mode, "steps": args.steps, "batch": BATCH, "train_items": len(train), "val_loss": val_loss,
              "wer_100": wer, "train_seconds": log[-1][2], "mean_speech_tokens": speech_tokens,
              "examples": [(t, h) for (_, t), h in list(zip(val, heard))[:5]], "log": log}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "log"}, indent=1))


if __name__ == "__main__":
    main()
