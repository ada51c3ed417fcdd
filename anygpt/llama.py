"""A Llama causal LM's weights for inference, loaded without transformers.

Importing transformers' Llama costs about 5 s on a small CPU, most of a one-turn chat's start-up.
Inference needs only the weights and the rotary table: the decoding engine's LlamaDecoder computes
the forward itself (generate/decoder.py), and beam search is ours (generate/beams.py). This module
builds the same module tree as transformers' LlamaForCausalLM (the same names, so the safetensors
keys load as they are) with nothing in it but parameters:

    Llama                      .config (LlamaShape), .model, .lm_head, .device, .dtype
      .model.embed_tokens      Embedding (a weight)
      .model.layers[i]         .self_attn.{q,k,v,o}_proj   .mlp.{gate,up,down}_proj, .mlp.act_fn
                               .input_layernorm, .post_attention_layernorm   (.weight, .variance_epsilon)
      .model.norm
      .model.rotary_emb        (x, position_ids) -> cos, sin: transformers' default RoPE, same floats

`load_llama` returns None for any folder it does not reproduce exactly (another architecture, a RoPE
scaling, biases it does not know, pickled weights): the caller loads it with transformers instead.
Training, a full forward and saving need transformers' model: the bundle builds it on first use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from anygpt.errors import BundleError


@dataclass(frozen=True)
class LlamaShape:
    """The fields of a Llama config.json that inference reads (named as transformers names them)."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    max_position_embeddings: int
    attention_bias: bool = False
    mlp_bias: bool = False
    tie_word_embeddings: bool = False
    architectures: tuple[str, ...] = ("LlamaForCausalLM",)
    model_type: str = "llama"
    pretraining_tp: int = 1

    @staticmethod
    def from_config(c: dict) -> "LlamaShape | None":
        """The shape of a config.json, or None when it is not a plain Llama this module reproduces
        (or not a well-formed one: transformers then says what is wrong with it)."""
        rope = c.get("rope_parameters") or {}
        scaling = c.get("rope_scaling")
        if (c.get("model_type") != "llama" or c.get("hidden_act", "silu") != "silu" or c.get("pretraining_tp", 1) != 1
                or not isinstance(rope, dict) or rope.get("rope_type", "default") != "default"
                or scaling not in (None, {})):
            return None
        try:
            shape = LlamaShape._read(c, rope)
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return None
        sizes = (shape.vocab_size, shape.hidden_size, shape.intermediate_size, shape.num_hidden_layers,
                 shape.num_attention_heads, shape.num_key_value_heads, shape.head_dim, shape.max_position_embeddings)
        if not all(type(n) is int and n > 0 for n in sizes) or shape.num_attention_heads % shape.num_key_value_heads:
            return None
        return shape

    @staticmethod
    def _read(c: dict, rope: dict) -> "LlamaShape":
        heads = c["num_attention_heads"]
        return LlamaShape(
            vocab_size=c["vocab_size"], hidden_size=c["hidden_size"], intermediate_size=c["intermediate_size"],
            num_hidden_layers=c["num_hidden_layers"], num_attention_heads=heads,
            num_key_value_heads=c.get("num_key_value_heads") or heads,
            head_dim=c.get("head_dim") or c["hidden_size"] // heads, rms_norm_eps=float(c.get("rms_norm_eps", 1e-6)),
            rope_theta=float(rope.get("rope_theta", c.get("rope_theta", 10000.0))),
            max_position_embeddings=c.get("max_position_embeddings", 2048),
            attention_bias=bool(c.get("attention_bias", False)), mlp_bias=bool(c.get("mlp_bias", False)),
            tie_word_embeddings=bool(c.get("tie_word_embeddings", False)),
            architectures=tuple(c.get("architectures") or ("LlamaForCausalLM",)))


def _empty(*shape: int) -> nn.Parameter:
    """A parameter with no storage yet (the meta device; loading assigns the real tensor). Modules
    are built from these rather than nn.Linear and nn.Embedding, whose random initialisation on the
    meta device imports torch's compiler (about 1.8 s)."""
    return nn.Parameter(torch.empty(*shape, device="meta"), requires_grad=False)


class Linear(nn.Module):
    def __init__(self, fan_in: int, fan_out: int, bias: bool):
        super().__init__()
        self.weight = _empty(fan_out, fan_in)
        self.bias = _empty(fan_out) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class Embedding(nn.Module):
    def __init__(self, rows: int, width: int):
        super().__init__()
        self.weight = _empty(rows, width)


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight = _empty(size)
        self.variance_epsilon = eps


class Rotary(nn.Module):
    """transformers' default rotary embedding: the same inverse frequencies and the same ops."""

    def __init__(self, shape: LlamaShape):
        super().__init__()
        dim = shape.head_dim
        self.register_buffer("inv_freq", 1.0 / (shape.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float) / dim)),
                             persistent=False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = position_ids[..., None].float() * self.inv_freq.to(device=x.device, dtype=torch.float)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype=x.dtype), emb.sin().to(dtype=x.dtype)


class _Attention(nn.Module):
    def __init__(self, s: LlamaShape):
        super().__init__()
        q, kv = s.num_attention_heads * s.head_dim, s.num_key_value_heads * s.head_dim
        self.q_proj = Linear(s.hidden_size, q, bias=s.attention_bias)
        self.k_proj = Linear(s.hidden_size, kv, bias=s.attention_bias)
        self.v_proj = Linear(s.hidden_size, kv, bias=s.attention_bias)
        self.o_proj = Linear(q, s.hidden_size, bias=s.attention_bias)


class _MLP(nn.Module):
    def __init__(self, s: LlamaShape):
        super().__init__()
        self.gate_proj = Linear(s.hidden_size, s.intermediate_size, bias=s.mlp_bias)
        self.up_proj = Linear(s.hidden_size, s.intermediate_size, bias=s.mlp_bias)
        self.down_proj = Linear(s.intermediate_size, s.hidden_size, bias=s.mlp_bias)
        self.act_fn = nn.SiLU()


class _Layer(nn.Module):
    def __init__(self, s: LlamaShape):
        super().__init__()
        self.self_attn = _Attention(s)
        self.mlp = _MLP(s)
        self.input_layernorm = RMSNorm(s.hidden_size, s.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(s.hidden_size, s.rms_norm_eps)


class _Body(nn.Module):
    def __init__(self, s: LlamaShape):
        super().__init__()
        self.embed_tokens = Embedding(s.vocab_size, s.hidden_size)
        self.layers = nn.ModuleList(_Layer(s) for _ in range(s.num_hidden_layers))
        self.norm = RMSNorm(s.hidden_size, s.rms_norm_eps)


class Llama(nn.Module):
    """The weights of a LlamaForCausalLM under transformers' names; no forward of its own (the
    decoding engine's LlamaDecoder runs it)."""

    def __init__(self, shape: LlamaShape):
        super().__init__()
        self.config = shape
        self.model = _Body(shape)
        self.lm_head = Linear(shape.hidden_size, shape.vocab_size, bias=False)
        self.model.rotary_emb = Rotary(shape)

    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.lm_head.weight.dtype

    def get_input_embeddings(self) -> Embedding:
        return self.model.embed_tokens

    def get_output_embeddings(self) -> Linear:
        return self.lm_head

    def forward(self, *args, **kwargs):
        raise TypeError("anygpt.llama.Llama holds weights for the decoding engine; use the bundle's `model` "
                        "(transformers) for a full forward")


def load_llama(path: str | Path, *, device: str = "cpu", dtype: torch.dtype | None = None) -> Llama | None:
    """A Hugging Face Llama folder with safetensors weights -> Llama in eval mode, or None when the
    folder is not one this module reproduces (then load it with transformers)."""
    path = Path(path)
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return None
    shape = LlamaShape.from_config(config) if isinstance(config, dict) else None
    files = _weight_files(path)
    if shape is None or files is None:
        return None
    model = Llama(shape)
    state = {}
    try:
        for f in files:
            state.update(load_file(f))
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
        raise BundleError(f"{path}: cannot read the language model's weights ({e})") from None
    if shape.tie_word_embeddings:
        state.setdefault("lm_head.weight", state.get("model.embed_tokens.weight"))
    expected = {k: v.shape for k, v in model.state_dict().items()}
    if {k: v.shape for k, v in state.items()} != expected:
        return None  # keys it does not know (or lacks), or other sizes: transformers decides what they mean
    dtype = dtype or _stored_dtype(config, state)
    # fresh, aligned memory for every tensor: a matmul over a weight that sits at an odd address in
    # the file's buffer takes another kernel path and rounds differently from transformers' copy
    # (one tensor at a time, so that the file's copy and ours are not both held whole)
    for k in list(state):
        state[k] = state.pop(k).to(device=device, dtype=dtype, copy=True)
    model.load_state_dict(state, assign=True)
    if shape.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    model.model.rotary_emb.to(device)
    return model.eval()


def _weight_files(path: Path) -> list[Path] | None:
    single = path / "model.safetensors"
    if single.is_file():
        return [single]
    index = path / "model.safetensors.index.json"
    if not index.is_file():
        return None
    try:
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    except (OSError, ValueError, KeyError, AttributeError):
        return None
    files = [path / n for n in names]
    return files if all(f.is_file() and f.parent == path for f in files) else None


def _stored_dtype(config: dict, state: dict) -> torch.dtype:
    """transformers' default for a folder loaded without a dtype: the config's, else the weights'."""
    named = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    stored = config.get("dtype") or config.get("torch_dtype")
    return named.get(stored) or next(iter(state.values())).dtype
