"""Classifier-free guidance in the engine: the ids of transformers' own guidance processor, no effect
when the unconditional prompt is the prompt itself, the shadow row invisible to callers, and the chat
session's unconditional prompt (the prompt without the user's text)."""

import pytest
import torch

from anygpt.chat import ChatSession
from anygpt.errors import AnyGPTError
from anygpt.generate.config import PRESETS, DecodingConfig, parse_settings
from anygpt.generate.engine import GenerationRequest, Row, generate, generate_ids, generate_inputs, span_constraint
from anygpt.generate.reference import generate_ids_reference
from anygpt.prompts import load_tasks

pytestmark = pytest.mark.usefixtures("one_thread")

CAPTION = "A slow piano piece in C major."


@pytest.fixture(scope="module")
def tiny():
    from anygpt.bundles import load_bundle

    return load_bundle("tiny")


def greedy(scale: float, seconds: float = 0.4) -> DecodingConfig:
    return PRESETS["greedy"].override(max_new_tokens=60, music_guidance_scale=scale,
                                      max_seconds={"speech": 0.6, "music": seconds})


def t2m_prompts(b) -> tuple[list[int], list[int]]:
    """The text -> music task prompt and the same prompt without the user's text."""
    session = ChatSession(b)
    return session.prompt_ids(load_tasks()["t2m"].chat_pieces(CAPTION), "music"), session.prompt_ids([], "music")


def span_of(b, ids: list[int]) -> list[int]:
    """The ids up to the music span's end token."""
    end = b.layout["music"].end_id
    return ids[: ids.index(end) + 1] if end in ids else ids


def transformers_guided(b, prompt: list[int], uncond: list[int], decoding: DecodingConfig) -> list[int]:
    """`model.generate` with the span constraint, then transformers' guidance processor (which guides
    every token, so only the span is comparable)."""
    from transformers import GenerationConfig, LogitsProcessorList
    from transformers.generation.logits_process import UnbatchedClassifierFreeGuidanceLogitsProcessor

    constraint = span_constraint(b.layout, decoding, None, b.model.get_output_embeddings().weight.shape[0])
    input_ids, mask, budget, processors = generate_inputs([Row(list(prompt), None)], decoding, b.pad_id, constraint)
    processors.append(UnbatchedClassifierFreeGuidanceLogitsProcessor(
        decoding.music.guidance_scale, b.model, unconditional_ids=torch.tensor([uncond])))
    config = GenerationConfig(max_new_tokens=budget, eos_token_id=b.stop_ids, pad_token_id=b.pad_id,
                              do_sample=False, num_beams=1)
    with torch.no_grad():
        out = b.model.generate(input_ids=input_ids, attention_mask=mask, generation_config=config,
                               logits_processor=LogitsProcessorList(processors))
    return out[0, input_ids.shape[1]:].tolist()


@pytest.mark.parametrize("bundle", ["debug", "tiny"])
def test_guided_ids_are_transformers_guided_ids(request, tiny, bundle):
    b = tiny if bundle == "tiny" else request.getfixturevalue("debug_bundle")
    prompt, uncond = t2m_prompts(b)
    d = greedy(3.0)
    kw = dict(stop_ids=b.stop_ids, pad_id=b.pad_id)
    ours = generate_ids(b.model, b.layout, [GenerationRequest(prompt, unconditional=uncond)], d, **kw)[0]
    plain = generate_ids(b.model, b.layout, [GenerationRequest(prompt)], d, **kw)[0]
    assert len(span_of(b, ours)) > 8
    assert span_of(b, ours) == span_of(b, transformers_guided(b, prompt, uncond, d))
    assert span_of(b, ours) != span_of(b, plain)  # guidance changed the reply


def test_guiding_by_the_prompt_itself_changes_nothing(debug_bundle):
    """u = c: u + s (c - u) is c's log-probabilities, whatever s; sampled with a seed too."""
    b = debug_bundle
    prompt, _ = t2m_prompts(b)
    kw = dict(stop_ids=b.stop_ids, pad_id=b.pad_id)
    for d in (greedy(4.0), PRESETS["paper"].override(max_new_tokens=60, seed=3, music_guidance_scale=4.0,
                                                      music_repetition_penalty=1.0, max_seconds={"music": 0.4})):
        same = generate_ids(b.model, b.layout, [GenerationRequest(prompt, unconditional=prompt)], d, **kw)
        assert same == generate_ids(b.model, b.layout, [GenerationRequest(prompt)], d, **kw)


def test_a_guided_row_in_a_batch_and_its_stream(debug_bundle):
    """Guided and unguided rows of several modalities in one batch: each row's ids are those it gets
    alone, and the callback streams the requests' tokens only (not the shadow rows')."""
    b = debug_bundle
    prompt, uncond = t2m_prompts(b)
    text = ChatSession(b).prompt_ids(["hello"], "text")
    image = ChatSession(b).prompt_ids(["a red circle"], "image")
    reqs = [GenerationRequest(text, allowed_starts=()), GenerationRequest(prompt, unconditional=uncond),
            GenerationRequest(image, unconditional=image[:4]), GenerationRequest(prompt, unconditional=uncond)]
    d = greedy(2.5).override(image_guidance_scale=2.0)
    kw = dict(stop_ids=b.stop_ids, pad_id=b.pad_id)
    streamed: dict[int, list[int]] = {}
    batch = generate(b.model, b.layout, reqs, d, on_token=lambda i, t: streamed.setdefault(i, []).append(t), **kw)
    alone = [generate_ids(b.model, b.layout, [r], d, **kw)[0] for r in reqs]
    assert [g.ids for g in batch] == alone
    assert streamed == {i: g.ids for i, g in enumerate(batch) if g.ids}
    assert alone[1] == alone[3]


def test_the_reference_path_refuses_guidance(debug_bundle):
    b = debug_bundle
    prompt, uncond = t2m_prompts(b)
    with pytest.raises(ValueError, match="does not guide"):
        generate_ids_reference(b.model, b.layout, [GenerationRequest(prompt, unconditional=uncond)], greedy(3.0),
                               stop_ids=b.stop_ids, pad_id=b.pad_id)


def test_session_guides_a_media_reply_by_the_prompt_without_the_users_text(tiny):
    prompt, uncond = t2m_prompts(tiny)
    d = greedy(3.0)
    reply = ChatSession(tiny, decoding=d).ask(load_tasks()["t2m"].chat_pieces(CAPTION), want="music")
    ids = generate_ids(tiny.model, tiny.layout, [GenerationRequest(prompt, unconditional=uncond)], d,
                       stop_ids=tiny.stop_ids, pad_id=tiny.pad_id)[0]
    assert reply.ids[1:] == ids  # after the span start the prompt opened
    unguided = ChatSession(tiny, decoding=greedy(1.0)).ask(load_tasks()["t2m"].chat_pieces(CAPTION), want="music")
    assert span_of(tiny, unguided.ids) != span_of(tiny, reply.ids)


def test_guidance_scale_setting():
    assert parse_settings(["music_guidance_scale=3"]) == {"music_guidance_scale": 3.0}
    assert DecodingConfig().override(music_guidance_scale=3.0).guided("music")
    assert not DecodingConfig().override(music_guidance_scale=3.0).guided("image")
    assert not DecodingConfig().guided(None)
    with pytest.raises(AnyGPTError, match="guidance_scale"):
        parse_settings(["music_guidance_scale=-1"])
