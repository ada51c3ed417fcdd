"""What trains: every weight (full fine-tuning), or LoRA adapters plus the added vocabulary rows.

The added modality tokens start random (or at the mean), so a LoRA run that froze the embedding and
output matrices could never learn them. Here both matrices stay trainable, and a gradient hook
zeroes the gradient of the original text rows: with weight decay 0, Adam leaves a row whose
gradient is always zero exactly where it was, so only rows >= base_vocab_size move.
"""

from __future__ import annotations

import torch

from anygpt.errors import AnyGPTError


def _row_mask_hook(first_trainable: int):
    def hook(grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        grad[:first_trainable] = 0
        return grad
    return hook


def apply_lora(model, cfg, base_vocab_size: int):
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise AnyGPTError("finetune = 'lora' needs peft: pip install peft") from None
    lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.lora_targets), bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lcfg)
    if cfg.train_new_rows:
        if cfg.weight_decay:
            raise AnyGPTError("train_new_rows with LoRA needs weight_decay = 0 (decay would move the text rows)")
        mats = [model.get_input_embeddings().weight]
        out = model.get_output_embeddings()
        if out is not None and out.weight is not mats[0]:
            mats.append(out.weight)
        for w in mats:
            w.requires_grad_(True)
            w.register_hook(_row_mask_hook(base_vocab_size))
    return model


def merged(model):
    """A plain transformers model for export: LoRA weights merged in."""
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload()
    return model


def trainable_parameters(model) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return train, total
