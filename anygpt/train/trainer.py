"""The training loop, for every stage and every launch (accelerate decides the processes/devices).

One optimizer step:
    batches of step s (a pure function of seed and s)   ->  micro-batches m = 1..grad_accum
    loss of m = sum of token cross-entropies / tokens of the whole step on all processes
    (so each token weighs the same however rows are split among micro-batches and processes)
    backward (gradient sync only on the last micro-batch) -> clip -> Adam step at lr(s)
The learning rate is computed from the step, so the schedule needs no state of its own.
Each evaluation logs the validation loss overall and per template tag ("val/image/to_text"), and the
conditioning gap per pair direction ("val/gap/image->text", see anygpt.train.conditioning).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from anygpt import bundles
from anygpt.data.pipeline.mixture import MixConfig, run_mix
from anygpt.data.pipeline.packing import IGNORE, Batch, run_pack
from anygpt.data.pipeline.shards import MANIFEST
from anygpt.errors import AnyGPTError
from anygpt.train import checkpoint, schedule
from anygpt.train.conditioning import conditioning_gaps, gap_pairs
from anygpt.train.data import BatchPlan, PackedRows, Prefetcher, step_batches, val_batches
from anygpt.train.embeddings import fit_tonal_rows
from anygpt.train.finetune import apply_lora, merged, trainable_parameters
from anygpt.train.metrics import Metrics, plot_losses
from anygpt.train.recipe import TrainConfig


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warmup over warmup_ratio of the steps, then cosine down to lr * min_lr_ratio."""
    return schedule.lr_at(step, lr=cfg.lr, steps=total, warmup=math.ceil(cfg.warmup_ratio * total),
                          floor=cfg.min_lr_ratio)


def forward_logits(model, batch: Batch, isolation: str) -> torch.Tensor:
    """(B, T, V) logits with packed documents kept apart: the 4D mask, or restarting position ids
    alone for flash attention's varlen path."""
    if isolation == "varlen":
        return model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).logits
    return model(input_ids=batch.input_ids, position_ids=batch.position_ids,
                 attention_mask=batch.attention_mask(), use_cache=False).logits


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, T) cross-entropy per position (0 where the label is IGNORE), in fp32."""
    b, t, v = logits.shape
    return F.cross_entropy(logits.float().reshape(-1, v), labels.reshape(-1), ignore_index=IGNORE,
                           reduction="none").reshape(b, t)


def prepare_data(cfg: TrainConfig, bundle, accelerator, log) -> tuple[Path, Path | None]:
    """Packed train/val folders: as given, or mixed and packed from a mixture .toml into out/data."""
    data = Path(cfg.data)
    if not cfg.data:
        raise AnyGPTError("no training data: set data = a packed folder or a mixture .toml")
    if data.suffix != ".toml":
        return data, Path(cfg.val_data) if cfg.val_data else None
    root = Path(cfg.out) / "data"
    train_dir, val_dir = root / "packed-train", root / "packed-val"
    if accelerator.is_main_process and not (train_dir / MANIFEST).is_file():
        mix = MixConfig.from_toml(data)
        chat = bundle.prompt_format.name if bundle.prompt_format.kind == "chat" else "mmgpt"
        run_mix(mix, bundle.tokenizer, bundle.layout, root / "mix", quiet=False, default_chat_format=chat)
        run_pack(root / "mix" / "val", val_dir, cfg.max_len, quiet=False)
        run_pack(root / "mix" / "train", train_dir, cfg.max_len, quiet=False)
    accelerator.wait_for_everyone()
    return train_dir, Path(cfg.val_data) if cfg.val_data else val_dir


@torch.no_grad()
def evaluate(model, batches: list[Batch], tags: list[str], isolation: str, accelerator) -> dict:
    """Mean target-token loss overall and per template tag ("image/to_text", "chat", ...)."""
    model.eval()
    sums = torch.zeros(len(tags) + 1, dtype=torch.float64, device=accelerator.device)
    counts = torch.zeros(len(tags) + 1, dtype=torch.float64, device=accelerator.device)
    for b in batches:
        b = b.to(accelerator.device)
        with accelerator.autocast():
            losses = token_losses(forward_logits(model, b, isolation), b.labels)
        valid = b.labels != IGNORE
        sums[-1] += losses[valid].sum().double()
        counts[-1] += valid.sum()
        for i in range(len(tags)):
            sel = b.label_tags == i
            sums[i] += losses[sel].sum().double()
            counts[i] += sel.sum()
    sums, counts = accelerator.reduce(sums, "sum"), accelerator.reduce(counts, "sum")
    model.train()
    out = {"val_loss": (sums[-1] / counts[-1].clamp(min=1)).item(), "val_tokens": int(counts[-1].item())}
    for i, tag in enumerate(tags):
        if counts[i] > 0:
            out[f"val/{tag}"] = (sums[i] / counts[i]).item()
    return out


def _resolve_isolation(cfg: TrainConfig, model) -> str:
    if cfg.isolation != "auto":
        return cfg.isolation
    impl = getattr(model.config, "_attn_implementation", "") or ""
    return "varlen" if "flash" in impl else "mask"


def train(cfg: TrainConfig, *, log=None, bundle=None) -> dict:
    """Run (or resume) one training stage. Returns a summary dict (the main process's view).
    `bundle`: an already loaded Bundle to train in place of loading `cfg.bundle` (it is modified)."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    accelerator = Accelerator(mixed_precision=None if cfg.precision == "auto" else cfg.precision,
                              cpu=not torch.cuda.is_available())  # cpu=True: torchrun processes join by gloo
    main = accelerator.is_main_process

    def say(msg: str) -> None:
        if main:
            (log or (lambda m: print(m, file=sys.stderr, flush=True)))(msg)

    set_seed(cfg.seed)
    out = Path(cfg.out)
    if main:
        out.mkdir(parents=True, exist_ok=True)
    bundle = bundle if bundle is not None else bundles.load_bundle(cfg.bundle)
    if cfg.tonal_fit:  # a resumed run loads its checkpoint's weights over these
        say(f"train: {fit_tonal_rows(bundle)} tonal layer-1 rows of each embedding replaced by their additive fit")
    model = bundle.model
    if cfg.attn_implementation:
        model.set_attn_implementation(cfg.attn_implementation)
    train_dir, val_dir = prepare_data(cfg, bundle, accelerator, say)
    rows = PackedRows(train_dir)
    if rows.max_len > cfg.max_len:
        raise AnyGPTError(f"{train_dir} was packed to {rows.max_len} tokens, more than max_len={cfg.max_len}")
    val_rows = PackedRows(val_dir) if val_dir is not None else None
    tags = sorted(set(rows.tags) | set(val_rows.tags if val_rows else []))

    if cfg.finetune == "lora":
        model = apply_lora(model, cfg, bundle.layout.base_vocab_size)
    model.train()
    n_train, n_total = trainable_parameters(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
                                  weight_decay=cfg.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    isolation = _resolve_isolation(cfg, accelerator.unwrap_model(model))
    use_compile = cfg.compile == "on" or (cfg.compile == "auto" and accelerator.device.type == "cuda")
    fwd_model = torch.compile(model) if use_compile else model

    world, rank = accelerator.num_processes, accelerator.process_index
    plan = BatchPlan(len(rows), cfg.micro_batch, cfg.grad_accum, world, cfg.seed)
    total = cfg.steps or plan.steps_for(cfg.epochs)
    start, tokens_seen = 0, 0
    ckpt = checkpoint.latest(out) if cfg.resume else None
    if ckpt is not None:
        accelerator.load_state(str(ckpt))
        state = checkpoint.read_state(ckpt)
        start, tokens_seen = state["step"], state["tokens_seen"]
        if state.get("total_steps", total) != total:
            raise AnyGPTError(f"{ckpt}: saved for {state['total_steps']} steps, this run has {total}")
        if state.get("rows_per_step", plan.rows_per_step) != plan.rows_per_step:
            raise AnyGPTError(f"{ckpt}: saved with {state['rows_per_step']} rows per step (micro_batch x grad_accum x "
                              f"processes), this run has {plan.rows_per_step}: the data order would differ")
        say(f"train: resuming from {ckpt} at step {start}")

    def save(step: int, state: dict) -> None:
        checkpoint.save(out, step, state, lambda folder: accelerator.save_state(str(folder)),
                        keep=cfg.keep_checkpoints, main=main, barrier=accelerator.wait_for_everyone)

    metrics = Metrics(out, enabled=main, tensorboard=cfg.tensorboard, resume_step=start if ckpt else None)
    say(f"train: {cfg.stage}, {len(rows)} rows x <= {rows.max_len} tokens ({rows.tokens:,} tokens), "
        f"{total} steps of {plan.rows_per_step} rows on {world} process(es), device {accelerator.device}, "
        f"isolation {isolation}, {n_train:,} of {n_total:,} parameters trainable")
    pad_to = cfg.max_len if use_compile else None  # static shapes for the compiled graph
    vbatches = (val_batches(val_rows, rank, world, cfg.micro_batch, cfg.eval_max_rows, pad_id=bundle.pad_id, tags=tags)
                if val_rows is not None else [])
    gap_sets = gap_pairs(val_rows, cfg.gap_pairs) if val_rows is not None and cfg.gap_pairs else {}

    def eval_now(step: int) -> dict | None:
        if not vbatches and val_rows is None:
            return None
        rec = {"step": step, **evaluate(fwd_model, vbatches, tags, isolation, accelerator)}
        with accelerator.autocast():  # the uncompiled model: the pairs' shapes vary
            rec.update(conditioning_gaps(model, gap_sets, pad_id=bundle.pad_id, batch_size=cfg.micro_batch))
        metrics.log(rec)
        say(f"eval step {step}: val_loss {rec['val_loss']:.4f} " +
            " ".join(f"{k[4:]} {v:.3f}" for k, v in rec.items() if k.startswith("val/")))
        return rec

    first_eval = eval_now(0) if start == 0 else None
    last_eval = first_eval
    make = lambda s: step_batches(rows, plan, s, rank, pad_id=bundle.pad_id, loss_on=cfg.loss_on,  # noqa: E731
                                  pad_to=pad_to, tags=tags, with_mask=isolation == "mask")
    prefetch = Prefetcher(make, range(start, total))
    losses: list[float] = []
    t_last, tok_last = time.perf_counter(), 0
    stopped = False
    try:
        for step in range(start, total):
            _, micro = prefetch.get()
            lr = lr_at(step, total, cfg)
            schedule.set_lr(optimizer, lr)
            n_local = torch.tensor(float(sum(b.num_labels for b in micro)), device=accelerator.device)
            n_global = accelerator.reduce(n_local, "sum").clamp(min=1)
            loss_sum = torch.zeros((), device=accelerator.device)
            step_tokens = 0
            for a, b in enumerate(micro):
                b = b.to(accelerator.device)
                step_tokens += b.tokens
                sync = a == len(micro) - 1
                ctx = contextlib.nullcontext() if sync else accelerator.no_sync(model)
                with ctx:
                    with accelerator.autocast():
                        tl = token_losses(forward_logits(fwd_model, b, isolation), b.labels)
                    s = tl.sum()
                    # DDP averages gradients over processes: scale by world to get the global token mean
                    accelerator.backward(s * world / n_global)
                loss_sum += s.detach()
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip) if cfg.grad_clip else None
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss = (accelerator.reduce(loss_sum, "sum") / n_global).item()
            step_tokens = int(accelerator.reduce(torch.tensor(step_tokens, device=accelerator.device), "sum").item())
            tokens_seen += step_tokens
            losses.append(loss)
            done = step + 1
            if done % cfg.log_every == 0 or done == total:
                now = time.perf_counter()
                rec = {"step": done, "loss": loss, "lr": lr, "tokens": tokens_seen,
                       "tok_s": (tokens_seen - tok_last) / max(now - t_last, 1e-9) if tok_last else None,
                       "grad_norm": float(grad_norm) if grad_norm is not None else None}
                t_last, tok_last = now, tokens_seen
                metrics.log(rec)
                say(f"step {done}/{total} loss {loss:.4f} lr {lr:.2e} tokens {tokens_seen:,}")
            if cfg.eval_every and done % cfg.eval_every == 0 and done != total:
                last_eval = eval_now(done)
            state = {"tokens_seen": tokens_seen, "total_steps": total, "rows_per_step": plan.rows_per_step,
                     "config": cfg.to_dict()}
            if cfg.save_every and done % cfg.save_every == 0 and done != total:
                save(done, state)
            if cfg.stop_after and done - start >= cfg.stop_after and done != total:
                stopped = True
                say(f"train: stopping after {cfg.stop_after} steps (stop_after)")
                break
    finally:
        prefetch.close()
    summary = {"stage": cfg.stage, "out": str(out), "start_step": start, "steps": total, "losses": losses,
               "tokens_seen": tokens_seen, "first_eval": first_eval, "stopped": stopped}
    if not stopped:
        last_eval = eval_now(total)
        save(total, {"tokens_seen": tokens_seen, "total_steps": total, "rows_per_step": plan.rows_per_step,
                     "config": cfg.to_dict()})
        if cfg.export:
            summary["bundle"] = str(export_bundle(accelerator, model, bundle, out / "bundle"))
        if main:
            summary["plot"] = str(plot_losses(out / "metrics.jsonl", out / "loss.png"))
    summary["last_eval"] = last_eval
    metrics.close()
    accelerator.wait_for_everyone()
    return summary


def export_bundle(accelerator, model, bundle, path: Path) -> Path:
    """The trained model as a bundle folder (LoRA merged), written atomically by the main process."""
    accelerator.wait_for_everyone()
    state = accelerator.get_state_dict(model)  # gathers FSDP / ZeRO-3 shards
    if accelerator.is_main_process:
        plain = accelerator.unwrap_model(model)
        plain.load_state_dict(state)
        plain = merged(plain)
        checkpoint.atomic_write(path, lambda tmp: bundles.save_bundle(replace(bundle, model=plain), tmp))
    accelerator.wait_for_everyone()
    return path
