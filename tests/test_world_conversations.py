"""Stage 1 of the conversations (text with media descriptions): structure and consistency.

Stage 1 needs music21 but no Debian tool; stage 2 (rendering) is covered by test_world_build.
"""

import functools
import re

from anygpt.world import conversations, music, scenes, splits
from anygpt.world.config import WorldConfig
from anygpt.world.randomness import rng_for

CONFIG = WorldConfig(n=40)
TABLE = scenes.scene_tables()
HELD_OUT = splits.held_out_pairs()


@functools.cache  # tests share scripts: stage 1 parses music, which takes a moment
def _script(split: str, index: int, novel: bool) -> conversations.Script:
    return conversations.write_script(rng_for(11, split, index), split, CONFIG, novel)


def _scripts(split: str, count: int, novel: bool = False) -> list[conversations.Script]:
    return [_script(split, i, novel) for i in range(count)]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_scripts_alternate_roles_and_respect_media_budgets():
    for script in _scripts("train", 30):
        roles = [turn["role"] for turn in script.turns]
        assert roles == ["user", "assistant"] * len(script.turn_types) and 2 <= len(script.turn_types) <= 3
        assert script.count("image") <= 2 and script.count("music") <= 1
        refs = [s["ref"] for t in script.turns for s in t["content"] if s["type"] != "text"]
        assert sorted(refs) == sorted(script.media)
        text = script.text()
        assert text.count("User:") == len(script.turn_types)
        for spec in script.media.values():
            assert f"[{spec['kind']}: {spec['description']}]" in text


def test_descriptions_match_attributes():
    for script in _scripts("validation", 30):
        for spec in script.media.values():
            if spec["kind"] == "image":
                first = scenes.caption_scene(spec["attributes"])[0]
                assert spec["description"] == first[:1].lower() + first[1:]
            elif spec["kind"] == "music":
                assert spec["description"] in music.captions(spec["attributes"])
            else:
                assert spec["description"].startswith(spec["attributes"]["text"])


def test_answers_about_a_picture_name_only_what_it_shows():
    shapes, colours = set(TABLE["shapes"]), set(TABLE["colours"])
    checked = 0
    for script in _scripts("train", 60):
        for user, assistant, kind in zip(script.turns[::2], script.turns[1::2], script.turn_types, strict=True):
            if kind != "question_image":
                continue
            scene = script.media[user["content"][0]["ref"]]["attributes"]
            answer = assistant["content"][0]["text"]
            if answer.startswith("No"):
                continue
            words = _words(answer)
            shown_shapes = {o["shape"] for o in scene["objects"]}
            plurals = {TABLE["shapes"][s]["plural"] for s in shown_shapes}
            assert words & shapes <= shown_shapes | plurals, (answer, scene)
            background = set(scene["background"]["colour"].split())
            assert words & colours <= {o["colour"] for o in scene["objects"]} | background, (answer, scene)
            checked += 1
    assert checked >= 10


def test_held_out_pairs_only_in_test_and_always_in_novel_ones():
    for script in _scripts("train", 40):
        text = script.text().lower()
        assert not any(f"{c} {s}" in text for c, s in HELD_OUT)
    for script in _scripts("test", 10, novel=True):
        pictures = [m["attributes"] for m in script.media.values() if m["kind"] == "image"]
        assert pictures and scenes.colour_shape_pairs(pictures[0]) & HELD_OUT


def test_music_in_a_split_comes_from_that_split_s_pieces():
    for split in ("validation", "test"):
        for script in _scripts(split, 15):
            for spec in script.media.values():
                if spec["kind"] == "music":
                    assert splits.hashed_split(spec["attributes"]["piece_id"]) == split
