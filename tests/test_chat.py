import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from anygpt.chat import ChatSession, encode_media, write_segments
from anygpt.errors import AnyGPTError
from anygpt.generate.config import PRESETS
from anygpt.prompts import load_tasks


@pytest.fixture
def session(debug_bundle):
    return ChatSession(debug_bundle, decoding=debug_bundle.decoding.override(max_new_tokens=60, seed=0))


def test_history_is_kept_as_token_ids(session):
    b = session.bundle
    first_prompt = session.prompt_ids(["Hello there"])
    assert first_prompt[0] == b.tokenizer.bos_token_id
    reply = session.ask(["Hello there"], want="text")
    body = [t for t in reply.ids if t not in b.stop_ids]
    end = b.token_ids(["<eos>"])
    assert session.history == first_prompt + body + end
    second = session.prompt_ids(["And again?"])
    assert second[: len(session.history)] == session.history  # nothing re-tokenized
    tail = b.tokenizer.decode(second[len(session.history):])
    assert tail == "\n[Human]: And again?<eoh>\n[MMGPT]:"
    session.reset()
    assert session.prompt_ids(["Hello there"]) == first_prompt


def test_want_text_never_opens_a_span(session):
    reply = session.ask(["Tell me something"], want="text")
    assert all(s.modality == "text" for s in reply.segments)


def test_want_image_gives_one_whole_image(session, tmp_path):
    t2i = load_tasks()["t2i"]
    reply = session.ask(t2i.chat_pieces("a red circle"), want="image")
    image = reply.segments[0]
    assert image.modality == "image" and image.num_codes == 32 and image.complete
    rows = write_segments(session.bundle, reply.segments, tmp_path)
    assert rows[0]["num_codes"] == 32
    assert Image.open(rows[0]["path"]).size == (64, 64)


def test_speech_reply_follows_the_voice_prompt(session, tmp_path):
    b = session.bundle
    reply = session.ask(["Read this please"], want="speech")
    seg = reply.segments[0]
    assert seg.modality == "speech" and seg.num_codes > 0
    t = np.arange(16000) / 16000
    voice_a = (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)
    voice_b = (0.3 * np.sign(np.sin(2 * np.pi * 90 * t))).astype(np.float32)
    a = write_segments(b, [seg], tmp_path / "a", voice=voice_a)[0]
    b_ = write_segments(b, [seg], tmp_path / "b", voice=voice_b)[0]
    wa, sr = sf.read(a["path"])
    wb, _ = sf.read(b_["path"])
    assert sr == 16000 and len(wa) == seg.num_codes * 320 and a["seconds"] == seg.num_codes / 50
    assert not np.allclose(wa, wb), "the voice prompt must change the decoded voice"


def test_batch_of_independent_questions(debug_bundle):
    session = ChatSession(debug_bundle, decoding=PRESETS["greedy"].override(max_new_tokens=40))
    replies = session.ask_batch([["a"], ["b c d e f"], ["g"]], want="music")
    assert len(replies) == 3 and session.history == []
    for r in replies:
        music = r.segments[0]
        assert music.modality == "music" and music.num_codes % 4 == 0 and music.complete
    # batching does not change answers: the same question alone gives the same ids
    alone = session.ask_batch([["b c d e f"]], want="music")[0]
    assert alone.ids == replies[1].ids


def test_encode_media_and_bad_inputs(session, tmp_path):
    b = session.bundle
    Image.new("RGB", (30, 20), (255, 0, 0)).save(tmp_path / "x.png")
    assert encode_media(b, "image", tmp_path / "x.png").codes.shape == (1, 32)
    sf.write(tmp_path / "long.wav", 0.2 * np.random.default_rng(0).standard_normal(32000 * 12), 32000)
    music = encode_media(b, "music", tmp_path / "long.wav")
    assert music.codes.shape == (4, 50)  # cropped from the start to the 1 s span limit
    with pytest.raises(AnyGPTError, match="unknown output modality"):
        session.ask(["x"], want="video")


def test_base_format_builds_single_turn_prompts(debug_bundle):
    from dataclasses import replace

    from anygpt.prompts import load_format

    base = replace(debug_bundle, prompt_format=load_format("base"))
    session = ChatSession(base, decoding=PRESETS["greedy"].override(max_new_tokens=40))
    prompt = session.prompt_ids(["a red circle"], want="image")
    text = debug_bundle.tokenizer.decode(prompt)
    assert text.startswith("<s>[Human]: ") and text.endswith("This is input: a red circle<eoh> [MMGPT]: <soim>")
    with pytest.raises(AnyGPTError, match="needs --want"):
        session.prompt_ids(["a red circle"])
    reply = session.ask(["a red circle"], want="image")
    assert reply.segments[0].num_codes == 32 and session.history == []
