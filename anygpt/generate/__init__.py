"""Modality-aware generation: decoding settings, logits processors, the engine, reply parsing."""
