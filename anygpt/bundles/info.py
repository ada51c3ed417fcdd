"""What `anygpt info` says about a bundle: its layout, sizes, codecs, decoding, limits and the
memory its weights need."""

from __future__ import annotations

from pathlib import Path

from anygpt.bundles.bundle import Bundle
from anygpt.bundles.files import weight_files
from anygpt.generate.context import context_length, limits
from anygpt.model import count_parameters


def bundle_info(bundle: Bundle) -> dict:
    return {
        "bundle": bundle.name,
        "description": bundle.description,
        "vocab_size": bundle.layout.vocab_size,
        "text_vocab_size": bundle.layout.base_vocab_size,
        "layout": bundle.layout.describe(),
        "extra_tokens": bundle.layout.extra_ids,
        "prompt_format": bundle.prompt_format.name,
        "llm": {"architecture": architecture(bundle.llm), "parameters": count_parameters(bundle.llm)},
        "codecs": {m: s.name for m, s in bundle.codecs.items()},
        "decoding": bundle.decoding.to_dict(),
        "memory": memory_estimate(bundle),
        "limits": limits(context_length(bundle.llm), bundle.layout),
    }


def architecture(model) -> str:
    """The class the weights belong to, as the model folder's config names it."""
    return (getattr(model.config, "architectures", None) or [type(model).__name__])[0]


def memory_estimate(bundle: Bundle) -> dict:
    """Bytes each component needs for its weights: the LLM from its parameters at each precision,
    codecs from their loaded tensors or, before loading, their weight files on disk."""
    n = count_parameters(bundle.llm)
    out = {"llm": {"parameters": n, "fp32_gib": round(n * 4 / 2**30, 3), "bf16_gib": round(n * 2 / 2**30, 3)}}
    for modality, slot in bundle.codecs.items():
        if slot.instance is not None or slot.name.startswith("debug-"):
            codec = slot.get()
            size = sum(t.numel() * t.element_size() for t in codec.state_dict().values())
            out[modality] = {"codec": slot.name, "loaded_gib": round(size / 2**30, 4)}
        else:
            files = {}
            for value in slot.config.values():
                if isinstance(value, str) and Path(value).exists():
                    files.update(weight_files(Path(value)))
            out[modality] = {"codec": slot.name, "weights_on_disk_gib": round(sum(files.values()) / 2**30, 3)}
    return out


def print_info(info: dict) -> None:
    """`bundle_info` as the lines `anygpt info` prints."""
    print(f"bundle {info['bundle']}: {info['description']}")
    print(f"  llm {info['llm']['architecture']}, {info['llm']['parameters']:,} parameters; "
          f"vocabulary {info['vocab_size']:,} ({info['text_vocab_size']:,} text)")
    print(f"  prompt format {info['prompt_format']}")
    lim = info["limits"]
    if lim["context_tokens"]:
        longest = ", ".join(f"{k[4:-14]} {v} s" for k, v in lim.items() if k.endswith("_input_seconds"))
        print(f"  context {lim['context_tokens']} tokens (prompt + reply); longest audio input: {longest}")
    mem = info["memory"]
    parts = [f"llm {mem['llm']['fp32_gib']} GiB fp32 / {mem['llm']['bf16_gib']} GiB bf16"]
    for m, v in mem.items():
        if m != "llm":
            parts.append(f"{m} {v.get('loaded_gib', v.get('weights_on_disk_gib'))} GiB")
    print("  weights: " + ", ".join(parts))
    for name, m in info["layout"].items():
        shape = f"{m['codebooks']} x {m['codebook_size']}" if m["codebooks"] > 1 else str(m["size"])
        rate = f"{m['tokens_per_item']} per item" if m["tokens_per_item"] else f"{m['tokens_per_second']:g} per s"
        print(f"  {name:7s} codes {shape:>11s}  {rate:12s} {m['start']} {m['end']}  ids {m['first_id']}..{m['end_id']}"
              f"  codec {info['codecs'].get(name, '-')}")
