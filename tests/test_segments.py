import warnings

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from anygpt.generate.segments import parse_reply


def text_ids(b, text):
    return b.tokenizer(text, add_special_tokens=False)["input_ids"]


def test_reply_with_text_and_every_modality(debug_bundle):
    b = debug_bundle
    L = b.layout
    image = torch.arange(32)[None]
    music = torch.tensor([[1, 2], [3, 4], [5, 6], [7, 8]])
    speech = torch.tensor([[9, 9, 9]])
    ids = (text_ids(b, " Here:") + L.span_ids("image", image).tolist() + text_ids(b, " and")
           + L.span_ids("music", music).tolist() + L.span_ids("speech", speech).tolist()
           + b.token_ids(["<eos>"]) + text_ids(b, "ignored after the stop"))
    segs = parse_reply(ids, L, b.tokenizer, stop_ids=b.stop_ids)
    assert [s.modality for s in segs] == ["text", "image", "text", "music", "speech"]
    assert segs[0].text == "Here:" and segs[2].text == "and"
    assert torch.equal(segs[1].codes, image) and torch.equal(segs[3].codes, music)
    assert torch.equal(segs[4].codes, speech)
    assert all(s.complete and not s.warnings for s in segs)


def test_unclosed_span_and_partial_frame(debug_bundle):
    b = debug_bundle
    L = b.layout
    body = L.span_ids("music", torch.zeros(4, 3, dtype=torch.long)).tolist()[:-3]  # no end, 2.5 frames
    segs = parse_reply(body, L, b.tokenizer)
    assert len(segs) == 1 and segs[0].modality == "music"
    assert segs[0].codes.shape == (4, 2) and not segs[0].complete
    assert any("not closed" in w for w in segs[0].warnings)
    assert any("partial frame" in w for w in segs[0].warnings)


def test_image_with_wrong_count_is_kept_but_incomplete(debug_bundle):
    b = debug_bundle
    ids = b.layout.span_ids("image", torch.arange(31)[None]).tolist()
    (seg,) = parse_reply(ids, b.layout, b.tokenizer)
    assert seg.num_codes == 31 and not seg.complete
    assert "expected 32" in seg.warnings[0]


def test_interrupted_span_and_stray_tokens(debug_bundle):
    b = debug_bundle
    L = b.layout
    im, sp = L["image"], L["speech"]
    ids = [im.start_id, im.first_id + 1, im.first_id + 2] + text_ids(b, " oops") + [sp.end_id, sp.first_id]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        segs = parse_reply(ids, L, b.tokenizer)
    assert [s.modality for s in segs] == ["image", "text"]
    assert segs[0].num_codes == 2 and not segs[0].complete and segs[1].text == "oops"
    assert sum("stray" in str(w.message) for w in caught) == 2


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 17929), max_size=80))
def test_parsing_never_crashes(debug_bundle, ids):
    b = debug_bundle
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        segs = parse_reply(ids, b.layout, b.tokenizer, stop_ids=b.stop_ids)
    for s in segs:
        if s.modality != "text":
            spec = b.layout[s.modality].spec
            assert s.codes.shape[0] == spec.num_codebooks
            assert s.codes.numel() == 0 or int(s.codes.max()) < spec.codebook_size
