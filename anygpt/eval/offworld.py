"""The off-world check set: inputs in the world's vocabulary that the world generator did not make.

`scripts/make_offworld.py` writes it to tests/fixtures/offworld/ (manifest.json, images/, speech/):
24 pictures drawn by matplotlib with shifted, rescaled objects and other outlines, 16 utterances by
espeak-ng and by flite at rates and pitches the world does not use, and 16 text-to-image requests in
other words than the world's captions. Truths use the world's formats, so the world's judges score it.

    sets = load_offworld()                     # {"image": [...], "prompt": [...], "speech": [...]}
    sets["image"][0]  -> {"id", "image": PIL RGB 64x64, "attributes": scene dict, "captions": [str], "made"}
    sets["prompt"][0] -> {"id", "prompt": str, "attributes": scene dict, "made"}
    sets["speech"][0] -> {"id", "waveform": float32 (T,), "sample_rate": 16000, "text": transcript, "made"}

Which task each kind feeds is the task's business: its record in anygpt.eval.tasks names the kind
(caption: image, t2i: prompt, asr: speech).

Scoring each kind with the existing judges, as tasks.py scores the world's test split:

    from anygpt.eval.judges.captions import caption_accuracy
    from anygpt.eval.judges.image import ImageJudge, attribute_accuracy
    from anygpt.eval.judges import speech

    # caption: the model's caption of item["image"], parsed back to attributes
    caption_accuracy(captions, [it["attributes"] for it in sets["image"]])     # tasks.caption_attr_acc
    # t2i: the picture the model draws for item["prompt"], read by the image judge
    predicted = ImageJudge.load().attributes(images)                          # EMPTY_SCENE if malformed
    attribute_accuracy(predicted, [it["attributes"] for it in sets["prompt"]])["mean"]
    # asr: the model's transcript of item["waveform"] against the reference
    speech.wer(transcripts, [it["text"] for it in sets["speech"]])
    # tts: the speech items' texts double as prompts; speech.asr hears the reply, speech.wer scores it

Each item's "made" says which program made it (and the voice and rate for speech); "novel_combination"
in the attributes marks the world's held-out colour-shape pairs. The caption items carry one caption
in the set's own words, not a world template (CIDEr against it is not comparable to the world's).
"""

from __future__ import annotations

import json
from pathlib import Path

from anygpt.errors import AnyGPTError
from anygpt.media import load_audio, load_image

MANIFEST = "manifest.json"
KINDS = ("image", "prompt", "speech")  # the manifest's item kinds


def default_path() -> Path:
    """tests/fixtures/offworld/ of the source tree this package sits in."""
    return Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "offworld"


def load_offworld(path: str | Path | None = None) -> dict[str, list[dict]]:
    """Every item of the set, media decoded, grouped by kind (manifest order within each)."""
    folder = Path(path) if path is not None else default_path()
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise AnyGPTError(f"{folder} holds no off-world set: no {MANIFEST} "
                          "(write one with `python scripts/make_offworld.py --out DIR`)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    rate = int(manifest["sample_rate"])
    sets: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    for entry in manifest["items"]:
        item = {"id": entry["id"], "made": entry["made"]}
        if entry["kind"] == "image":
            item.update(image=load_image(folder / entry["file"]), attributes=entry["attributes"],
                        captions=[entry["caption"]])
        elif entry["kind"] == "prompt":
            item.update(prompt=entry["prompt"], attributes=entry["attributes"])
        elif entry["kind"] == "speech":
            item.update(waveform=load_audio(folder / entry["file"], rate), sample_rate=rate,
                        text=entry["transcript"])
        else:
            raise AnyGPTError(f"{manifest_path}: unknown item kind {entry['kind']!r} in {entry['id']}")
        sets[entry["kind"]].append(item)
    return sets
