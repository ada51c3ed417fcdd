"""anygpt.llama: a Llama's weights without transformers, and bundles that run on them."""

import dataclasses
import json
import shutil
import subprocess
import sys

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from anygpt.bundles import load_bundle
from anygpt.bundles.load import packaged_bundles
from anygpt.generate.decoder import LlamaDecoder
from anygpt.llama import Llama, load_llama
from anygpt.model import load_causal_lm

TINY_LLM = packaged_bundles()["tiny"] / "llm"


def _same_logits(a, b, ids=tuple(range(5, 60))):
    """Prefill and one batched decode step on decoders over each model: equal to the bit."""
    da, db = LlamaDecoder(a, rows=3), LlamaDecoder(b, rows=3)
    assert torch.equal(da.logits(da.prefill(0, list(ids), 0)[None]), db.logits(db.prefill(0, list(ids), 0)[None]))
    for d in (da, db):
        d.gather(torch.zeros(3, dtype=torch.long), len(ids))
    tokens, lengths = torch.tensor([7, 8, 9]), torch.full((3,), len(ids))
    assert torch.equal(da.logits(da.decode(tokens, lengths)), db.logits(db.decode(tokens, lengths)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_the_tiny_llm_gives_transformers_logits_to_the_bit(dtype):
    ours = load_llama(TINY_LLM, dtype=dtype)
    hf = load_causal_lm(TINY_LLM, dtype={torch.float32: "fp32", torch.float16: "fp16"}[dtype])
    assert isinstance(ours, Llama) and ours.dtype == dtype
    theirs = hf.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in ours.state_dict().items())
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in hf.parameters())
    assert not any(p.requires_grad for p in ours.parameters())
    _same_logits(ours, hf)


def _random_llama(tmp_path, **config):
    torch.manual_seed(0)
    shape = dict(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=256)
    model = LlamaForCausalLM(LlamaConfig(**{**shape, **config})).eval()
    return model


def test_tied_embeddings_and_sharded_weights(tmp_path):
    model = _random_llama(tmp_path, tie_word_embeddings=True)
    model.save_pretrained(tmp_path / "m", max_shard_size="100KB")
    assert (tmp_path / "m" / "model.safetensors.index.json").is_file()
    ours = load_llama(tmp_path / "m", dtype=torch.float32)
    assert ours.lm_head.weight is ours.model.embed_tokens.weight
    _same_logits(ours, model, ids=range(3, 40))


@pytest.mark.parametrize("change", [{"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, {"model_type": "mistral"},
                                    {"hidden_act": "gelu"}, {"pretraining_tp": 2}, {"hidden_size": "abc"},
                                    {"num_hidden_layers": -1}, {"num_key_value_heads": 4}, {"rope_parameters": 5}])
def test_configs_it_does_not_reproduce_are_left_to_transformers(tmp_path, change):
    shutil.copytree(TINY_LLM, tmp_path / "m")
    config = json.loads((TINY_LLM / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, **change}))
    assert load_llama(tmp_path / "m") is None


def test_a_config_without_its_sizes_is_left_to_transformers(tmp_path):
    shutil.copytree(TINY_LLM, tmp_path / "m")
    config = json.loads((TINY_LLM / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "intermediate_size": 256}))
    assert load_llama(tmp_path / "m") is None  # weights of other sizes than the config says
    del config["hidden_size"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    assert load_llama(tmp_path / "m") is None


def test_pickled_or_unexpected_weights_are_left_to_transformers(tmp_path):
    model = _random_llama(tmp_path)
    (tmp_path / "bin").mkdir()
    model.config.to_json_file(tmp_path / "bin" / "config.json")
    torch.save(model.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    assert load_llama(tmp_path / "bin") is None
    model = _random_llama(tmp_path, attention_bias=True)
    model.save_pretrained(tmp_path / "bias")
    config = json.loads((tmp_path / "bias" / "config.json").read_text())
    (tmp_path / "bias" / "config.json").write_text(json.dumps({**config, "attention_bias": False}))
    assert load_llama(tmp_path / "bias") is None  # bias tensors the config does not announce


def test_the_tiny_bundle_runs_on_it_and_builds_transformers_model_on_first_use():
    b = load_bundle("tiny")
    assert isinstance(b.light, Llama) and b.llm is b.light
    assert "model" not in b.__dict__
    hf = b.model  # built now, from the same folder
    assert type(hf).__name__ == "LlamaForCausalLM" and b.llm is b.light
    _same_logits(b.light, hf)
    swapped = dataclasses.replace(b, name="other")
    assert swapped.light is None and swapped.llm is hf  # a model given explicitly is the one that runs


def test_a_chat_turn_on_the_tiny_bundle_does_not_import_transformers():
    code = ("import sys; from anygpt.bundles import load_bundle; from anygpt.chat import ChatSession; "
            "b = load_bundle('tiny'); r = ChatSession(b).ask(['Describe a red circle.'], want='text'); "
            "assert r.ids, r; print(sorted(m for m in sys.modules if m.split('.')[0] == 'transformers'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
