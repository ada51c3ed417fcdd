"""The `tiny` bundle before training: AnyGPT's method at a size 2 CPU cores can train.

    text tokenizer   byte-level BPE of TEXT_VOCAB tokens learnt from the world's training text and
                     the package's prompt files (LLaMA's specials: <unk> 0, <s> 1, </s> 2)
    LLM              a Llama (LLM below), its vocabulary expanded by the same code path as LLaMA-2's
    layout           the official token strings and order, with the small codecs' codebooks:
                     image 1024 codes x 38 per picture (small-scene), speech 1024 (layer 1, one code
                     per phone: at most SPEECH_CODES_PER_SECOND), music 4 x 2048 frame-major (50 Hz)
    codecs           the trained small codecs shipped in anygpt/bundles/tiny/codecs/

`init_bundle(world, out)` writes the untrained bundle that `anygpt train` starts from; the trained
one is shipped in anygpt/bundles/tiny/ (see scripts/train_tiny.sh).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import torch

from anygpt.bundles.bundle import Bundle
from anygpt.bundles.debug import build_text_tokenizer, debug_corpus
from anygpt.bundles.load import CODECS_ONLY, load_bundle, load_codec_slots, save_bundle, write_manifest
from anygpt.generate.config import PRESETS
from anygpt.layout import OFFICIAL_IMAGE, OFFICIAL_MUSIC, OFFICIAL_SPEECH, LayoutConfig
from anygpt.model import random_llama
from anygpt.prompts import load_format
from anygpt.world import iter_rows, load_manifest

TEXT_VOCAB = 1024
# 5.95 M parameters (4.3 M of them the expanded embeddings and output layer): what 2 cores train in an hour
LLM = {"hidden_size": 192, "intermediate_size": 512, "num_hidden_layers": 4, "num_attention_heads": 6,
       "num_key_value_heads": 3, "max_position_embeddings": 2048, "rope_theta": 10000.0}
CODECS_DIR = Path(__file__).parent / "tiny"
MUSIC_SECONDS = 4.0  # the longest music span: the tiny LLM's clips (`anygpt data from-world --max-music-seconds`)
# the speech span's code rate, which bounds its length: one code per phone (small-speech, runs "merged"),
# and the world's speech has at most 16.7 phones a second (11.5 on average, 768 training utterances)
SPEECH_CODES_PER_SECOND = 20.0


def tiny_layout_config(image_tokens: int = 32) -> LayoutConfig:
    """The official layout's tokens, in the official order, sized for the small codecs: 1024 image
    codes, `image_tokens` of them per picture (small-scene: 38); speech spans of one code per phone."""
    image = replace(OFFICIAL_IMAGE, codebook_size=1024, tokens_per_item=image_tokens)
    speech = replace(OFFICIAL_SPEECH, frame_rate=SPEECH_CODES_PER_SECOND)
    return LayoutConfig(modalities=(image, speech, OFFICIAL_MUSIC))


def world_text(world: str | Path, split: str = "train") -> list[str]:
    """Every sentence of a world's split: captions, transcripts, conversation text."""
    kinds = load_manifest(world)["kinds"]
    lines: list[str] = []
    for kind in ("images", "speech", "music", "conversations"):
        if kind not in kinds:
            continue
        for row in iter_rows(world, kind, split):
            if row.get("captions"):
                lines += list(row["captions"])
            if row.get("text"):
                lines.append(row["text"])
            if kind == "conversations":
                for turn in json.loads(row["turns"]):
                    for seg in turn["content"]:
                        if seg.get("text"):
                            lines.append(seg["text"])
    return lines


def init_bundle(world: str | Path, out: str | Path, *, seed: int = 0, codecs_dir: str | Path = CODECS_DIR):
    """Write the untrained tiny bundle (tokenizer from `world`'s training text, random LLM, the
    shipped codecs) to `out`; returns the Bundle."""
    tokenizer = build_text_tokenizer(TEXT_VOCAB, world_text(world) + debug_corpus())
    codecs = load_codec_slots(codecs_dir, shipped=True)  # codecs.json: `anygpt codecs ship` may be newer than the LLM
    layout_config = tiny_layout_config(codecs["image"].get().tokens_per_item)
    with torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
        model, layout = random_llama(tokenizer, layout_config, seed=seed, **LLM)
    # music spans as long as the clips it learns from (scripts/train_tiny.sh cuts them to 4 s): a longer
    # input, or a longer reply, puts music codes at positions training never filled. Speech is one code
    # per phone, so a sampled code is a wrong phone: top-p 0.3 instead of the release's 0.7 (TTS WER 0.81
    # -> 0.72 on a world the evaluation does not use, docs/tiny.md). Music without the release's repetition
    # penalty: the tonal layer 1 holds one instrument's ids across a clip, and a penalty on ids already
    # in the span pushes the reply off them (frames of the caption's instrument 0.63 -> 0.86)
    decoding = PRESETS["paper"].override(max_new_tokens=1200, max_seconds={"speech": 8.0, "music": MUSIC_SECONDS},
                                         speech_top_p=0.3, music_repetition_penalty=1.0)
    bundle = Bundle(
        name="tiny",
        description="AnyGPT-tiny: a small Llama trained here on the offline world, with the small codecs.",
        model=model, tokenizer=tokenizer, layout=layout, prompt_format=load_format("mmgpt"),
        decoding=decoding, codecs=codecs,
    )
    save_bundle(bundle, out)
    return bundle


def ship(trained: str | Path, out: str | Path = CODECS_DIR) -> Path:
    """Turn a trained tiny bundle (the output of `anygpt train`) into the shipped one at `out`: the
    LLM in float16 safetensors (run in fp32), its tokenizer and decoding defaults, and the
    float16 codecs already in out/codecs/ (from `anygpt codecs ship`). Returns `out`."""
    out = Path(out)
    codecs = json.loads((out / CODECS_ONLY).read_text(encoding="utf-8"))
    bundle = load_bundle(trained)
    for name in ("llm", "tokenizer", "manifest.json"):
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    bundle.model.to(torch.float16).save_pretrained(out / "llm")
    bundle.tokenizer.save_pretrained(out / "tokenizer")
    bundle.name = "tiny"
    return write_manifest(bundle, out, codecs, {"load_dtype": "fp32"})
