"""small-scene: code geometry, the factor ranges, the world's attributes as codes, the renderer's
arithmetic and a short training run that learns, exports and reloads through the registry."""

import pytest
import torch

from anygpt.codecs.base import build_codec
from anygpt.codecs.small.scene import CELLS, SceneCodecConfig, SmallSceneCodec
from anygpt.train.codecs.scene import scene_classes, scene_codes

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def codec():
    return SmallSceneCodec(classes=scene_classes())


def two_objects() -> dict:
    return {"background": {"colour": "beige", "pattern": "striped"},
            "objects": [{"shape": "star", "colour": "red", "size": "small", "position": "top left", "pattern": "solid"},
                        {"shape": "heart", "colour": "purple", "size": "large", "position": "bottom right",
                         "pattern": "dotted"}]}


def test_geometry_and_ranges(codec):
    cfg = codec.cfg
    assert codec.tokens_per_item == 2 + CELLS * 4 == 38
    assert (codec.codebook_size, codec.num_codebooks, codec.modality) == (1024, 1, "image")
    sizes = {f: len(v) for f, v in cfg.classes.items()}
    assert sizes == {"bg_colour": 8, "bg_pattern": 5, "size": 4, "pattern": 4, "colour": 11, "shape": 9}
    assert cfg.offsets == {"bg_colour": 0, "bg_pattern": 8, "size": 13, "pattern": 17, "colour": 21, "shape": 32}
    assert cfg.span == 41


def test_world_attributes_become_codes_and_back(codec):
    codes = scene_codes(two_objects(), codec)[None]
    off = codec.cfg.offsets
    assert codes[0, :2].tolist() == [off["bg_colour"] + 2, off["bg_pattern"] + 2]  # beige, striped
    # top left is cell 0: small solid red star; bottom right is cell 8: large dotted purple heart
    assert codes[0, 2:6].tolist() == [off["size"] + 1, off["pattern"] + 1, off["colour"] + 1, off["shape"] + 5]
    assert codes[0, 34:38].tolist() == [off["size"] + 3, off["pattern"] + 3, off["colour"] + 6, off["shape"] + 8]
    assert codes[0, 6:34].tolist() == [off["size"], off["pattern"], off["colour"], off["shape"]] * 7  # empty cells
    said = codec.describe(codes)
    assert said["background"] == {"colour": "beige", "pattern": "striped"}
    assert said["objects"] == [
        {"cell": 0, "size": "small", "pattern": "solid", "colour": "red", "shape": "star"},
        {"cell": 8, "size": "large", "pattern": "dotted", "colour": "purple", "shape": "heart"}]
    assert torch.equal(codec.net.join(codec.net.split(codes)), codes)


def test_codes_of_another_factor_decode_as_its_first_class(codec):
    codes = scene_codes(two_objects(), codec)[None]
    wrong = codes.clone()
    wrong[0, 5] = codec.cfg.offsets["colour"] + 4  # a colour id where cell 0's shape belongs
    fitted = codec.fit(wrong)
    assert fitted[0, 5] == codec.cfg.offsets["shape"]  # "none": the cell is drawn empty
    assert torch.equal(fitted[0, 6:], codes[0, 6:]) and torch.equal(fitted[0, :5], codes[0, :5])
    assert codec.decode(wrong).size == (64, 64)
    with pytest.raises(Exception, match="decodes exactly 38 codes"):
        codec.decode(codes[:, :32])


def test_renderer_draws_nothing_for_empty_cells():
    codec = SmallSceneCodec(classes=scene_classes())
    codes = scene_codes(two_objects(), codec)[None]
    empty = codes.clone()
    empty[0, 2:] = scene_codes({"background": two_objects()["background"], "objects": []}, codec)[2:]
    r = codec.net.renderer
    with torch.no_grad():
        r.sprite.fill_(10.0)  # every sprite opaque and white on grey: only the objects' cells change
        r.rgb.fill_(1.0)
        r.shade.fill_(1.0)
        a, b = codec.net.decode(codes), codec.net.decode(empty)
    changed = (a - b).abs().sum(1)[0] > 0  # (64, 64)
    assert changed[:32, :32].any() and changed[32:, 32:].any()
    assert not changed[:8, 48:].any() and not changed[56:, :16].any()  # far from both objects


def test_config_is_checked():
    classes = scene_classes()
    with pytest.raises(ValueError, match="first class must be 'none'"):
        SceneCodecConfig({**classes, "shape": classes["shape"][1:]})
    with pytest.raises(ValueError, match="do not fit"):
        SceneCodecConfig({f: tuple(v) for f, v in classes.items()}, codebook_size=32)
    with pytest.raises(ValueError, match="lack"):
        SceneCodecConfig({"shape": ("none",)})


def test_a_short_training_learns_exports_and_reloads(tmp_path):
    from anygpt.train.codecs import export
    from anygpt.train.codecs import recipes as train
    from anygpt.world.scenes import render_scene, sample_scene
    import random
    import numpy as np

    codec = SmallSceneCodec(classes=scene_classes())
    rng = random.Random(0)
    scenes = [sample_scene(rng, set(), novel=False) for _ in range(48)]
    images = torch.stack([torch.from_numpy(np.array(render_scene(s, 64))).permute(2, 0, 1) for s in scenes])
    codes = torch.stack([scene_codes(s, codec) for s in scenes])
    cfg = train.default_config("scene", str(tmp_path / "run"), steps=60, batch=16, warmup=5, save_every=30)
    rows = train.RECIPES["scene"]("unused", cfg, progress=False, data=(images, codes))
    assert rows[-1]["render_l1"] < 0.6 * rows[0]["render_l1"]
    assert rows[-1]["ce"] < 0.5 * rows[0]["ce"]
    loaded = export.load_codec_dir(tmp_path / "run" / "export")
    assert isinstance(loaded, SmallSceneCodec) and loaded.cfg == codec.cfg
    assert build_codec("small-scene", loaded.config()).tokens_per_item == 38
