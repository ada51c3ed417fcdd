import pytest
import torch

from anygpt.bundles.debug import build_text_tokenizer
from anygpt.errors import AnyGPTError, LayoutError
from anygpt.layout import official_layout_config
from anygpt.model import expand_vocabulary


def tiny_llama(vocab, tie=False):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=tie,
                                        initializer_range=0.02))


@pytest.mark.parametrize("init", ["random", "mean"])
def test_expand_vocabulary(init):
    tok = build_text_tokenizer()
    base = len(tok)
    model = tiny_llama(base)
    old_in = model.get_input_embeddings().weight.detach().clone()
    old_out = model.get_output_embeddings().weight.detach().clone()
    layout = expand_vocabulary(model, tok, official_layout_config(), init=init, seed=3)
    assert len(tok) == layout.vocab_size == base + 4 + 8194 + 1026 + 8194
    w_in, w_out = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert w_in.shape == w_out.shape == (layout.vocab_size, 32)
    assert model.config.vocab_size == layout.vocab_size
    assert torch.equal(w_in[:base], old_in) and torch.equal(w_out[:base], old_out), "text rows untouched"
    new = w_in[base:]
    if init == "mean":
        assert torch.allclose(new, old_in.mean(0).expand_as(new))
        assert torch.allclose(w_out[base:], old_out.mean(0).expand_as(new))
    else:
        assert abs(new.std().item() - 0.02) < 0.002 and abs(new.mean().item()) < 0.002
        assert not torch.equal(w_in[base:], w_out[base:]), "input and output rows drawn separately"
    # the expanded model runs on the new ids
    ids = torch.tensor([[1, layout["image"].start_id, layout["image"].first_id, layout["music"].end_id]])
    assert model(ids).logits.shape == (1, 4, layout.vocab_size)


def test_expand_tied_embeddings_and_refuse_twice():
    tok = build_text_tokenizer()
    model = tiny_llama(len(tok), tie=True)
    layout = expand_vocabulary(model, tok, official_layout_config())
    assert model.get_output_embeddings().weight.shape[0] == layout.vocab_size
    with pytest.raises(LayoutError, match="already has layout tokens"):
        expand_vocabulary(model, tok, official_layout_config())
    with pytest.raises(AnyGPTError, match="unknown embedding init"):
        expand_vocabulary(tiny_llama(10), build_text_tokenizer(), official_layout_config(), init="zeros")
