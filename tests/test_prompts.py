"""Prompt formats render exactly as the released AnyGPT code renders them (strings written out here
by hand from the release's templates), and encode to the same ids as tokenizing that string."""

import re

import pytest
import torch

from anygpt.errors import AnyGPTError
from anygpt.layout import VocabLayout, official_layout_config
from anygpt.prompts import (
    DIRECTIONS,
    Media,
    encode_pieces,
    fill,
    format_names,
    load_format,
    load_pool,
    load_tasks,
    render_text,
)

LAYOUT = VocabLayout(official_layout_config(), 32000)
SYSTEM = ("You are an AI assistant named MMGPT who can understand and generate multimodal content, "
          "including text, speech, images and audio.")
IMAGE = Media("image", torch.arange(32)[None])
SPEECH = Media("speech", torch.tensor([[7, 7, 1000]]))
MUSIC = Media("music", torch.tensor([[1], [2], [3], [4]]))
IMAGE_STR = "<soim>" + "".join(f"<\U0001f440{k}>" for k in range(32)) + "<eoim>"
SPEECH_STR = "<sosp><\U0001f5e3\ufe0f7><\U0001f5e3\ufe0f7><\U0001f5e3\ufe0f1000><eosp>"
MUSIC_STR = "<somu><\U0001f3b61><\U0001f3b62050><\U0001f3b64099><\U0001f3b66148><eomu>"


def chat_prompt(message: str, forced: str = "") -> str:
    """The release's MMGPT conversation template, one user turn (get_prompt)."""
    return f"{SYSTEM}\n[Human]: {message}<eoh>\n[MMGPT]:" + (f" {forced}" if forced else "")


@pytest.mark.parametrize("task, value, message", [
    ("caption", IMAGE, f"{IMAGE_STR} Please describe the picture briefly."),
    ("t2i", "a red circle", "a red circle. Please generation an image."),
    ("t2i", "Is it a red circle?", "Is it a red circle? Please generation an image."),
    ("asr", SPEECH, f"{SPEECH_STR} Please transcribe the given speech."),
    ("tts", " hello there ", "hello there Please read the given text."),
    ("music_caption", MUSIC, f"{MUSIC_STR} Please interpret the given music and provide a textual description."),
    ("t2m", "calm piano", "calm piano Please compose a piece of music from the given text."),
    ("voice_chat", SPEECH, f"{SPEECH_STR} Please recognize the voice command and give reply and voice"),
])
def test_six_task_prompts_render_as_the_release(task, value, message):
    fmt = load_format("mmgpt")
    t = load_tasks()[task]
    forced = {"image": "<soim>", "speech": "<sosp>", "music": "<somu>"}.get(t.output, "")
    pieces = fmt.render_chat([("user", t.chat_pieces(value))], LAYOUT, want=t.output)
    assert render_text(pieces, LAYOUT) == chat_prompt(message, forced)


def test_the_six_tasks_and_their_modalities():
    tasks = load_tasks()
    assert {k: (t.input, t.output) for k, t in tasks.items()} == {
        "caption": ("image", "text"), "t2i": ("text", "image"), "asr": ("speech", "text"),
        "tts": ("text", "speech"), "music_caption": ("music", "text"), "t2m": ("text", "music"),
        "voice_chat": ("speech", "speech"),
    }
    assert tasks["voice_chat"].reply == "<-Ins-> {instruction}\n <-Res-> {response}"


def test_multi_turn_chat_matches_the_release_template():
    fmt = load_format("mmgpt")
    messages = [("user", ["Hello!"]), ("assistant", ["Hi!"]), ("user", ["How are you?"])]
    expected = f"{SYSTEM}\n[Human]: Hello!<eoh>\n[MMGPT]: Hi!<eos>\n[Human]: How are you?<eoh>\n[MMGPT]:"
    assert render_text(fmt.render_chat(messages, LAYOUT), LAYOUT) == expected


def test_anygpt_eom_variant():
    fmt = load_format("anygpt-eom")
    messages = [("user", ["Hello!"]), ("assistant", ["Hi!"]), ("user", ["Draw"])]
    text = render_text(fmt.render_chat(messages, LAYOUT, want="image"), LAYOUT)
    assert text == ("You are an AI assistant named AnyGPT who can understand and generate multimodal content, "
                    "including text, speech, images and audio.\n[Human]: Hello!<eoh>\n[AnyGPT]: Hi!<eom>\n"
                    "[Human]: Draw<eoh>\n[AnyGPT]: <soim>")


def test_base_templates_both_directions():
    fmt = load_format("base")
    x2t = fmt.base_pieces("to_text", "Describe this.", media=IMAGE, text="a red circle")
    assert render_text(x2t, LAYOUT) == f"[Human]: Describe this. {IMAGE_STR}<eoh> [MMGPT]: a red circle<eos>"
    t2x = fmt.base_pieces("from_text", "Compose this.", media=MUSIC, text="calm piano")
    assert render_text(t2x, LAYOUT) == f"[Human]: Compose this. This is input: calm piano<eoh> [MMGPT]: {MUSIC_STR}<eos>"
    # inference prompts are the same text cut right after "[MMGPT]:"
    assert render_text(fmt.base_pieces("to_text", "Describe this.", media=IMAGE), LAYOUT) == \
        f"[Human]: Describe this. {IMAGE_STR}<eoh> [MMGPT]:"
    cut = fmt.base_pieces("from_text", "Compose this.", text="calm piano", layout=LAYOUT, open_span="music")
    assert render_text(cut, LAYOUT) == "[Human]: Compose this. This is input: calm piano<eoh> [MMGPT]: <somu>"
    assert fmt.append_eos
    with pytest.raises(AnyGPTError, match="base format"):
        load_format("mmgpt").base_pieces("to_text", "x", media=IMAGE)


def test_our_chat_format():
    fmt = load_format("chat")
    text = render_text(fmt.render_chat([("user", ["hi"])], LAYOUT, want="speech"), LAYOUT)
    assert text.startswith("<|system|>") and text.endswith("<|user|>hi<|end|>\n<|assistant|><sosp>")
    assert fmt.stop_tokens[0] == "<|end|>"


@pytest.mark.parametrize("name", format_names())
def test_every_shipped_format_loads_and_declares_its_tokens(name):
    fmt = load_format(name)
    assert fmt.kind in ("chat", "base")
    assert fmt.generation_prompt and fmt.assistant_end in fmt.tokens
    assert set(fmt.stop_tokens) <= set(fmt.tokens)


@pytest.mark.parametrize("modality", ["image", "speech", "music"])
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_instruction_pools(modality, direction):
    pool = load_pool(modality, direction)
    assert len(pool) >= 50
    normalized = {re.sub(r"[^a-z0-9 ]", "", p.lower()).strip() for p in pool}
    assert len(normalized) == len(pool), "paraphrases must be distinct"
    assert all(p[-1] in ".?!" and "{" not in p for p in pool)


def test_unknown_names_give_clear_errors():
    with pytest.raises(AnyGPTError, match="unknown prompt format"):
        load_format("nope")
    with pytest.raises(AnyGPTError, match="no instruction pool"):
        load_pool("video", "to_text")
    with pytest.raises(AnyGPTError, match="needs a value"):
        fill("{a} {b}", a="x")


def test_encoding_piece_by_piece_equals_tokenizing_the_string(debug_bundle):
    """Text goes through the tokenizer, media by arithmetic: the same ids as the release's way of
    tokenizing the whole rendered string."""
    b = debug_bundle
    fmt = b.prompt_format
    for task, value in [("caption", IMAGE), ("t2i", "a red circle"), ("music_caption", MUSIC), ("asr", SPEECH)]:
        t = load_tasks()[task]
        pieces = fmt.render_chat([("user", t.chat_pieces(value)), ("assistant", [MUSIC, " done"]),
                                  ("user", ["again, please"])], b.layout, want="image")
        ours = encode_pieces(pieces, b.tokenizer, b.layout)
        theirs = b.tokenizer(render_text(pieces, b.layout), add_special_tokens=False)["input_ids"]
        assert ours == theirs
