"""Our beam search (generate/beams.py) against transformers' `model.generate` beam search."""

import pytest
import torch

from anygpt.bundles import load_bundle
from anygpt.generate import beams
from anygpt.generate import engine as E
from anygpt.generate.config import PRESETS, SamplingConfig

TEXTS = ["a red circle", "Describe this picture please", "hello there", "What is this music?",
         "two blue squares on grey", "sing me a song", "x"]


@pytest.fixture(scope="module", params=["debug", "tiny"])
def bundle(request):
    return load_bundle(request.param)


def _prompts(b):
    return [b.tokenizer(f"[Human]: {t}<eoh>\n[MMGPT]:", add_special_tokens=False)["input_ids"] for t in TEXTS]


def _search(b, prompts, *, own: bool, num_beams: int = 4, max_new_tokens: int = 30):
    """One beam phase over `prompts` (one cohort): each row's new ids."""
    decoding = PRESETS["greedy"].override(text=SamplingConfig(do_sample=False, num_beams=num_beams),
                                          max_new_tokens=max_new_tokens)
    eos = b.stop_ids + [m.start_id for m in b.layout.modalities.values()]
    vocab = b.model.get_output_embeddings().weight.shape[0]
    rows = [E.Row(list(p), None) for p in prompts]
    E.run_beam_phase(b.model, rows, decoding, eos, b.stop_ids, b.pad_id, E.span_constraint(b.layout, decoding, None, vocab),
                     lambda r: None, search="ours" if own else "generate")
    return [r.ids[len(p):] for r, p in zip(rows, prompts)]


def test_each_row_gets_the_ids_of_generates_beam_search(bundle):
    prompts = _prompts(bundle)
    lengths = []
    for p in prompts:
        ours = _search(bundle, [p], own=True)[0]
        assert ours == _search(bundle, [p], own=False)[0]
        lengths.append(len(ours))
    # the searches ran past their first token (a reply may open a span at once: "What is this music?")
    assert sum(n > 1 for n in lengths) > len(prompts) // 2, lengths


def test_rows_searched_together_are_independent(bundle):
    prompts = _prompts(bundle)
    alone = [_search(bundle, [p], own=True)[0] for p in prompts]
    assert _search(bundle, prompts, own=True) == alone


@pytest.mark.parametrize("num_beams,max_new_tokens", [(2, 5), (5, 12), (3, 1)])
def test_other_widths_and_budgets(debug_bundle, num_beams, max_new_tokens):
    """Short budgets end on the length limit (every hypothesis finished there), not on a stop."""
    prompts = _prompts(debug_bundle)[:3]
    for p in prompts:
        kw = dict(num_beams=num_beams, max_new_tokens=max_new_tokens)
        ours = _search(debug_bundle, [p], own=True, **kw)[0]
        assert ours == _search(debug_bundle, [p], own=False, **kw)[0]
        assert 1 <= len(ours) <= max_new_tokens


def test_beam_sampling_and_a_repetition_penalty_stay_with_transformers(debug_bundle):
    model = debug_bundle.model
    assert beams.supports(model, do_sample=False, repetition_penalty=1.0)
    assert not beams.supports(model, do_sample=True, repetition_penalty=1.0)
    assert not beams.supports(model, do_sample=False, repetition_penalty=1.2)
    assert not beams.supports(torch.nn.Linear(2, 2), do_sample=False, repetition_penalty=1.0)
