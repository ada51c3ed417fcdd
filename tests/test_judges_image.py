"""Image judge, caption parser and CIDEr-D: shipped weights read fresh renders; pinned behaviour."""

import random

import pytest

from anygpt.world import scenes
from anygpt.eval.judges import captions
from anygpt.eval.judges.image import ImageJudge, attribute_accuracy, vocabularies

SCENE = {"count": 2, "group": False, "novel_combination": False,
         "background": {"colour": "beige", "pattern": "striped"},
         "objects": [{"shape": "star", "colour": "red", "size": "large", "position": "top left", "pattern": "solid"},
                     {"shape": "circle", "colour": "blue", "size": "medium", "position": "bottom right",
                      "pattern": "dotted"}]}


@pytest.fixture(scope="module")
def judge():
    return ImageJudge.load()


def test_shipped_judge_reads_fresh_renders(judge):
    rng = random.Random(12345)  # not the training seeds (0..3 + offsets): renders it never saw
    truth = [scenes.sample_scene(rng, set(), novel=False) for _ in range(60)]
    predicted = judge.attributes([scenes.render_scene(s, 64) for s in truth])
    acc = attribute_accuracy(predicted, truth)
    assert acc["mean"] >= 0.95, acc
    assert judge.attributes([scenes.render_scene(SCENE, 64)])[0] == {
        "count": 2, "background": SCENE["background"], "objects": SCENE["objects"]}


def test_judge_accepts_arrays_and_other_sizes(judge):
    import numpy as np

    image = scenes.render_scene(SCENE, 128)
    a = judge.attributes([image])[0]
    b = judge.attributes([np.asarray(image.resize((64, 64)))])[0]
    assert a["count"] == b["count"] == 2


def test_attribute_accuracy_matches_objects_by_position():
    wrong_colour = {**SCENE, "objects": [dict(SCENE["objects"][0], colour="green"), SCENE["objects"][1]]}
    missing = {**SCENE, "count": 1, "objects": SCENE["objects"][:1]}
    acc = attribute_accuracy([SCENE, wrong_colour, missing], [SCENE] * 3)
    assert acc["colour"] == pytest.approx(4 / 6) and acc["position"] == pytest.approx(5 / 6)
    assert acc["count"] == pytest.approx(2 / 3) and acc["scene"] == pytest.approx(1 / 3)
    assert set(vocabularies()["position"]) == set(scenes.scene_tables()["positions"])


def test_text_attributes_reads_every_template():
    rng = random.Random(7)
    for _ in range(200):
        scene = scenes.sample_scene(rng, set(), novel=False)
        for caption in scenes.caption_scene(scene):
            read = captions.text_attributes(caption)
            assert read["count"] == scene["count"], caption
            assert {(o["colour"], o["shape"]) for o in read["objects"]} == \
                {(o["colour"], o["shape"]) for o in scene["objects"]}, caption
            if read["background"]["colour"] is not None:
                assert read["background"] == scene["background"], caption


def test_text_attributes_on_free_text():
    read = captions.text_attributes("I see three small green hearts on a light blue gradient background.")
    assert read["count"] == 3 and read["background"] == {"colour": "light blue", "pattern": "gradient"}
    assert read["objects"][0]["shape"] == "heart" and read["objects"][0]["colour"] == "green"
    read = captions.text_attributes("A large striped white cross in the top right corner, and a black star.")
    assert read["count"] == 2
    assert read["objects"][0] == {"shape": "cross", "colour": "white", "size": "large", "pattern": "striped",
                                  "position": "top right"}
    assert captions.text_attributes("nothing here")["objects"] == []


def test_caption_accuracy_and_cider():
    caps = scenes.caption_scene(SCENE)
    acc = captions.caption_accuracy([caps[0], "A blue circle and a green square."], [SCENE, SCENE])
    assert acc["object_recall"] == pytest.approx((1 + 0.5) / 2)
    assert acc["object_precision"] == pytest.approx((1 + 0.5) / 2)
    refs = [caps[1:], ["a plain white background with a yellow heart in the centre", "one yellow heart"]]
    good = captions.cider([caps[0], "a yellow heart in the centre on a plain white background"], refs)
    bad = captions.cider(["a dog", "a cat"], refs)
    assert good > 1.0 > bad >= 0.0
