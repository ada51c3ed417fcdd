"""Load a Hugging Face causal LM and expand its vocabulary with a layout's tokens.

Apart from the embedding matrix and the output layer, the LLM is left exactly as it was (the paper's
"unmodified LLM"): modality lives only in the layout and in the logits processors.
"""

from __future__ import annotations

from pathlib import Path

import torch

from anygpt.errors import AnyGPTError, BundleError, LayoutError
from anygpt.layout import LayoutConfig, VocabLayout
from anygpt.tokenizer import load_text_tokenizer

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_dtype(name: str | None) -> torch.dtype | None:
    if name is None:
        return None
    if name not in DTYPES:
        raise AnyGPTError(f"unknown precision {name!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[name]


def resolve_device(name: str) -> str:
    """A device name torch knows and this machine has ("cpu", "cuda", "cuda:1", "mps"), or one error line."""
    if not isinstance(name, str) or not name.strip():
        raise AnyGPTError(f"--device expects a device name such as cpu or cuda, got {name!r}")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise AnyGPTError(f"unknown device {name!r}: expected cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise AnyGPTError(f"--device {name}: no CUDA GPU is available here (use --device cpu)")
        if device.index is not None and device.index >= count:
            raise AnyGPTError(f"--device {name}: this machine has {count} CUDA GPU(s), numbered from 0")
    elif device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise AnyGPTError(f"--device {name}: no Apple GPU (MPS) is available here")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise AnyGPTError(f"--device {name}: unsupported device type {device.type!r}; use cpu, cuda or mps")
    return name


def load_causal_lm(path: str | Path, *, device: str = "cpu", dtype: str | None = None,
                   safetensors_only: bool = True):
    """A local HF causal LM folder -> model in eval mode. Never reaches the network, never runs code
    shipped with the folder (trust_remote_code=False, always), and with `safetensors_only` never
    unpickles weights (our bundles; an imported release's folder may hold .bin files)."""
    from transformers import AutoModelForCausalLM

    path = Path(path)
    if not (path / "config.json").is_file():
        raise BundleError(f"{path}: no config.json, not a Hugging Face model folder")
    try:
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=resolve_dtype(dtype),
                                                     trust_remote_code=False,
                                                     use_safetensors=True if safetensors_only else None)
    except (OSError, ValueError, KeyError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise BundleError(f"{path}: cannot load the language model ({reason})") from None
    return model.to(device).eval()


def load_tokenizer(path: str | Path):
    """A local HF tokenizer folder; like the model, never runs code shipped with it. A plain fast
    tokenizer loads without transformers (anygpt/tokenizer.py: the same ids and text)."""
    light = load_text_tokenizer(path)
    if light is not None:
        return light
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(Path(path), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise BundleError(f"{path}: cannot load the tokenizer ({reason})") from None


def expand_vocabulary(model, tokenizer, config: LayoutConfig, *, init: str = "random",
                      seed: int = 0) -> VocabLayout:
    """Append the layout's tokens to `tokenizer` (as ordinary added tokens, in layout order) and
    grow the model's input embeddings and output layer to match.

    New rows are drawn from N(0, initializer_range) as in the paper (`init="random"`), or set to the
    mean of the existing rows (`init="mean"`), which often starts training at a lower loss.
    """
    if init not in ("random", "mean"):
        raise AnyGPTError(f"unknown embedding init {init!r}: expected 'random' or 'mean'")
    layout = VocabLayout(config, len(tokenizer))
    tokens = layout.tokens_to_add()
    present = [t for t in tokens[:1000] if t in tokenizer.get_vocab()]
    if present:
        raise LayoutError(f"tokenizer already has layout tokens (e.g. {present[0]!r}); load it with "
                          "VocabLayout.from_tokenizer instead of expanding it again")
    tokenizer.add_tokens(tokens)
    layout.verify(tokenizer)

    old_rows = model.get_input_embeddings().weight.shape[0]
    if old_rows < layout.base_vocab_size:
        raise LayoutError(f"model has {old_rows} embedding rows but the tokenizer {layout.base_vocab_size} tokens")
    model.resize_token_embeddings(max(layout.vocab_size, old_rows), mean_resizing=False)
    new = slice(layout.base_vocab_size, layout.vocab_size)
    gen = torch.Generator().manual_seed(seed)
    std = getattr(model.config, "initializer_range", 0.02)
    matrices = [model.get_input_embeddings().weight]
    out = model.get_output_embeddings()
    if out is not None and out.weight is not matrices[0]:
        matrices.append(out.weight)
    with torch.no_grad():
        for w in matrices:
            if init == "mean":
                w[new] = w[: layout.base_vocab_size].mean(0, keepdim=True)
            else:
                w[new] = (torch.randn(w[new].shape, generator=gen) * std).to(w.dtype)
    return layout


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def random_llama(tokenizer, config: LayoutConfig, *, seed: int = 0, **llm):
    """A randomly initialised Llama over `tokenizer` (LLaMA's specials: <s> 1, </s> 2), its
    vocabulary expanded for `config` by `expand_vocabulary`; `llm` are LlamaConfig sizes. Seeds
    torch's global generator with `seed` first. Returns (model in eval mode, VocabLayout)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), bos_token_id=1, eos_token_id=2,
                                         tie_word_embeddings=False, **llm))
    layout = expand_vocabulary(model, tokenizer, config, seed=seed)
    return model.eval(), layout

