"""The safe writer: no silent overwrite, no symlink following, no half-written file, --out checked first."""

import os

import pytest
import torch

from anygpt.chat import write_segments
from anygpt.cli import main
from anygpt.errors import AnyGPTError
from anygpt.generate.segments import Segment
from anygpt.outputs import check_out_dir, write_file


def test_refuse_and_number(tmp_path):
    p = tmp_path / "a.txt"
    assert write_file(p, lambda f: f.write(b"one")) == p
    with pytest.raises(AnyGPTError, match="exists; refusing"):
        write_file(p, lambda f: f.write(b"two"))
    assert write_file(p, lambda f: f.write(b"two"), existing="number") == tmp_path / "a-2.txt"
    assert write_file(p, lambda f: f.write(b"three"), existing="number") == tmp_path / "a-3.txt"
    assert p.read_bytes() == b"one" and (tmp_path / "a-2.txt").read_bytes() == b"two"
    assert write_file(p, lambda f: f.write(b"new"), existing="replace") == p and p.read_bytes() == b"new"


def test_a_planted_symlink_is_never_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(victim, out / "reply-image1.png")
    os.symlink(tmp_path / "nowhere", out / "dangling.png")
    for existing in ("number", "replace"):
        write_file(out / "reply-image1.png", lambda f: f.write(b"evil"), existing=existing)
        assert victim.read_bytes() == b"precious"
    write_file(out / "dangling.png", lambda f: f.write(b"x"), existing="number")
    assert not (tmp_path / "nowhere").exists()


def test_a_failed_write_leaves_nothing(tmp_path):
    def half(f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(AnyGPTError, match="No space left"):
        write_file(tmp_path / "x.wav", half)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_is_refused_before_work(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(AnyGPTError, match="not writable"):
        check_out_dir(ro / "sub")


def test_out_checks(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(AnyGPTError, match="not a folder"):
        check_out_dir(tmp_path / "file")
    with pytest.raises(AnyGPTError, match="not a folder"):
        check_out_dir(tmp_path / "file" / "sub")
    assert check_out_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # made only when something is written


def test_chat_refuses_a_bad_out_before_loading(tmp_path, capsys, monkeypatch):
    import anygpt.bundles

    monkeypatch.setattr(anygpt.bundles, "load_bundle", lambda *a, **k: pytest.fail("loaded a bundle"))
    (tmp_path / "file").write_text("x")
    assert main(["chat", "--text", "hi", "--out", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("anygpt: error: --out")


def test_replies_never_overwrite_earlier_ones(debug_bundle, tmp_path):
    layout = debug_bundle.layout
    seg = Segment("image", [], codes=torch.arange(32).reshape(1, 32) % layout["image"].spec.codebook_size)
    first = write_segments(debug_bundle, [seg], tmp_path)[0]["path"]
    before = open(first, "rb").read()
    second = write_segments(debug_bundle, [seg], tmp_path)[0]["path"]
    assert first.endswith("reply-image1.png") and second.endswith("reply-image1-2.png")
    assert open(first, "rb").read() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reply-image1-2.png", "reply-image1.png"]


def test_a_16_bit_grey_png_is_scaled_not_clipped(tmp_path):
    import numpy as np
    from PIL import Image

    from anygpt.media import load_image

    Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16)).save(tmp_path / "grey16.png")
    pixels = np.asarray(load_image(tmp_path / "grey16.png"))
    assert pixels.shape == (8, 8, 3) and 126 <= pixels.min() <= pixels.max() <= 130
