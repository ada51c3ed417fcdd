"""The `debug` bundle: the official AnyGPT token layout on random tiny networks.

Everything a real bundle has, at a size that builds in about a second on a CPU: a byte-level BPE
tokenizer trained on the package's own prompt files, a 2-layer Llama expanded by the same code path
that expands LLaMA-2, and the three debug codecs. Its outputs are noise; its shapes, ids, formats and
files are real.
"""

from __future__ import annotations

from anygpt.bundles.bundle import Bundle, CodecSlot
from anygpt.generate.config import PRESETS
from anygpt.layout import official_layout_config
from anygpt.model import random_llama
from anygpt.prompts import DIRECTIONS, format_names, load_format, load_pool, load_tasks

TEXT_VOCAB = 512
LLM = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
           num_key_value_heads=2, max_position_embeddings=8192)
CODECS = {"image": "debug-image", "speech": "debug-speech", "music": "debug-music"}


def debug_corpus() -> list[str]:
    """Text the debug tokenizer learns its merges from: the package's own prompt files."""
    lines = []
    for modality in CODECS:
        for direction in DIRECTIONS:
            lines += load_pool(modality, direction)
    lines += [t.chat for t in load_tasks().values()]
    lines += [load_format(name).system for name in format_names()]
    return lines


def build_text_tokenizer(vocab_size: int = TEXT_VOCAB, corpus: list[str] | None = None):
    """A byte-level BPE with LLaMA's special tokens (<unk> 0, <s> 1, </s> 2), learnt from `corpus`
    (default: the package's prompt files); deterministic."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(debug_corpus() if corpus is None else corpus, trainer)
    tok.post_processor = TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def build_debug_bundle(seed: int = 0) -> Bundle:
    tokenizer = build_text_tokenizer()
    model, layout = random_llama(tokenizer, official_layout_config(), seed=seed, **LLM)
    # Small budgets: a random model never stops by itself, so every reply runs to them.
    decoding = PRESETS["paper"].override(max_new_tokens=160, max_seconds={"speech": 2.0, "music": 1.0})
    codecs = {m: CodecSlot(m, name, {"seed": seed}) for m, name in CODECS.items()}
    return Bundle(
        name="debug",
        description="Official AnyGPT token layout on random tiny weights: every path runs, outputs are noise.",
        model=model, tokenizer=tokenizer, layout=layout, prompt_format=load_format("mmgpt"),
        decoding=decoding, codecs=codecs,
    )
