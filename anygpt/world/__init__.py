"""A procedural multimodal world: image scenes, speech, music and AnyInstruct-style conversations.

`anygpt data world --out DIR` writes it as sharded Parquet plus a manifest (see README.md here);
`iter_items` reads it back. Every item is generated from (seed, kind, index) alone.

Code outside this package uses only the names below: the readers, the build, the items of one split
made without a build (the demo's inputs), and the vocabularies that captions and judges are made of.
Everything else in the submodules is the generator's own business and may change with it.
"""

from anygpt.world.build import build as build_world
from anygpt.world.config import KINDS, MODALITY_KINDS, WorldConfig, kind_of, modality_of
from anygpt.world.items import image_rows, music_rows, speech_rows
from anygpt.world.pngwav import decode_png, decode_wav, png_bytes, wav_bytes
from anygpt.world.music import TONIC_NAMES, find_soundfont, music_table, tempo_word
from anygpt.world.music import captions as music_captions
from anygpt.world.reader import iter_items, iter_rows, load_manifest, take_items
from anygpt.world.scenes import background_phrase, caption_scene, object_phrase, render_scene, sample_scene
from anygpt.world.scenes import where_phrase
from anygpt.world.sentences import generate as sentence
from anygpt.world.sentences import vocabulary_words
from anygpt.world.speech import phone_alignment, synthesize
from anygpt.world.speech import sample_rate as speech_rate
from anygpt.world.splits import SPLITS, assign as assign_splits, hashed_split, held_out_pairs
from anygpt.world.tables import load as table
from anygpt.world.words import article, join_list

__all__ = [
    "KINDS", "MODALITY_KINDS", "SPLITS", "TONIC_NAMES", "WorldConfig", "article", "assign_splits",
    "background_phrase", "build_world", "caption_scene", "decode_png", "decode_wav", "find_soundfont",
    "hashed_split", "held_out_pairs", "image_rows", "iter_items", "iter_rows", "join_list", "kind_of",
    "load_manifest", "modality_of", "music_captions", "music_rows", "music_table", "object_phrase",
    "phone_alignment", "png_bytes", "render_scene", "sample_scene", "sentence", "speech_rate", "speech_rows",
    "synthesize", "table", "take_items", "tempo_word", "vocabulary_words", "wav_bytes", "where_phrase",
]
