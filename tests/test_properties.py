"""Property tests: the reply parser and the manifest reader take any input without crashing."""

import json
import warnings

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anygpt.bundles import MANIFEST, read_manifest
from anygpt.errors import BundleError
from anygpt.generate.segments import parse_reply


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_parse_reply_never_raises_and_keeps_codes_in_range(debug_bundle, data):
    b = debug_bundle
    layout = b.layout
    specials = [m.start_id for m in layout.modalities.values()] + [m.end_id for m in layout.modalities.values()]
    ids = data.draw(st.lists(st.one_of(st.integers(0, layout.vocab_size + 5), st.sampled_from(specials),
                                       st.integers(-3, 0)), max_size=80))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        segments = parse_reply(ids, layout, b.tokenizer, stop_ids=b.stop_ids)
    for seg in segments:
        if seg.modality == "text":
            assert isinstance(seg.text, str) and seg.text
        else:
            spec = layout[seg.modality].spec
            assert seg.codes.ndim == 2 and seg.codes.shape[0] == spec.num_codebooks
            if seg.codes.numel():
                assert 0 <= int(seg.codes.min()) and int(seg.codes.max()) < spec.codebook_size
            assert seg.complete == (not seg.warnings) or not seg.complete


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["name", "llm", "path", "tokenizer", "layout", "base_vocab_size", "prompt_format",
                         "codecs", "image", "weights", "config", "files", "external_files", "decoding", "extra"]),
        inner, max_size=5),
    max_leaves=15)


@settings(max_examples=200, deadline=None)
@given(json_values, st.booleans())
def test_read_manifest_gives_a_dict_or_a_bundle_error(tmp_path_factory, value, stamp):
    folder = tmp_path_factory.mktemp("m")
    if stamp and isinstance(value, dict):
        value = {**value, "anygpt_bundle": 1}
    (folder / MANIFEST).write_text(json.dumps(value))
    try:
        manifest = read_manifest(folder)
    except BundleError as e:
        assert "\n" not in str(e)
        return
    assert isinstance(manifest["llm"]["path"], str) and isinstance(manifest["layout"]["base_vocab_size"], int)
