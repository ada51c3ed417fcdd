import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from anygpt.generate.config import PRESETS, DecodingConfig, SamplingConfig
from anygpt.generate.engine import GenerationRequest, generate_ids
from anygpt.generate.processors import ModalitySampler, SpanConstraint, SpanTracker
from anygpt.layout import LayoutConfig, ModalitySpec, VocabLayout, official_layout_config

# A small layout so that random walks reach every boundary often.
SMALL = VocabLayout(LayoutConfig(
    modalities=(ModalitySpec("image", "i", "<si>", "<ei>", 16, 1, tokens_per_item=4),
                ModalitySpec("speech", "s", "<ss>", "<es>", 8, 1, frame_rate=10.0),
                ModalitySpec("music", "m", "<sm>", "<em>", 4, 4, frame_rate=5.0)),
    tokens_before=("<eos>",)), 20)


def check_valid(ids: list[int], layout: VocabLayout, *, max_seconds: dict, allowed_starts=None,
                prompt_open: str | None = None) -> None:
    """An independent reading of the span rules (a plain loop, not the processors' tensor code)."""
    code_of = {}
    for name, m in layout.modalities.items():
        for k in range(m.spec.vocab_size):
            code_of[m.first_id + k] = (name, k)
    starts = {m.start_id: n for n, m in layout.modalities.items()}
    ends = {m.end_id: n for n, m in layout.modalities.items()}
    span, body = prompt_open, []
    for i, tok in enumerate(ids):
        if span is None:
            assert tok not in code_of, f"code outside a span at {i}"
            assert tok not in ends, f"end token outside a span at {i}"
            if tok in starts:
                assert allowed_starts is None or starts[tok] in allowed_starts, "disallowed span opened"
                span, body = starts[tok], []
            continue
        spec = layout[span].spec
        if tok == layout[span].end_id:
            if spec.tokens_per_item is not None:
                assert len(body) == spec.tokens_per_item, "fixed span closed at the wrong length"
            else:
                assert body and len(body) % spec.num_codebooks == 0, "span closed on a partial frame"
                cap = spec.max_span_tokens(max_seconds.get(span))
                assert cap is None or len(body) <= cap, "span longer than its maximum"
            span = None
            continue
        assert tok in code_of and code_of[tok][0] == span, f"foreign token {tok} inside a {span} span"
        layer = code_of[tok][1] // spec.codebook_size
        assert layer == len(body) % spec.num_codebooks, "code of the wrong codebook layer"
        body.append(tok)
        if spec.tokens_per_item is not None:
            assert len(body) <= spec.tokens_per_item
    assert span is None, "a span was left open when the budget ended"


def random_walk(layout, constraint, steps, seed, prefix=(), bias=3.0):
    """Generate `steps` tokens by argmax over random logits under the constraint."""
    gen = torch.Generator().manual_seed(seed)
    ids = list(prefix)
    special = torch.tensor([m.start_id for m in layout.modalities.values()]
                           + [m.end_id for m in layout.modalities.values()])
    constraint.set_budget(torch.tensor([len(ids) + steps]))
    for _ in range(steps):
        scores = torch.randn(1, layout.vocab_size, generator=gen)
        scores[0, special] += bias * torch.rand(len(special), generator=gen)  # make boundaries likely
        scores = constraint(torch.tensor([ids]), scores)
        ids.append(int(scores.argmax()))
    return ids[len(prefix):]


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), steps=st.integers(1, 60), speech_s=st.floats(0.1, 3.0),
       music_s=st.floats(0.2, 4.0), starts=st.sampled_from([None, ("music",), ("image", "speech"), ()]),
       bias=st.floats(0.0, 6.0))
def test_constrained_decoding_never_emits_an_invalid_span(seed, steps, speech_s, music_s, starts, bias):
    max_seconds = {"speech": speech_s, "music": music_s}
    constraint = SpanConstraint(SMALL, max_seconds=max_seconds,
                                allowed_starts=None if starts is None else list(starts))
    out = random_walk(SMALL, constraint, steps, seed, prefix=[0, 1], bias=bias)
    check_valid(out, SMALL, max_seconds=max_seconds, allowed_starts=starts)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), steps=st.integers(2, 80), opened=st.sampled_from(["image", "music", "speech"]))
def test_constraint_completes_a_span_opened_by_the_prompt(seed, steps, opened):
    """A prompt that ends with a forced start token (--want) gets a valid span when the budget allows."""
    spec = SMALL[opened].spec
    steps = max(steps, (spec.tokens_per_item or spec.num_codebooks) + 1)
    max_seconds = {"speech": 2.0, "music": 2.0}
    constraint = SpanConstraint(SMALL, max_seconds=max_seconds)
    out = random_walk(SMALL, constraint, steps, seed, prefix=[0, SMALL[opened].start_id])
    check_valid(out, SMALL, max_seconds=max_seconds, prompt_open=opened)


def test_official_layout_rules_under_random_logits():
    layout = VocabLayout(official_layout_config(), 100)
    max_seconds = {"speech": 0.5, "music": 0.3}
    constraint = SpanConstraint(layout, max_seconds=max_seconds)
    for seed in range(4):
        out = random_walk(layout, constraint, 150, seed, prefix=[5], bias=12.0)
        check_valid(out, layout, max_seconds=max_seconds)
        assert any(t >= 100 for t in out), "the walk should open spans"


def test_span_tracker_reads_state_with_left_padding():
    t = SpanTracker(SMALL)
    im, mu = SMALL["image"], SMALL["music"]
    ids = torch.tensor([
        [0, 0, 0, 5, im.start_id, im.first_id, im.first_id + 3],  # left padded, 2 image codes in
        [5, mu.start_id, mu.first_id, mu.end_id, 6, 7, 8],  # closed span: text
        [mu.start_id, mu.first_id, mu.first_id + 4, mu.first_id + 8, mu.first_id + 12, mu.first_id, 3],
    ])
    st_ = t.state(ids)
    assert st_.modality.tolist() == [0, -1, 2]
    assert st_.pos[0] == 2 and st_.pos[2] == 6 and st_.start.tolist() == [4, -1, 0]


def test_repetition_penalty_counts_only_the_current_span():
    mu = SMALL["music"]
    decoding = DecodingConfig(music=SamplingConfig(repetition_penalty=2.0, do_sample=True))
    sampler = ModalitySampler(SMALL, decoding)
    ids = torch.tensor([[mu.first_id + 1, 3, mu.start_id, mu.first_id + 2]])  # code 1 before the span
    scores = torch.ones(1, SMALL.vocab_size)
    out = sampler(ids, scores)
    assert out[0, mu.first_id + 2] == 0.5  # seen inside the span: penalised
    assert out[0, mu.first_id + 1] == 1.0  # seen only before the span: untouched
    assert out[0, 3] == 1.0


def test_sampling_settings_switch_with_the_span():
    im = SMALL["image"]
    decoding = DecodingConfig(text=SamplingConfig(do_sample=False), image=SamplingConfig(top_p=0.5))
    sampler = ModalitySampler(SMALL, decoding)
    scores = torch.log(torch.tensor([[0.4, 0.3, 0.2, 0.1] + [1e-9] * (SMALL.vocab_size - 4)]))
    text_row = sampler(torch.tensor([[5, 6]]), scores.clone())
    assert torch.isfinite(text_row).sum() == 1 and torch.isfinite(text_row[0, 0])  # greedy: argmax only
    image_row = sampler(torch.tensor([[5, im.start_id]]), scores.clone())
    assert torch.isfinite(image_row[0, :4]).tolist() == [True, True, False, False]  # top-p 0.5 keeps 0.4+0.3
    assert torch.isinf(image_row[0, 4:]).all()


def test_presets_follow_table_9():
    paper = PRESETS["paper"]
    assert paper.text.num_beams == 5 and not paper.text.do_sample
    assert paper.image.top_p == 0.7 and paper.speech.top_p == 0.7
    assert paper.music.top_p == 1.0 and paper.music.repetition_penalty == 1.15
    assert paper.override(music_top_p=0.9).music.top_p == 0.9


def test_greedy_without_constraints_equals_plain_generate(debug_bundle):
    from transformers import GenerationConfig

    b = debug_bundle
    prompts = [b.tokenizer("[Human]: a red circle<eoh>\n[MMGPT]:")["input_ids"],
               b.tokenizer("[Human]: hi<eoh>\n[MMGPT]:")["input_ids"]]
    decoding = PRESETS["greedy"].override(constrained=False, max_new_tokens=40)
    ours = generate_ids(b.model, b.layout, [GenerationRequest(p) for p in prompts], decoding,
                        stop_ids=[], pad_id=b.pad_id)
    width = max(map(len, prompts))
    ids = torch.tensor([[b.pad_id] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    plain = b.model.generate(input_ids=ids, attention_mask=mask, generation_config=GenerationConfig(
        max_new_tokens=40, do_sample=False, pad_token_id=b.pad_id, eos_token_id=None))
    assert ours == plain[:, width:].tolist()


@pytest.mark.parametrize("preset", ["paper", "release"])
def test_model_generation_obeys_spans_for_each_wanted_modality(debug_bundle, preset):
    b = debug_bundle
    decoding = PRESETS[preset].override(max_new_tokens=120, seed=1, max_seconds={"speech": 0.6, "music": 0.5})
    base = b.tokenizer("[Human]: go<eoh>\n[MMGPT]:", add_special_tokens=False)["input_ids"]
    requests = [GenerationRequest(base + [b.layout[m].start_id]) for m in ("image", "speech", "music")]
    requests.append(GenerationRequest(base, allowed_starts=()))
    out = generate_ids(b.model, b.layout, requests, decoding, stop_ids=b.stop_ids, pad_id=b.pad_id)
    for req, ids, opened in zip(requests, out, ["image", "speech", "music", None]):
        body = [t for t in ids if t not in b.stop_ids]
        check_valid(body, b.layout, max_seconds=decoding.max_seconds, allowed_starts=req.allowed_starts,
                    prompt_open=opened)
        assert len(ids) <= 120
    image_codes = [t for t in out[0] if b.layout["image"].first_id <= t < b.layout["image"].start_id]
    assert len(image_codes) >= 32


def test_seeded_sampling_is_reproducible(debug_bundle):
    b = debug_bundle
    decoding = PRESETS["paper"].override(max_new_tokens=50, seed=3, text_num_beams=1, text_do_sample=True)
    p = b.tokenizer("[Human]: music<eoh>\n[MMGPT]: <somu>", add_special_tokens=False)["input_ids"]
    run = lambda: generate_ids(b.model, b.layout, [GenerationRequest(p)], decoding, stop_ids=b.stop_ids, pad_id=b.pad_id)  # noqa: E731
    assert run() == run()
