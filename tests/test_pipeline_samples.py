"""Stage 2: templates, roles and loss masks, direction probabilities, instruction pools, mixtures."""

import math
import random

import pytest
import torch

from anygpt.data.pipeline.mixture import DatasetSpec, MixConfig, run_mix
from anygpt.data.pipeline.packing import IGNORE, collate
from anygpt.data.pipeline.samples import ASSISTANT, CONTEXT, USER, SampleBuilder
from anygpt.data.pipeline.tokenize import TokenizeConfig, run_tokenize
from anygpt.prompts import Media, load_pool, render_text


@pytest.fixture(scope="module")
def builder(debug_bundle):
    return SampleBuilder(debug_bundle.tokenizer, debug_bundle.layout, "base", "mmgpt")


def _image(seed=0):
    return Media("image", torch.randint(0, 8192, (1, 32), generator=torch.Generator().manual_seed(seed)))


def _pair_row(key="k", modality="speech", frames=10):
    return {"key": key, "kind": "pair", "seg_turn": [0, 0], "seg_role": ["", ""], "seg_modality": [modality, "text"],
            "seg_text": ["", "a low hum"], "seg_codes": [list(range(frames)), []], "seg_codebooks": [1, 0]}


def _decode(tok, ids):
    return tok.decode(ids)


def test_masking_chat_covers_exactly_the_assistant_replies(builder, debug_bundle):
    tok = debug_bundle.tokenizer
    img = _image()
    messages = [("user", ["Hello, what can you do?"]), ("assistant", ["I can look at pictures."]),
                ("user", [img, " What is this?"]), ("assistant", ["A red kite, and ", _image(1), " its twin."])]
    s = builder.chat_sample(messages)
    assert len(s.ids) == len(s.roles)
    # the ids are those of the whole rendered conversation
    fmt = builder.chat
    whole = fmt.system_pieces()
    for i, (role, content) in enumerate(messages):
        whole += fmt.user_pieces(content) if role == "user" else fmt.assistant_pieces(content)
        if role == "assistant" and i != len(messages) - 1:
            whole.append(fmt.turn_separator)
    text = render_text(whole, debug_bundle.layout)
    assert s.ids == [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]
    # assistant tokens, run by run, are exactly each reply after "[MMGPT]:" (content and <eos>)
    runs, cur = [], []
    for i, r in zip(s.ids, s.roles):
        if r == ASSISTANT:
            cur.append(i)
        elif cur:
            runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    want = [" I can look at pictures.<eos>",
            " A red kite, and " + render_text([_image(1)], debug_bundle.layout) + " its twin.<eos>"]
    assert [_decode(tok, r) for r in runs] == want
    assert _decode(tok, [i for i, r in zip(s.ids, s.roles) if r == USER]).count("[Human]") == 2
    # collation: labels are exactly the assistant tokens (each predicted from the token before it)
    row = {"input_ids": s.ids, "roles": s.roles, "doc_lens": [len(s.ids)], "doc_tags": ["chat"]}
    b = collate([row], pad_id=0, loss_on="assistant")
    labelled = b.labels[0][b.labels[0] != IGNORE].tolist()
    assert labelled == [i for i, r in zip(s.ids, s.roles) if r == ASSISTANT]
    all_b = collate([row], pad_id=0, loss_on="all")
    assert (all_b.labels[0] != IGNORE).sum() == len(s.ids) - 1


def test_masking_base_pairs_split_at_the_generation_prompt(builder, debug_bundle):
    tok, layout = debug_bundle.tokenizer, debug_bundle.layout
    img = _image()
    for direction in ("to_text", "from_text"):
        s = builder.pair(img, "A red kite.", direction, "Describe it.")
        assert s.tag == f"image/{direction}"
        pieces = builder.base.base_pieces(direction, "Describe it.", media=img, text="A red kite.")
        assert s.ids == [tok.bos_token_id] + tok(render_text(pieces, layout), add_special_tokens=False)["input_ids"] \
            + [tok.eos_token_id]  # </s> after <eos>: the release lost it for some samples
        user = _decode(tok, [i for i, r in zip(s.ids, s.roles) if r == USER])
        target = _decode(tok, [i for i, r in zip(s.ids, s.roles) if r == ASSISTANT])
        assert user.startswith("[Human]: Describe it.") and user.endswith("[MMGPT]:")
        assert target.endswith("<eos></s>")
        if direction == "to_text":
            assert target == " A red kite.<eos></s>"
        else:
            assert target.startswith(" <soim>") and "A red kite" in user
        assert s.roles[0] == CONTEXT


@pytest.mark.parametrize("text", ["a red <soim> kite", "see <eoh> here", "a </s> b", "codes <👀12><👀3>",
                                  "<sosp><🗣️5><eosp>", "[Human]: hi"])
def test_data_text_never_produces_control_or_code_ids(builder, text):
    """A record's text is refused (the mixture skips and counts it) if it would give a span, role,
    special or code token: only the sample builder places them."""
    from anygpt.errors import AnyGPTError

    with pytest.raises(AnyGPTError, match="token"):
        builder.pair(_image(), text, "to_text", "Describe it.")
    with pytest.raises(AnyGPTError, match="token"):
        builder.interleaved([text, _image()])
    builder.pair(_image(), text.replace("<", "(").replace(">", ")").replace("[", "("), "to_text", "Describe it.")


def test_masking_sample_directions_honour_their_probabilities(builder):
    """Binomial check of P(to_text) per dataset, and exact extremes (the release passed the
    probability into the wrong argument and always split 50/50)."""
    row = _pair_row()
    for p, n in ((0.2, 1500), (0.7, 1500)):
        rng = random.Random(1)
        k = sum(builder.from_row(row, rng, to_text=p).tag.endswith("to_text") for _ in range(n))
        z = (k - n * p) / math.sqrt(n * p * (1 - p))
        assert abs(z) < 4, (p, k, n)
    for p, want in ((0.0, "speech/from_text"), (1.0, "speech/to_text")):
        rng = random.Random(2)
        assert {builder.from_row(row, rng, to_text=p).tag for _ in range(200)} == {want}


def test_instructions_come_from_the_pool_of_their_direction(builder, debug_bundle):
    tok = debug_bundle.tokenizer
    rng = random.Random(0)
    seen = set()
    for _ in range(60):
        s = builder.from_row(_pair_row(), rng, to_text=0.5)
        direction = s.tag.split("/")[1]
        text = tok.decode(s.ids)
        hits = [i for i in load_pool("speech", direction) if f"[Human]: {i} " in text]
        assert len(hits) >= 1
        seen.add(hits[0])
    assert len(seen) > 10  # drawn, not fixed


def test_interleaved_document_keeps_media_in_place(builder, debug_bundle):
    pieces = ["Look: ", _image(), " and then ", _image(2), " end."]
    s = builder.interleaved(pieces)
    tok = debug_bundle.tokenizer
    assert tok.decode(s.ids) == "<s>" + render_text(pieces, debug_bundle.layout) + "</s>"
    assert set(s.roles[1:]) == {ASSISTANT}


def test_mixture_budget_shares_oversampling_and_report(tmp_path, debug_bundle):
    from anygpt.data.pipeline.example import write_example_dataset

    files = write_example_dataset(tmp_path / "raw", pairs=12, docs=2, chats=2)
    for name in ("images", "speech", "docs"):
        run_tokenize(TokenizeConfig(inputs=[str(files[name])], out=str(tmp_path / name), chunk_size=64),
                     quiet=True, bundle=debug_bundle)
    cfg = MixConfig(datasets=[DatasetSpec("images", str(tmp_path / "images"), rate=0.5, to_text=0.3),
                              DatasetSpec("speech", str(tmp_path / "speech"), rate=0.3, to_text=1.0),
                              DatasetSpec("docs", str(tmp_path / "docs"), rate=0.2)],
                    budget_tokens=30_000, val_fraction=0.2, seed=3)
    rep = run_mix(cfg, debug_bundle.tokenizer, debug_bundle.layout, tmp_path / "mix", quiet=True)
    assert rep["tokens"] >= 30_000
    for name, target in (("images", 0.5), ("speech", 0.3), ("docs", 0.2)):
        d = rep["datasets"][name]
        assert abs(d["share"] - target) < 0.02, (name, d)
        assert d["epochs"] > 1  # small sources are oversampled
    assert "speech/from_text" not in rep["by_tag"]  # to_text = 1.0 for speech
    assert set(rep["by_token_modality"]) == {"text", "image", "speech"}
    # validation holds each held-out pair in both directions, and no training unit
    from anygpt.data.pipeline import shards

    val = shards.read_table(tmp_path / "mix" / "val", "samples").to_pylist()
    train_keys = set(shards.read_table(tmp_path / "mix" / "train", "samples").column("key").to_pylist())
    assert val and not ({r["key"] for r in val} & train_keys)
    pair_val = [r for r in val if r["dataset"] != "docs"]
    assert sorted(r["tag"].split("/")[1] for r in pair_val).count("to_text") == len(pair_val) // 2
