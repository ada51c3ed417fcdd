"""Stage 1: raw records -> unit shards. Counts, manifest, codes equal to the codec's, resumption after
a crash without lost or duplicated records, and the Ray Data path."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from anygpt.data.pipeline import shards
from anygpt.data.pipeline.example import write_example_dataset
from anygpt.data.pipeline.tokenize import TokenizeConfig, _RayChunkWorker, run_tokenize


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    folder = tmp_path_factory.mktemp("raw")
    files = write_example_dataset(folder, pairs=10, docs=2, chats=3)
    # one broken record of each sort: missing media file, bad JSON, unknown layout
    with open(files["images"], "a", encoding="utf-8") as f:
        f.write(json.dumps({"id": "missing", "image": "media/nope.png", "text": "gone"}) + "\n")
        f.write("{not json\n")
        f.write(json.dumps({"id": "odd", "what": 1}) + "\n")
    return files


def _keys(folder: Path) -> list[str]:
    return shards.read_table(folder, "units", columns=["key"]).column("key").to_pylist()


def test_tokenize_manifest_counts_and_codes(raw, tmp_path, debug_bundle):
    out = tmp_path / "units"
    cfg = TokenizeConfig(inputs=[str(raw["images"]), str(raw["chats"]), str(raw["anyinstruct"])],
                         out=str(out), chunk_size=4)
    m = run_tokenize(cfg, quiet=True, bundle=debug_bundle)
    assert m["stage"] == "units" and m["bundle"] == "debug"
    assert m["codecs"]["image"]["name"] == "debug-image"
    assert m["layout"]["base_vocab_size"] == debug_bundle.layout.base_vocab_size
    c = m["counts"]
    assert c["records"] == 13 + 3 + 3 and c["errors"] == 3 and c["units"] == 16
    assert c["by_kind"] == {"pair": 10, "chat": 6}
    assert len(set(_keys(out))) == 16
    # codes in the shard are exactly what the codec makes of the file
    from anygpt.chat import encode_media

    row = shards.read_table(out, "units").to_pylist()[0]
    assert row["kind"] == "pair" and row["seg_modality"] == ["image", "text"]
    want = encode_media(debug_bundle, "image", raw["images"].parent / "media" / "img0.png").codes
    assert np.array_equal(np.array(row["seg_codes"][0]).reshape(1, -1), want.numpy())
    assert row["media_tokens"] == 32 + 2
    # AnyInstruct inline media became an image segment inside the assistant turn
    any_rows = [r for r in shards.read_table(out, "units").to_pylist() if r["key"].startswith("anyinstruct")]
    assert any_rows and any_rows[0]["seg_role"] == ["user", "assistant", "assistant"]
    assert any_rows[0]["seg_modality"] == ["text", "text", "image"]


def test_tokenize_resume_after_crash_loses_and_duplicates_nothing(raw, tmp_path, debug_bundle):
    out = tmp_path / "units"
    cfg = TokenizeConfig(inputs=[str(raw["images"]), str(raw["speech"])], out=str(out), chunk_size=3,
                         dataset="sounds", fail_after_chunks=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_tokenize(cfg, quiet=True, bundle=debug_bundle)
    assert len(shards.done_shards(out)) == 2
    (out / ".shard-00002.parquet.deadbeef.tmp").write_bytes(b"half a file")  # a write cut short
    cfg.fail_after_chunks = None
    m = run_tokenize(cfg, quiet=True, bundle=debug_bundle)
    keys = _keys(out)
    assert len(keys) == len(set(keys)) == m["counts"]["units"] == 20
    # the same job in one go gives the same rows in the same order
    ref = tmp_path / "ref"
    run_tokenize(TokenizeConfig(inputs=cfg.inputs, out=str(ref), chunk_size=3, dataset="sounds"), quiet=True,
                 bundle=debug_bundle)
    assert _keys(ref) == keys
    assert shards.read_table(ref, "units").equals(shards.read_table(out, "units"))


def test_tokenize_in_process_encodes_on_one_thread_like_the_workers(raw, tmp_path, debug_bundle, monkeypatch):
    """Codes must not depend on --workers: the in-process path encodes on one thread, as each worker
    process does, and gives the caller its thread count back."""
    import torch

    from anygpt.data.pipeline import tokenize

    seen, original = [], tokenize.encode_chunk
    monkeypatch.setattr(tokenize, "encode_chunk", lambda *a: seen.append(torch.get_num_threads()) or original(*a))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_tokenize(TokenizeConfig(inputs=[str(raw["speech"])], out=str(tmp_path / "u"), chunk_size=4),
                     quiet=True, bundle=debug_bundle)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_tokenize_ray_worker_batch_interface(raw, tmp_path):
    """The Ray actor's batch function, called the way Ray Data calls it (no cluster needed)."""
    from anygpt.data.pipeline.records import iter_records

    cfg = TokenizeConfig(inputs=[str(raw["speech"])], out=str(tmp_path / "u"), chunk_size=5)
    records = [(k, o, str(b)) for k, o, b in iter_records([raw["speech"]])][:5]
    worker = _RayChunkWorker(cfg.__dict__)
    out = worker({"index": np.array([0]), "payload": np.array([json.dumps(records)])})
    stats = json.loads(out["stats"][0])
    assert stats["rows"] == 5 and stats["index"] == 0
    assert pq.read_table(tmp_path / "u" / "shard-00000.parquet").num_rows == 5


@pytest.mark.slow
def test_tokenize_ray_two_local_workers(raw, tmp_path, debug_bundle):
    pytest.importorskip("ray")
    out = tmp_path / "units"
    cfg = TokenizeConfig(inputs=[str(raw["images"]), str(raw["music"])], out=str(out), chunk_size=4,
                         dataset="d", engine="ray", workers=2)
    m = run_tokenize(cfg, quiet=True)
    local = tmp_path / "local"
    run_tokenize(TokenizeConfig(inputs=cfg.inputs, out=str(local), chunk_size=4, dataset="d"), quiet=True,
                 bundle=debug_bundle)
    assert m["counts"] == shards.read_manifest(local)["counts"]
    assert shards.read_table(out, "units").equals(shards.read_table(local, "units"))


@pytest.mark.slow
def test_tokenize_local_process_pool_resume(raw, tmp_path, debug_bundle):
    out = tmp_path / "units"
    inputs = [str(raw["images"]), str(raw["music"])]
    first = TokenizeConfig(inputs=inputs, out=str(out), chunk_size=4, fail_after_chunks=1)
    with pytest.raises(RuntimeError):
        run_tokenize(first, quiet=True, bundle=debug_bundle)
    m = run_tokenize(TokenizeConfig(inputs=inputs, out=str(out), chunk_size=4, workers=2), quiet=True)
    keys = _keys(out)
    assert len(keys) == len(set(keys)) == m["counts"]["units"] == 20


def test_tokenize_takes_a_packaged_bundle_by_name():
    from anygpt.bundles import load_bundle
    from anygpt.data.pipeline.tokenize import load_codecs

    layout, codecs, describe = load_codecs("tiny")  # the embedded default, read without its LLM
    assert describe["bundle"] == "tiny" and sorted(codecs) == ["image", "music", "speech"]
    assert layout.vocab_size == load_bundle("tiny").layout.vocab_size
