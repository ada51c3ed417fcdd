"""One function per kind: (config, unit index, split) -> Parquet rows. Workers call only these.

Every random choice comes from an RNG seeded by (seed, kind, index), so an item is the same
whichever worker makes it and whatever else is made in the same run.
"""

import json

from anygpt.world import conversations, music, pngwav, scenes, speech, splits
from anygpt.world.config import WorldConfig
from anygpt.world.randomness import rng_for


def to_json(value) -> str:
    """Canonical JSON: sorted keys, no spaces, so equal attributes give equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def item_id(kind: str, index: int) -> str:
    return f"{kind}-{index:07d}"


def image_rows(config: WorldConfig, index: int, split: str) -> list[dict]:
    rng = rng_for(config.seed, "images", index)
    novel = splits.is_novel(config.seed, "images", config.n, index)
    scene = scenes.sample_scene(rng, splits.held_out_pairs(), novel=novel)
    image = scenes.render_scene(scene, config.image_size)
    return [{"id": item_id("images", index), "index": index, "split": split, "image": pngwav.png_bytes(image),
             "width": image.width, "height": image.height, "captions": scenes.caption_scene(scene),
             "attributes": to_json(scene)}]


SPEECH_RATE_WEIGHTS = {"slow": 1, "normal": 3, "fast": 1}


def speech_rows(config: WorldConfig, index: int, split: str) -> list[dict]:
    rng = rng_for(config.seed, "speech", index)
    sentence = conversations.draw_sentence(rng, split)
    speaker = rng.choice(speech.speakers())
    names = sorted(SPEECH_RATE_WEIGHTS)
    rate = rng.choices(names, weights=[SPEECH_RATE_WEIGHTS[n] for n in names])[0]
    samples = speech.synthesize(sentence.text, speaker["id"], rate)
    sample_rate = speech.sample_rate()
    seconds = round(len(samples) / sample_rate, 3)
    attributes = {"text": sentence.text, "frame": sentence.frame, "speaker": speaker["id"],
                  "voice": speaker["voice"], "sex": speaker["sex"], "accent": speaker["accent"],
                  "formant_scale": speaker["formant_scale"], "pitch_hz": speaker["pitch_hz"], "rate": rate,
                  "rate_stretch": speech.rates()[rate], "description": speech.describe(speaker["id"], rate),
                  "seconds": seconds}
    return [{"id": item_id("speech", index), "index": index, "split": split,
             "audio": pngwav.wav_bytes(samples, sample_rate), "sample_rate": sample_rate, "seconds": seconds,
             "text": sentence.text, "speaker": speaker["id"], "attributes": to_json(attributes)}]


def music_rows(config: WorldConfig, group: int, split: str, soundfont: str) -> list[dict]:
    """Clips group*K .. group*K+K-1 (fewer at the end of the run), cut from one rendering."""
    rng = rng_for(config.seed, "music", group)
    piece = music.draw_piece(rng, split)
    instrument = music.draw_instrument(rng)
    bpm = music.draw_tempo(rng, piece)
    first = group * config.clips_per_render
    indices = range(first, min(first + config.clips_per_render, config.n))
    clip = config.clip_seconds
    rendering = music.render(piece, instrument["program"], bpm, clip * len(indices), soundfont)
    sample_rate = music.sample_rate()
    per_clip = int(round(clip * sample_rate))
    rows = []
    for j, index in enumerate(indices):
        samples = music.level(rendering[j * per_clip:(j + 1) * per_clip])
        attributes = music.describe(piece, instrument, bpm, clip, j * clip)
        rows.append({"id": item_id("music", index), "index": index, "split": split,
                     "audio": pngwav.wav_bytes(samples, sample_rate), "sample_rate": sample_rate,
                     "seconds": round(len(samples) / sample_rate, 3), "captions": music.captions(attributes),
                     "piece_id": piece.ref.piece_id, "attributes": to_json(attributes)})
    return rows


def conversation_rows(config: WorldConfig, index: int, split: str, soundfont: str) -> list[dict]:
    rng = rng_for(config.seed, "conversations", index)
    novel = splits.is_novel(config.seed, "conversations", config.n, index)
    script = conversations.write_script(rng, split, config, novel)  # stage 1: text with media descriptions
    realised = conversations.realise(script, config, soundfont)  # stage 2: descriptions -> media
    novel = any(m["attributes"].get("novel_combination", False) for m in realised["media"])
    attributes = {"turn_types": script.turn_types, "user_speaker": script.user_speaker,
                  "assistant_speaker": script.assistant_speaker, "rounds": len(script.turn_types),
                  "novel_combination": novel}
    media_rows = [{"ref": m["ref"], "kind": m["kind"], "data": m["data"], "sample_rate": m["sample_rate"],
                   "description": m["description"], "attributes": to_json(m["attributes"])}
                  for m in realised["media"]]
    return [{"id": item_id("conversations", index), "index": index, "split": split, "script": script.text(),
             "turns": to_json(realised["turns"]), "media": media_rows, "attributes": to_json(attributes)}]
