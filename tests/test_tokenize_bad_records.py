"""Bad records are skipped, counted and listed; a resume with other chunking is refused."""

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anygpt.data.pipeline.records import RawUnit, RecordError, iter_records, parse_record
from anygpt.data.pipeline.tokenize import TokenizeConfig, run_tokenize
from anygpt.errors import AnyGPTError

IMAGE = {"codes": list(range(32))}  # one debug image: 32 codes
GOOD = {"id": "good", "image": IMAGE, "text": "A red square."}
BAD = {
    "no content": {"id": "b1", "messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]},
    "messages 5": {"id": "b2", "messages": 5},
    "content [5]": {"id": "b3", "messages": [{"role": "user", "content": [5]},
                                            {"role": "assistant", "content": "x"}]},
    "chat x": {"id": "b4", "chat": "x"},
    "codes abc": {"id": "b5", "image": {"codes": "abc"}, "text": "t"},
    "ragged": {"id": "b6", "music": {"codes": [[1, 2], [3]]}, "text": "t"},
    "text 5": {"id": "b7", "segments": [{"text": 5}]},
    "message list": {"id": "b8", "chat": [{"role": "USER", "message": ["x"]}]},
    "messages of strings": {"id": "b9", "messages": ["hi", "there"]},
    "codes of floats": {"id": "b10", "image": {"codes": [1.5] * 32}, "text": "t"},
    "huge code": {"id": "b11", "image": {"codes": [2**80] * 32}, "text": "t"},
    "codes out of range": {"id": "b12", "image": {"codes": [-1] * 32}, "text": "t"},
    "role 5": {"id": "b13", "messages": [{"role": 5, "content": "x"}, {"role": "assistant", "content": "y"}]},
    "segments dict": {"id": "b14", "segments": {"text": "x"}},
    "a list": [1, 2],
}


@pytest.fixture
def raw(tmp_path):
    lines = [json.dumps(GOOD).encode()] + [json.dumps(r).encode() for r in BAD.values()]
    lines.insert(3, b'{"id": "latin1", "text": "caf\xe9"}')  # not UTF-8
    lines.append(b"{not json")
    path = tmp_path / "records.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_bad_records_are_skipped_counted_and_listed(raw, tmp_path, debug_bundle):
    m = run_tokenize(TokenizeConfig(inputs=[str(raw)], out=str(tmp_path / "u"), chunk_size=4), quiet=True,
                     bundle=debug_bundle)
    n_bad = len(BAD) + 2
    assert m["counts"]["units"] == 1 and m["counts"]["errors"] == n_bad
    assert len(m["skipped"]) == n_bad
    assert any("not UTF-8" in s for s in m["skipped"]) and any("bad JSON" in s for s in m["skipped"])
    # a rerun does not crash on them either: all chunks are done
    again = run_tokenize(TokenizeConfig(inputs=[str(raw)], out=str(tmp_path / "u"), chunk_size=4), quiet=True,
                         bundle=debug_bundle)
    assert again["counts"] == m["counts"]


def test_the_command_lists_skipped_records(raw, tmp_path, capsys):
    from anygpt.cli import main

    assert main(["data", "tokenize", str(raw), "--out", str(tmp_path / "u"), "--bundle", "debug"]) == 0
    err = capsys.readouterr().err
    assert f"skipped {len(BAD) + 2} bad records" in err and "Traceback" not in err


def test_resume_with_another_chunk_size_is_refused(raw, tmp_path, debug_bundle):
    out = str(tmp_path / "u")
    cfg = TokenizeConfig(inputs=[str(raw)], out=out, chunk_size=3, fail_after_chunks=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_tokenize(cfg, quiet=True, bundle=debug_bundle)
    for size in (2, 4, 5):
        with pytest.raises(AnyGPTError, match="--chunk-size 3"):
            run_tokenize(TokenizeConfig(inputs=[str(raw)], out=out, chunk_size=size), quiet=True, bundle=debug_bundle)
    m = run_tokenize(TokenizeConfig(inputs=[str(raw)], out=out, chunk_size=3), quiet=True, bundle=debug_bundle)
    assert m["counts"]["records"] == len(BAD) + 3


def test_resume_with_other_inputs_is_refused(raw, tmp_path, debug_bundle):
    out = str(tmp_path / "u")
    run_tokenize(TokenizeConfig(inputs=[str(raw)], out=out, chunk_size=4), quiet=True, bundle=debug_bundle)
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps(GOOD) + "\n")
    with pytest.raises(AnyGPTError, match="other inputs"):
        run_tokenize(TokenizeConfig(inputs=[str(other), str(raw)], out=out, chunk_size=4), quiet=True,
                     bundle=debug_bundle)


def test_a_broken_json_file_is_one_error(tmp_path):
    (tmp_path / "x.json").write_bytes(b"[{\xff")
    with pytest.raises(AnyGPTError, match="not a readable JSON file"):
        list(iter_records([tmp_path / "x.json"]))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "text", "image", "speech", "music", "codes", "messages", "role", "content",
                         "segments", "chat", "conversation", "message", "user", "assistant"]), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_parse_record_gives_a_unit_or_a_record_error(obj):
    try:
        unit = parse_record(obj, "k", Path("/nowhere"))
    except RecordError:
        return
    assert isinstance(unit, RawUnit) and unit.segments


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=6))
def test_iter_records_reads_any_bytes(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("r") / "x.jsonl"
    path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines))
    for key, obj, base in iter_records([path]):
        assert isinstance(key, str)
