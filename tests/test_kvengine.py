"""The decoding engine: the same ids as the former `model.generate` path, cached decoding equal to the
full forward, rows that join and leave a running batch, streaming, and chat turns that compute only
their new tokens."""

import pytest
import torch
import torch.nn.functional as F

from anygpt.chat import ChatSession
from anygpt.generate.config import PRESETS
from anygpt.generate.decoder import HFDecoder, LlamaDecoder, make_decoder
from anygpt.generate.engine import GenerationRequest, generate, generate_ids
from anygpt.generate.kvengine import Engine, Request
from anygpt.generate.reference import generate_ids_reference

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    from anygpt.bundles import load_bundle

    return load_bundle("tiny")


def mixed_requests(b):
    """Several modalities in one batch: forced image / speech / music spans, text only, free."""
    base = b.tokenizer("[Human]: go<eoh>\n[MMGPT]:", add_special_tokens=False)["input_ids"]
    reqs = [GenerationRequest(base + [b.layout[m].start_id]) for m in ("image", "speech", "music")]
    return reqs + [GenerationRequest(base, allowed_starts=()), GenerationRequest(base[:3])]


def both(b, reqs, decoding):
    kw = dict(stop_ids=b.stop_ids, pad_id=b.pad_id)
    ours = generate_ids(b.model, b.layout, reqs, decoding, **kw)
    return ours, generate_ids_reference(b.model, b.layout, reqs, decoding, **kw)


@pytest.mark.parametrize("preset,seed", [("greedy", 0), ("paper", 0), ("paper", 1), ("release", 1)])
def test_same_ids_as_the_former_path_on_debug(debug_bundle, preset, seed):
    """Greedy, seeded sampling, beams for text, constraints, four kinds of reply in one batch."""
    d = PRESETS[preset].override(max_new_tokens=100, seed=seed, max_seconds={"speech": 0.6, "music": 0.5})
    ours, former = both(debug_bundle, mixed_requests(debug_bundle), d)
    assert ours == former
    assert {len(x) for x in ours} != {0}


@pytest.mark.parametrize("preset,seed", [("greedy", 0), ("paper", 1), ("release", 0)])
def test_same_ids_as_the_former_path_on_tiny(tiny, preset, seed):
    d = PRESETS[preset].override(max_new_tokens=100, seed=seed, max_seconds={"speech": 0.6, "music": 0.5})
    ours, former = both(tiny, mixed_requests(tiny), d)
    assert ours == former
    assert any(t == tiny.layout["image"].end_id for t in ours[0])  # a whole image was produced


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("preset,seed", [("greedy", 0), ("paper", 0), ("paper", 1), ("release", 0)])
def test_same_ids_on_cuda(preset, seed):
    """On a GPU too: seeded sampling draws its noise with the GPU's generator, as generate does."""
    from anygpt.bundles import load_bundle

    b = load_bundle("tiny")
    b.model.to("cuda")
    d = PRESETS[preset].override(max_new_tokens=100, seed=seed, max_seconds={"speech": 0.6, "music": 0.5})
    ours, former = both(b, mixed_requests(b), d)
    assert ours == former


def test_sampling_without_beams_matches_too(tiny):
    d = PRESETS["paper"].override(max_new_tokens=80, seed=5, text_num_beams=1, text_do_sample=True,
                                  max_seconds={"speech": 0.6, "music": 0.5})
    ours, former = both(tiny, mixed_requests(tiny), d)
    assert ours == former


def test_cached_decoding_equals_the_full_forward(tiny):
    m = tiny.model
    ids = list(range(5, 70))
    with torch.no_grad():
        full = m(input_ids=torch.tensor([ids])).logits[0].float()  # (T, V)
    dec = LlamaDecoder(m, rows=1, length=8)  # tiny capacity: the cache has to grow on the way

    def check(states, positions):
        got = dec.logits(states.reshape(len(positions), -1))
        torch.testing.assert_close(got, full[positions], atol=1e-4, rtol=1e-4)

    check(dec.prefill(0, ids[:40], 0), [39])
    check(dec.prefill(0, ids[40:50], 40), [49])  # a chunk over a cache
    dec.prefill(1, ids[:20], 0)  # a second row of another length
    check(dec.decode(torch.tensor([ids[50], ids[20]]), torch.tensor([50, 20])), [50, 20])
    prefix = dec.export(0, ids[:51])
    dec.load(1, prefix, 51)
    check(dec.decode(torch.tensor([ids[51]] * 2), torch.tensor([51, 51])), [51, 51])
    columns = torch.tensor([3, 70, 1500])  # the output layer for a few token ids only
    states = dec.decode(torch.tensor([ids[52]] * 2), torch.tensor([52, 52]))
    torch.testing.assert_close(dec.logits(states, columns), dec.logits(states)[:, columns], atol=1e-6, rtol=1e-6)


def test_generic_decoder_gives_the_same_ids(debug_bundle):
    """Any HF causal LM: the model's own forward with a DynamicCache per row."""
    b = debug_bundle
    assert isinstance(make_decoder(b.model), LlamaDecoder)
    d = PRESETS["greedy"].override(max_new_tokens=40)
    reqs = mixed_requests(b)[:3]
    kw = dict(stop_ids=b.stop_ids, pad_id=b.pad_id)
    generic = generate_ids(b.model, b.layout, reqs, d, decoder=HFDecoder(b.model), **kw)
    assert generic == generate_ids(b.model, b.layout, reqs, d, **kw)


def run_alone(b, decoding, req: Request) -> list[int]:
    engine = Engine(b.model, b.layout, decoding, stop_ids=b.stop_ids, max_batch=1)
    h = engine.submit(req)
    engine.run()
    return h.ids


def test_rows_join_and_leave_a_running_batch(tiny):
    b = tiny
    d = PRESETS["greedy"].override(max_new_tokens=60, max_seconds={"speech": 0.5, "music": 0.3})
    base = b.tokenizer("[Human]: go<eoh>\n[MMGPT]:", add_special_tokens=False)["input_ids"]
    reqs = [Request(base + [b.layout["music"].start_id], max_new_tokens=50),
            Request(base + [b.layout["image"].start_id], max_new_tokens=20),
            Request(base, allowed_starts=(), max_new_tokens=35),
            Request(base + [b.layout["speech"].start_id], max_new_tokens=45)]
    engine = Engine(b.model, b.layout, d, stop_ids=b.stop_ids, max_batch=2)
    handles = [engine.submit(reqs[0])]
    for _ in range(7):
        engine.step()
    handles += [engine.submit(r) for r in reqs[1:]]  # join a batch that is 7 tokens in
    sizes = []
    while engine.busy:
        engine.step()
        sizes.append(len(engine.rows))
    assert max(sizes) == 2 and 1 in sizes and sizes.count(2) > 10  # rows left and others took their slots
    for req, h in zip(reqs, handles):
        assert h.done and h.ids == run_alone(b, d, req)


def test_callbacks_stream_every_token_in_order(debug_bundle):
    b = debug_bundle
    d = b.decoding.override(max_new_tokens=50, seed=2)
    got: dict[int, list[int]] = {0: [], 1: [], 2: []}
    gens = generate(b.model, b.layout, mixed_requests(b)[1:4], d, stop_ids=b.stop_ids, pad_id=b.pad_id,
                    on_token=lambda i, tok: got[i].append(tok))
    assert [got[i] for i in range(3)] == [g.ids for g in gens]


class CountingDecoder:
    """A decoder that counts the positions it computes in prefills."""

    def __init__(self, inner):
        self.inner, self.prefilled = inner, 0

    def prefill_rows(self, rows):
        self.prefilled += sum(len(ids) for _, ids, _ in rows)
        return self.inner.prefill_rows(rows)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_chat_turn_computes_only_its_new_tokens(debug_bundle):
    b = debug_bundle
    decoding = PRESETS["greedy"].override(max_new_tokens=30)
    session = ChatSession(b, decoding=decoding)
    counter = session._decoder = CountingDecoder(make_decoder(b.model))
    session.ask(["Hello there"], want="music")
    history = list(session.history)
    prompt = session.prompt_ids(["And again?"], want="music")
    before = counter.prefilled
    streamed: list[int] = []
    second = session.ask(["And again?"], want="music", on_token=streamed.append)
    # the new turn's tokens, plus at most the reply's last token and the format's end token
    assert counter.prefilled - before <= len(prompt) - len(history) + 2 < len(prompt) // 2
    # and the reply is the one the former path gives for the whole prompt
    former = generate_ids_reference(b.model, b.layout, [GenerationRequest(prompt)], decoding,
                                    stop_ids=b.stop_ids, pad_id=b.pad_id)[0]
    assert second.ids == [b.layout["music"].start_id] + former and streamed == former
    session.reset()
    assert session._cache is None


@pytest.mark.parametrize("preset", ["paper", "release"])
def test_a_beam_searched_turn_starts_from_the_history_cache(debug_bundle, monkeypatch, preset):
    """Text by beam search (the paper's settings: our search on the decoder) starts from the kept
    cache; beam sampling (the release's: HF's) computes the prompt again. Both give the former
    path's ids."""
    import anygpt.generate.engine as engine
    from anygpt.generate import beams

    b = debug_bundle
    decoding = PRESETS[preset].override(max_new_tokens=24, seed=0)
    session = ChatSession(b, decoding=decoding)
    session.ask(["Hello there"], want="music")
    prompt = session.prompt_ids(["And again?"], want="text")
    history = len(session.history)
    cached = []
    search, build = beams.beam_search, engine._beam_cache
    monkeypatch.setattr(beams, "beam_search", lambda d, p, caches, *a, **k: cached.append(caches[0].length) or search(d, p, caches, *a, **k))
    monkeypatch.setattr(engine, "_beam_cache", lambda *a: cached.append((used := build(*a)).get_seq_length()) or used)
    second = session.ask(["And again?"], want="text")
    if preset == "paper":
        assert cached and cached[0] >= history - 2  # all but the reply's last 2
    else:
        assert cached == []  # beam sampling: no cache is built for it
    former = generate_ids_reference(b.model, b.layout, [GenerationRequest(prompt, allowed_starts=())], decoding,
                                    stop_ids=b.stop_ids, pad_id=b.pad_id)[0]
    assert second.ids == former


def test_a_decode_step_gives_the_logits_of_hf_cached_forward_to_the_bit(tiny):
    """Batch 1: the same ops as transformers' Llama on the same cache, so the same float32 values."""
    from transformers import DynamicCache

    m, ids = tiny.model, list(range(5, 60))
    cache = DynamicCache(config=m.config)
    dec = LlamaDecoder(m, rows=1, length=8)
    with torch.no_grad():
        m(input_ids=torch.tensor([ids[:40]]), past_key_values=cache, use_cache=True)
        dec.prefill(0, ids[:40], 0)
        for i in range(40, 55):
            hf = m(input_ids=torch.tensor([[ids[i]]]), past_key_values=cache, use_cache=True).logits[0, -1]
            ours = dec.logits(dec.decode(torch.tensor([ids[i]]), torch.tensor([i])))[0]
            assert torch.equal(hf, ours), i


@pytest.mark.parametrize("name", ["tiny", "debug"])
@pytest.mark.parametrize("ragged", [True, False])
def test_the_scripted_decode_step_equals_the_eager_one(name, ragged, tiny, debug_bundle):
    """The TorchScript step runs the eager forward's ops in the same order: the same floats, with
    rows of equal and of different lengths (the additive mask) and across a growth of the cache."""
    m = (tiny if name == "tiny" else debug_bundle).model
    eager, scripted = LlamaDecoder(m, rows=8, length=8, script=False), LlamaDecoder(m, rows=8, length=8)
    assert eager._step_weights is None and scripted._step_weights is not None
    g = torch.Generator().manual_seed(0)
    rows = [(s, torch.randint(0, m.config.vocab_size, (20 + 3 * s * ragged,), generator=g).tolist(), 0)
            for s in range(8)]
    eager.prefill_rows(rows), scripted.prefill_rows(rows)
    lengths = torch.tensor([len(ids) for _, ids, _ in rows])
    tokens = torch.randint(0, m.config.vocab_size, (8,), generator=g)
    for step in range(60):  # past 64 positions: both caches grow
        a, b = eager.decode(tokens, lengths), scripted.decode(tokens, lengths)
        assert torch.equal(a, b), step
        tokens, lengths = eager.logits(a).argmax(-1), lengths + 1
    assert scripted.capacity > 64


def test_a_torch_without_torchscript_decodes_eagerly(tiny, monkeypatch):
    """TorchScript is deprecated: where it is gone or fails, the eager step runs, with the same values."""
    from anygpt.generate import decoder

    def gone(fn):
        raise RuntimeError("no TorchScript here")

    m, ids = tiny.model, list(range(5, 40))
    expected = LlamaDecoder(m, rows=1, length=8)
    expected.prefill(0, ids, 0)
    want = expected.decode(torch.tensor([9]), torch.tensor([len(ids)]))
    monkeypatch.setattr(torch.jit, "script", gone)
    decoder._scripted_step.cache_clear()
    try:
        dec = LlamaDecoder(m, rows=1, length=8)
        dec.prefill(0, ids, 0)
        assert decoder._scripted_step() is None
        assert torch.equal(dec.decode(torch.tensor([9]), torch.tensor([len(ids)])), want)
    finally:
        decoder._scripted_step.cache_clear()


def test_a_model_with_biases_decodes_eagerly_and_exactly():
    """Biases are outside the scripted step: such a model takes the eager forward, still equal to
    transformers' cached forward to the bit."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    m = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, attention_bias=True,
                                     mlp_bias=True)).eval()
    dec = LlamaDecoder(m, rows=1, length=8)
    assert dec._step_weights is None
    assert_decodes_as_hf(m, dec, list(range(3, 30)), prompt=20)


def assert_decodes_as_hf(m, dec, ids: list[int], *, prompt: int) -> None:
    """The decoder prefills ids[:prompt], then decodes the rest one token at a time, with the logits
    of transformers' cached forward to the bit."""
    from transformers import DynamicCache

    cache = DynamicCache(config=m.config)
    with torch.no_grad():
        m(input_ids=torch.tensor([ids[:prompt]]), past_key_values=cache, use_cache=True)
        dec.prefill(0, ids[:prompt], 0)
        for i in range(prompt, len(ids)):
            hf = m(input_ids=torch.tensor([[ids[i]]]), past_key_values=cache, use_cache=True).logits[0, -1]
            assert torch.equal(hf, dec.logits(dec.decode(torch.tensor([ids[i]]), torch.tensor([i])))[0]), i


def test_rows_prefilled_together_match_one_at_a_time(tiny):
    """Several joining rows go through the linear layers packed; each keeps to its own cache."""
    rows = [(0, list(range(5, 17)), 0), (1, list(range(30, 33)), 0), (2, [7], 0), (3, list(range(40, 80)), 0)]
    together, alone = LlamaDecoder(tiny.model, rows=4), LlamaDecoder(tiny.model, rows=4)
    states = together.prefill_rows(rows)
    expected = torch.stack([alone.prefill(*r) for r in rows])
    # matmuls over more rows round differently (up to 1.4e-5 with the stage-10 weights, whose states
    # are about 4 in size); rows swapped would be off by up to 23
    torch.testing.assert_close(states, expected, atol=1e-4, rtol=1e-4)
    tokens, lengths = torch.tensor([3, 4, 5, 6]), torch.tensor([len(ids) for _, ids, _ in rows])
    torch.testing.assert_close(together.decode(tokens, lengths), alone.decode(tokens, lengths), atol=1e-4, rtol=1e-4)


class CheckedEngine(Engine):
    """Checks at every step that the planned constraint keys are those of the current state, and that
    the span state kept one token at a time is the one read off each row's whole sequence."""

    steps = 0

    def _allowed_tokens(self):
        if self._plan:
            assert self._plan[0] == self._plan_keys(1)[0]
        for i, r in enumerate(self.rows):
            st = self.tracker.state(torch.tensor([r.seq]))
            assert (st.modality[0], st.pos[0], st.start[0]) == \
                (self.state.modality[i], self.state.pos[i], self.state.start[i])
        self.steps += 1
        return super()._allowed_tokens()


def test_planned_constraint_keys_follow_the_rows_state(tiny):
    """Spans closed by their length and by the budget, text rows near their budget, rows joining and
    leaving: the keys planned ahead are always those computed afresh."""
    b = tiny
    base = b.tokenizer("[Human]: go<eoh>\n[MMGPT]:", add_special_tokens=False)["input_ids"]
    span_starts = {m.start_id for m in b.layout.modalities.values()}
    opened = False
    for seed in range(12):  # until a seed with which the last, free text row opens a span
        d = PRESETS["paper"].override(max_new_tokens=90, seed=seed, text_num_beams=1, text_do_sample=True,
                                      max_seconds={"speech": 0.5, "music": 0.3})
        torch.manual_seed(d.seed)
        engine = CheckedEngine(b.model, b.layout, d, stop_ids=b.stop_ids, max_batch=3)
        starts = [[b.layout[m].start_id] for m in ("image", "speech", "music")] + [[], []]
        handles = [engine.submit(Request(base + s, max_new_tokens=n, span_budget=n))
                   for s, n in zip(starts, (45, 30, 61, 23, 90))]
        engine.run()
        assert engine.steps > 50 and all(h.done for h in handles)
        assert b.layout["image"].end_id in handles[0].ids  # an image closed at its length
        music = handles[2].ids
        assert len(music) == 61 and music[-1] == b.layout["music"].end_id  # a span closed by the budget
        if span_starts & set(handles[4].ids):
            opened = True
            break
    assert opened  # a text row opened a span (and the keys kept up with it)


def test_decoders_of_one_model_share_its_prepared_weights_until_they_change():
    """The joined projections and the gathered output rows are made once per model (a generate call
    builds its own decoder and column tensors); a change to the weights in place makes them again."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    m = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2)).eval()
    a, b = LlamaDecoder(m, rows=1, length=8), LlamaDecoder(m, rows=1, length=8)
    assert a.layers[0].qkv[0] is b.layers[0].qkv[0] and a.current()
    states = torch.randn(2, 64)
    cols_a, cols_b = torch.tensor([3, 9, 40]), torch.tensor([3, 9, 40])  # equal sets, two tensors
    assert torch.equal(a.logits(states, cols_a), b.logits(states, cols_b))
    assert a._heads[id(cols_a)][1] is b._heads[id(cols_b)][1]  # gathered once
    assert torch.equal(a.logits(states, cols_a), F.linear(states, m.lm_head.weight[cols_a]))

    with torch.no_grad():
        m.model.layers[1].mlp.up_proj.weight.mul_(1.5)
        m.lm_head.weight.add_(0.01)
    assert not a.current()
    c = LlamaDecoder(m, rows=1, length=8)
    assert c.current() and c.layers[0].qkv[0] is not a.layers[0].qkv[0]
    assert torch.equal(c.logits(states, torch.tensor([3, 9, 40])), F.linear(states, m.lm_head.weight[cols_a]))
    assert_decodes_as_hf(m, c, list(range(3, 20)), prompt=12)


def test_gathered_output_rows_stay_within_their_memory_budget(monkeypatch):
    """The output-layer rows kept per model take at most HEAD_CACHE_BYTES: the oldest set goes first;
    a set larger than the budget is gathered for its decoder only."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from anygpt.generate import decoder

    m = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                     num_attention_heads=4, num_key_value_heads=2)).eval()
    monkeypatch.setattr(decoder, "HEAD_CACHE_BYTES", 10 * 64 * 4)  # ten rows of width 64, float32
    dec = LlamaDecoder(m, rows=1, length=8)
    kept = dec._weights.heads
    states = torch.randn(1, 64)
    for cols in ([1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11]):
        dec.logits(states, torch.tensor(cols))
    assert len(kept) == 2 and dec._weights.held == 7 * 64 * 4  # the first set made room
    big = torch.arange(20, 40)
    assert torch.equal(dec.logits(states, big), F.linear(states, m.lm_head.weight[big]))
    assert len(kept) == 2 and dec._weights.held <= 10 * 64 * 4
