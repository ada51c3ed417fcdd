"""Image scenes: captions agree with attributes, pixels agree with attributes, held-out pairs."""

import math

from anygpt.world import items, scenes, splits
from anygpt.world.build import plan
from anygpt.world.config import WorldConfig
from anygpt.world.randomness import rng_for

HELD_OUT = splits.held_out_pairs()


def _scenes(count: int, novel: bool) -> list[dict]:
    return [scenes.sample_scene(rng_for(7, "scene-test", i), HELD_OUT, novel=novel) for i in range(count)]


def test_every_caption_names_every_object_colour_and_shape():
    table = scenes.scene_tables()
    for scene in _scenes(300, novel=False):
        captions = scenes.caption_scene(scene)
        assert len(captions) >= 3 and len(set(captions)) == len(captions)
        for caption in captions:
            text = caption.lower()
            for obj in scene["objects"]:
                shape_word = table["shapes"][obj["shape"]]["plural"] if scene["group"] else obj["shape"]
                assert f"{obj['colour']} {shape_word}" in text, (caption, scene)
        assert scene["background"]["colour"] in captions[0].lower()
        if not scene["group"]:  # the first caption also places every object
            for obj in scene["objects"]:
                assert scenes.where_phrase(obj["position"]) in captions[0]


def test_pixels_at_object_centres_have_the_object_colour():
    table = scenes.scene_tables()
    size = 64
    for scene in _scenes(80, novel=False):
        image = scenes.render_scene(scene, size)
        assert image.size == (size, size) and image.mode == "RGB"
        for obj in scene["objects"]:
            if obj["pattern"] != "solid":
                continue
            col, row, _ = table["positions"][obj["position"]]
            x, y = table["cell_centres"][col] * size, table["cell_centres"][row] * size
            pixel = image.getpixel((int(x), int(y)))
            assert math.dist(pixel, table["colours"][obj["colour"]]) < 40, (obj, pixel)


def test_held_out_pairs_only_where_asked():
    for scene in _scenes(300, novel=False):
        assert not scenes.colour_shape_pairs(scene) & HELD_OUT
        assert scene["novel_combination"] is False
    for scene in _scenes(100, novel=True):
        assert scenes.colour_shape_pairs(scene) & HELD_OUT
        assert scene["novel_combination"] is True


def test_every_colour_and_shape_still_appears_in_training_scenes():
    seen = set().union(*(scenes.colour_shape_pairs(s) for s in _scenes(600, novel=False)))
    table = scenes.scene_tables()
    assert {c for c, _ in seen} == set(table["colours"])
    assert {s for _, s in seen} == set(table["shapes"])


def test_exactly_half_the_test_images_are_novel_and_no_others():
    config = WorldConfig(n=80)
    novel = {split: 0 for split in splits.SPLITS}
    for index, split in plan(config, "images"):
        row = items.image_rows(config, index, split)[0]
        novel[split] += '"novel_combination":true' in row["attributes"]
    assert novel == {"train": 0, "validation": 0, "test": splits.split_counts(80)["test"] // 2}
