"""AnyInstruct-style conversations, built the paper's two-stage way at toy scale.

Stage 1, `write_script`: a text dialogue of 2-3 rounds in which media appear as descriptions
(`[image: a small red star ...]`, `[music: a Bach chorale on the organ ...]`), drawn from the same
generators as the single-modality items. The user gives or asks for images, music and speech; the
assistant answers in text, images, music or voice. Answers are worded from the media attributes.

Stage 2, `realise`: every description becomes media (scene renderer, fluidsynth, flite), and every
user turn also gets a spoken version in the user's voice.

Turns (stored as JSON) reference media by id:

    [{"role": "user", "content": [{"type": "image", "ref": "image_0"},
                                  {"type": "text", "text": "What colour is the star?"}],
      "spoken": "speech_0"},
     {"role": "assistant", "content": [{"type": "speech", "ref": "speech_1", "text": "It is red."}]}]
"""

import copy
import random
from dataclasses import dataclass, field

from anygpt.world import music, pngwav, scenes, sentences, speech, splits, tables
from anygpt.world.config import WorldConfig
from anygpt.world.words import article, capitalise

DARK_BACKGROUNDS = ("navy", "black", "dark grey")  # the toy rule linking pictures and music moods
NEW_PICTURE = ("describe_image", "question_image", "ask_image", "image_to_music", "music_to_image")


@dataclass
class Script:
    """Stage 1: the dialogue with media as descriptions plus the attributes to realise them."""

    turns: list[dict] = field(default_factory=list)
    media: dict[str, dict] = field(default_factory=dict)  # ref -> {"kind", "description", "attributes"}
    turn_types: list[str] = field(default_factory=list)
    user_speaker: str = ""
    assistant_speaker: str = ""

    def text(self) -> str:
        """The dialogue as one text, media written as [kind: description], as in the paper."""
        lines = []
        for turn in self.turns:
            parts = []
            for segment in turn["content"]:
                if segment["type"] == "text":
                    parts.append(segment["text"])
                else:
                    parts.append(f"[{segment['type']}: {self.media[segment['ref']]['description']}]")
            lines.append(f"{'User' if turn['role'] == 'user' else 'AnyGPT'}: {' '.join(parts)}")
        return "\n".join(lines)

    def count(self, kind: str) -> int:
        return sum(1 for m in self.media.values() if m["kind"] == kind)

    def latest(self, kind: str) -> dict | None:
        found = [m for m in self.media.values() if m["kind"] == kind]
        return found[-1] if found else None


def phrases() -> dict:
    return tables.load("conversations")


# ----------------------------------------------------------------------------------------------
# Stage 1


def write_script(rng: random.Random, split: str, config: WorldConfig, novel: bool = False) -> Script:
    """Stage 1. novel=True (test only): the first picture shows a held-out colour-shape pair."""
    return _ScriptWriter(rng, split, config, novel).write()


class _ScriptWriter:
    def __init__(self, rng: random.Random, split: str, config: WorldConfig, novel: bool):
        self.rng, self.split, self.config = rng, split, config
        self.p = phrases()
        self.held_out = splits.held_out_pairs()
        self.novel_left = novel and split == "test"  # the next picture drawn shows a held-out pair
        self.script = Script()
        voices = [s["id"] for s in speech.speakers()]
        self.script.user_speaker, self.script.assistant_speaker = rng.sample(voices, 2)

    def write(self) -> Script:
        rounds = self.rng.choice(self.p["rounds"])
        for _ in range(rounds):
            kind = self._next_type(picture=self.novel_left)
            self.script.turn_types.append(kind)
            user, assistant = getattr(self, kind)()
            self.script.turns += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        return self.script

    def _next_type(self, picture: bool) -> str:
        """A turn type that fits the media budget; picture=True: one that draws a new picture."""
        images, tunes = self.script.count("image"), self.script.count("music")
        room_image, room_music = images < self.p["max_images"], tunes < self.p["max_music"]
        needs = {"describe_image": room_image, "question_image": room_image, "ask_image": room_image,
                 "edit_image": room_image and images > 0, "describe_music": room_music,
                 "question_music": room_music, "ask_music": room_music,
                 "image_to_music": room_image and room_music, "music_to_image": room_image and room_music,
                 "ask_speech": True, "voice_answer": images + tunes > 0, "followup": images + tunes > 0}
        weights = self.p["turn_weights"]
        names = [name for name in sorted(weights) if needs[name] and (not picture or name in NEW_PICTURE)]
        return self.rng.choices(names, weights=[weights[name] for name in names])[0]

    # -- media ---------------------------------------------------------------------------------

    def _add(self, kind: str, description: str, attributes: dict) -> str:
        ref = f"{kind}_{self.script.count(kind)}"  # image_0, music_0, speech_0, speech_1, ...
        self.script.media[ref] = {"kind": kind, "description": description, "attributes": attributes}
        return ref

    def _scene(self, accept=None) -> dict:
        novel = self.novel_left
        for _ in range(200):
            scene = scenes.sample_scene(self.rng, self.held_out, novel=novel)
            if accept is None or accept(scene):
                break
        self.novel_left = False
        return scene

    def _image(self, scene: dict) -> tuple[str, dict]:
        description = scenes.caption_scene(scene)[0]
        return self._add("image", description[:1].lower() + description[1:], scene), scene

    def _music(self, mode: str | None = None, tempo_class: str | None = None) -> tuple[str, dict]:
        piece = music.draw_piece(self.rng, self.split, mode=mode)
        instrument = music.draw_instrument(self.rng)
        bpm = music.draw_tempo(self.rng, piece, tempo_class)
        attributes = music.describe(piece, instrument, bpm, self.config.clip_seconds, 0.0)
        description = self.rng.choice(music.captions(attributes))
        return self._add("music", description, attributes), attributes

    def _speech(self, text: str, speaker: str | None = None, rate: str = "normal") -> dict:
        speaker = speaker or self.script.assistant_speaker
        attributes = {"text": text, "speaker": speaker, "rate": rate}
        ref = self._add("speech", f"{text} (spoken in {speech.describe(speaker, rate)})", attributes)
        return {"type": "speech", "ref": ref, "text": text}

    # -- question and answer pools ---------------------------------------------------------------

    def _pick(self, pool: list[str], **slots) -> str:
        return self.rng.choice(pool).format(**slots)

    def _image_question(self, scene: dict) -> tuple[str, str]:
        """One question about a scene and its answer, worded from the attributes."""
        p, rng = self.p["image"], self.rng
        objects = scene["objects"]
        shapes = [o["shape"] for o in objects]
        colours = [o["colour"] for o in objects]
        options = ["count", "background", "exists"]
        options += ["colour_of"] * any(shapes.count(s) == 1 for s in shapes)
        options += ["shape_of"] * any(colours.count(c) == 1 for c in colours)
        options += ["where", "size_of"] * (not scene["group"])
        kind = rng.choice(options)
        if kind == "count":
            group_word = scenes.scene_tables()["shapes"][objects[0]["shape"]]["plural"] if scene["group"] else "shapes"
            shape_word = ("shape" if scene["count"] == 1 else group_word)
            if scene["group"]:
                shape_word = f"{objects[0]['colour']} {group_word}"
            count = scenes.scene_tables()["count_words"][scene["count"]]
            answer = self._pick(p["count_answer"], is_are="is" if scene["count"] == 1 else "are", count=count,
                                shape_word=shape_word)
            return rng.choice(p["count"]), answer
        if kind == "background":
            background = scenes.background_phrase(scene["background"])
            return rng.choice(p["background"]), self._pick(p["background_answer"], background=background,
                                                          a_background=article(background))
        if kind == "colour_of":
            obj = rng.choice([o for o in objects if shapes.count(o["shape"]) == 1])
            return (self._pick(p["colour_of"], shape=obj["shape"]),
                    self._pick(p["colour_of_answer"], shape=obj["shape"], colour=obj["colour"]))
        if kind == "shape_of":
            obj = rng.choice([o for o in objects if colours.count(o["colour"]) == 1])
            return (self._pick(p["shape_of"], colour=obj["colour"]),
                    self._pick(p["shape_of_answer"], colour=obj["colour"], a_shape=article(obj["shape"])))
        if kind in ("where", "size_of"):
            obj = rng.choice(objects)
            slots = {"colour": obj["colour"], "shape": obj["shape"], "where": scenes.where_phrase(obj["position"]),
                     "size": obj["size"]}
            return self._pick(p[kind], **slots), self._pick(p[kind + "_answer"], **slots)
        # exists: half the time ask about an object that is there, else about a pair that is not
        if rng.random() < 0.5:
            obj = rng.choice(objects)
            thing = f"{obj['colour']} {obj['shape']}"
            return (self._pick(p["exists"], a_thing=article(thing)),
                    self._pick(p["exists_yes"], a_thing=article(thing), where=scenes.where_phrase(obj["position"])))
        absent = self._absent_pair(scene)
        thing = f"{absent[0]} {absent[1]}"
        return (self._pick(p["exists"], a_thing=article(thing)),
                self._pick(p["exists_no"], thing=thing, a_thing=article(thing)))

    def _absent_pair(self, scene: dict) -> tuple[str, str]:
        t = scenes.scene_tables()
        present = scenes.colour_shape_pairs(scene)
        # held-out pairs may be named only in test, like everything else about them
        pairs = [(c, s) for c in sorted(t["colours"]) for s in sorted(t["shapes"])
                 if (c, s) not in present and (self.split == "test" or (c, s) not in self.held_out)]
        return self.rng.choice(pairs)

    def _music_question(self, attributes: dict) -> tuple[str, str]:
        p = self.p["music"]
        kind = self.rng.choice(["instrument", "tempo", "key", "mood", "style"])
        slots = _music_slots(attributes)
        return self._pick(p[kind], **slots), self._pick(p[kind + "_answer"], **slots)

    # -- turn types ----------------------------------------------------------------------------

    def describe_image(self):
        ref, scene = self._image(self._scene())
        caption = self.rng.choice(scenes.caption_scene(scene))
        return ([_media("image", ref), _text(self.rng.choice(self.p["image"]["describe"]))], [_text(caption)])

    def question_image(self):
        ref, scene = self._image(self._scene())
        question, answer = self._image_question(scene)
        return [_media("image", ref), _text(question)], [_text(answer)]

    def ask_image(self):
        ref, scene = self._image(self._scene())
        request = self._pick(self.p["image"]["request"], description=self.script.media[ref]["description"])
        return [_text(request)], [_text(self.rng.choice(self.p["image"]["here"])), _media("image", ref)]

    def edit_image(self):
        previous = self.script.latest("image")["attributes"]
        scene, request = self._edit(previous)
        ref, scene = self._image(scene)
        caption = scenes.caption_scene(scene)[0]
        answer = self._pick(self.p["image"]["edited"], caption=caption,
                            description=self.script.media[ref]["description"])
        return [_text(request)], [_text(answer), _media("image", ref)]

    def _edit(self, previous: dict) -> tuple[dict, str]:
        """A copy of a scene with one change, and the user's request for it."""
        t, p, rng = scenes.scene_tables(), self.p["image"], self.rng
        scene = copy.deepcopy(previous)
        background_rgb = t["backgrounds"][scene["background"]["colour"]]
        for _ in range(100):
            choice = rng.choice(["colour", "shape", "background"])
            target = rng.choice(scene["objects"])
            shapes = [o["shape"] for o in scene["objects"]]
            if choice == "colour" and (scene["group"] or shapes.count(target["shape"]) == 1):
                new = rng.choice(sorted(t["colours"]))
                members = scene["objects"] if scene["group"] else [target]
                pairs = {(new, o["shape"]) for o in members}
                if new == target["colour"] or not self._allowed(pairs, scene, members):
                    continue
                if _distance(t["colours"][new], background_rgb) < t["min_contrast"]:
                    continue
                for obj in members:
                    obj["colour"] = new
                if scene["group"]:
                    plural = t["shapes"][target["shape"]]["plural"]
                    return _renovel(scene, self.held_out), self._pick(p["edit_colour_group"], new=new, shapes=plural)
                return _renovel(scene, self.held_out), self._pick(p["edit_colour"], shape=target["shape"], new=new)
            if choice == "shape" and not scene["group"]:
                new = rng.choice(sorted(t["shapes"]))
                if new in shapes or not self._allowed({(target["colour"], new)}, scene, [target]):
                    continue
                request = self._pick(p["edit_shape"], colour=target["colour"], shape=target["shape"],
                                     a_new=article(new), a_new_full=article(f"{target['colour']} {new}"))
                target["shape"] = new
                return _renovel(scene, self.held_out), request
            if choice == "background":
                new = rng.choice(sorted(t["backgrounds"]))
                rgb = t["backgrounds"][new]
                if new == scene["background"]["colour"] or any(
                        _distance(t["colours"][o["colour"]], rgb) < t["min_contrast"] for o in scene["objects"]):
                    continue
                scene["background"] = {"colour": new, "pattern": "plain"}
                return _renovel(scene, self.held_out), self._pick(p["edit_background"], new=new, a_new=article(new))
        return self._scene(), self._pick(p["request"], description="something new")  # rare fallback

    def _allowed(self, new_pairs: set, scene: dict, changed: list[dict]) -> bool:
        """Edits keep train and validation free of held-out pairs, and objects distinct."""
        if self.split != "test" and new_pairs & self.held_out:
            return False
        others = {(o["colour"], o["shape"]) for o in scene["objects"] if not any(o is c for c in changed)}
        return not (new_pairs & others)

    def describe_music(self):
        ref, attributes = self._music()
        caption = self.rng.choice(music.captions(attributes))
        return [_media("music", ref), _text(self.rng.choice(self.p["music"]["describe"]))], [_text(caption)]

    def question_music(self):
        ref, attributes = self._music()
        question, answer = self._music_question(attributes)
        return [_media("music", ref), _text(question)], [_text(answer)]

    def ask_music(self):
        ref, attributes = self._music()
        slots = _music_slots(attributes)
        description = self._pick(self.p["music"]["request_descriptions"], **slots)
        request = self._pick(self.p["music"]["request"], description=description)
        return [_text(request)], [_text(self._pick(self.p["music"]["here"], **slots)), _media("music", ref)]

    def image_to_music(self):
        image_ref, scene = self._image(self._scene())
        dark = scene["background"]["colour"] in DARK_BACKGROUNDS
        tempo_class = "fast" if scene["count"] >= 2 else "slow"
        ref, attributes = self._music(mode="minor" if dark else "major", tempo_class=tempo_class)
        slots = _music_slots(attributes)
        slots.update(scene=self.script.media[image_ref]["description"],
                     Feeling=self.p["cross"]["dark" if dark else "bright"])
        answer = self._pick(self.p["cross"]["image_to_music_answer"], **slots)
        return ([_media("image", image_ref), _text(self.rng.choice(self.p["cross"]["image_to_music"]))],
                [_text(answer), _media("music", ref)])

    def music_to_image(self):
        ref, attributes = self._music()
        want_dark = attributes["mode"] == "minor"
        scene = self._scene(lambda s: (s["background"]["colour"] in DARK_BACKGROUNDS) == want_dark)
        image_ref, scene = self._image(scene)
        slots = _music_slots(attributes)
        slots["scene"] = self.script.media[image_ref]["description"]
        answer = self._pick(self.p["cross"]["music_to_image_answer"], **slots)
        return ([_media("music", ref), _text(self.rng.choice(self.p["cross"]["music_to_image"]))],
                [_text(answer), _media("image", image_ref)])

    def ask_speech(self):
        sentence = draw_sentence(self.rng, self.split).text
        if self.rng.random() < 0.4:  # the user names a voice: the assistant uses that speaker
            speaker = self.rng.choice(speech.speakers())["id"]
            rate = self.rng.choice(sorted(speech.rates()))
            request = self._pick(self.p["speech"]["request_voice"], voice=speech.describe(speaker, rate),
                                 sentence=sentence)
            return [_text(request)], [self._speech(sentence, speaker, rate)]
        request = self._pick(self.p["speech"]["request"], sentence=sentence)
        return [_text(request)], [self._speech(sentence)]

    def voice_answer(self):
        question, answer = self._question_about_latest()
        request = self._pick(self.p["speech"]["voice_answer"], question=question)
        return [_text(request)], [self._speech(answer)]

    def followup(self):
        question, answer = self._question_about_latest()
        return [_text(question)], [_text(answer)]

    def _question_about_latest(self) -> tuple[str, str]:
        """A question about the last image or music of the conversation."""
        latest = [m for m in self.script.media.values() if m["kind"] in ("image", "music")][-1]
        if latest["kind"] == "image":
            return self._image_question(latest["attributes"])
        return self._music_question(latest["attributes"])


def draw_sentence(rng: random.Random, split: str) -> sentences.Sentence:
    """A sentence whose text hashes to `split`: no sentence is shared between splits."""
    while True:
        sentence = sentences.generate(rng)
        if splits.hashed_split(sentence.text) == split:
            return sentence


def _text(text: str) -> dict:
    return {"type": "text", "text": text}


def _media(kind: str, ref: str) -> dict:
    return {"type": kind, "ref": ref}


def _distance(a, b) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) ** 0.5


def _renovel(scene: dict, held_out: set) -> dict:
    scene["novel_combination"] = bool(scenes.colour_shape_pairs(scene) & held_out)
    return scene


def _music_slots(a: dict) -> dict:
    source = a["source_label"]
    return {"source": source, "a_source": article(source), "instrument": a["instrument"],
            "a_instrument": article(a["instrument"]), "tempo_word": a["tempo_word"], "bpm": a["tempo_bpm"],
            "key": a["key"], "mode": a["mode"], "mood1": a["mood"][0], "mood2": a["mood"][1],
            "a_mood1": article(a["mood"][0]), "Mood1": capitalise(a["mood"][0])}


# ----------------------------------------------------------------------------------------------
# Stage 2


def realise(script: Script, config: WorldConfig, soundfont: str | None) -> dict:
    """Turn every description into media and speak every user turn -> the parts of a row."""
    turns = copy.deepcopy(script.turns)
    specs = dict(script.media)
    for turn in turns:  # spoken versions of the user's words, in the user's voice
        if turn["role"] == "user":
            words = " ".join(s["text"] for s in turn["content"] if s["type"] == "text")
            ref = f"speech_{sum(1 for m in specs.values() if m['kind'] == 'speech')}"
            specs[ref] = {"kind": "speech", "description": words,
                          "attributes": {"text": words, "speaker": script.user_speaker, "rate": "normal"}}
            turn["spoken"] = ref
    rows = []
    for ref in sorted(specs, key=_ref_order):
        spec = specs[ref]
        attributes = dict(spec["attributes"])
        if spec["kind"] == "image":
            data = pngwav.png_bytes(scenes.render_scene(attributes, config.image_size))
            rate = 0
        elif spec["kind"] == "music":
            piece = music.load_piece(music.ref_by_id(attributes["piece_id"]))
            samples = music.level(music.render(piece, attributes["program"], attributes["tempo_bpm"],
                                               config.clip_seconds, soundfont))
            rate = music.sample_rate()
            data = pngwav.wav_bytes(samples, rate)
        else:
            samples = speech.synthesize(attributes["text"], attributes["speaker"], attributes["rate"])
            rate = speech.sample_rate()
            attributes["seconds"] = round(len(samples) / rate, 3)
            data = pngwav.wav_bytes(samples, rate)
        rows.append({"ref": ref, "kind": spec["kind"], "data": data, "sample_rate": rate,
                     "description": spec["description"], "attributes": attributes})
    return {"turns": turns, "media": rows}


def _ref_order(ref: str) -> tuple[str, int]:
    kind, number = ref.rsplit("_", 1)
    return kind, int(number)

