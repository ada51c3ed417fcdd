"""`anygpt serve` over loopback, driven by the official `openai` client exactly as a user would."""

import base64
import io
import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.tiny_default


@pytest.fixture(scope="module")
def api(served):
    url, server = served("tiny")
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120), server, url


def png_data_url(colour=(200, 30, 30)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def wav_b64(seconds=1.0, rate=16000) -> str:
    t = np.arange(int(seconds * rate)) / rate
    wav = (0.3 * np.sin(2 * np.pi * 140 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, wav, rate, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode()


def extra(message, name):
    """A field of the reply, whether the client's model declares it (audio) or not (the extensions)."""
    value = getattr(message, name, None)
    if value is None:
        value = (message.model_extra or {}).get(name)
    return value.model_dump() if hasattr(value, "model_dump") else value


def test_models_and_health(api):
    client, server, url = api
    assert [m.id for m in client.models.list().data] == ["tiny"]
    health = json.load(urllib.request.urlopen(url + "/health"))
    assert health["status"] == "ok" and "alloy" in health["voices"]


def test_text_reply_and_its_stream_agree(api):
    client, _, _ = api
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": png_data_url()}},
                                             {"type": "text", "text": "Please describe the picture briefly."}]}]
    whole = client.chat.completions.create(model="tiny", messages=messages, modalities=["text"])
    text = whole.choices[0].message.content
    assert text and whole.choices[0].finish_reason == "stop"
    assert whole.usage.prompt_tokens > 38 and whole.usage.completion_tokens > 0
    parts = [c.choices[0].delta.content for c in client.chat.completions.create(
        model="tiny", messages=messages, modalities=["text"], stream=True) if c.choices and c.choices[0].delta.content]
    assert len(parts) >= 1 and "".join(parts) == text  # beam search: the same text, streamed


def test_image_reply(api):
    client, _, _ = api
    r = client.chat.completions.create(model="tiny", modalities=["text", "image"], messages=[
        {"role": "user", "content": "a large red circle in the middle. Please generation an image."}])
    images = extra(r.choices[0].message, "images")
    url = images[0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size == (64, 64)


def test_speech_reply_in_every_format(api):
    client, _, _ = api
    for fmt in ("wav", "flac", "mp3"):
        r = client.chat.completions.create(model="tiny", modalities=["text", "audio"], audio={"voice": "alloy", "format": fmt},
                                           messages=[{"role": "user", "content": "the dog runs. Please read the given text."}])
        audio = r.choices[0].message.audio
        wav, rate = sf.read(io.BytesIO(base64.b64decode(audio.data)))
        assert rate == 16000 and len(wav) / rate > 0.2, fmt
        assert audio.id == extra(r.choices[0].message, "reply_id")


def test_a_voice_sent_as_a_clip(api):
    client, _, _ = api
    clip = "data:audio/wav;base64," + wav_b64(2.0)
    r = client.chat.completions.create(model="tiny", modalities=["text", "audio"], audio={"voice": clip, "format": "wav"},
                                       messages=[{"role": "user", "content": "the dog runs. Please read the given text."}])
    wav, rate = sf.read(io.BytesIO(base64.b64decode(r.choices[0].message.audio.data)))
    assert len(wav) / rate > 0.2
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="tiny", modalities=["text", "audio"], audio={"voice": "data:audio/wav;base64,@@"},
                                       messages=[{"role": "user", "content": "hi"}])


def test_streamed_speech_comes_in_chunks_before_the_end(api):
    client, _, _ = api
    chunks, order = [], []
    for c in client.chat.completions.create(
            model="tiny", modalities=["text", "audio"], audio={"voice": "echo", "format": "pcm16"}, stream=True,
            messages=[{"role": "user", "content": "the small brown dog runs across the green field. Please read the given text."}]):
        if not c.choices:
            continue
        audio = extra(c.choices[0].delta, "audio")
        if audio and audio.get("data"):
            chunks.append(np.frombuffer(base64.b64decode(audio["data"]), dtype="<i2"))
            order.append("audio")
        if c.choices[0].finish_reason:
            order.append("finish")
    assert len(chunks) >= 2 and order[-1] == "finish"
    seconds = sum(len(c) for c in chunks) / 24000
    assert seconds > 0.3


def test_history_by_reply_id_reuses_the_cache(api):
    client, server, _ = api
    first = [{"role": "user", "content": "the dog runs. Please read the given text."}]
    r1 = client.chat.completions.create(model="tiny", modalities=["text", "audio"], audio={"format": "wav"}, messages=first)
    reply_id = extra(r1.choices[0].message, "reply_id")
    follow = first + [{"role": "assistant", "audio": {"id": reply_id}},
                      {"role": "user", "content": "Please transcribe the given speech."}]
    r2 = client.chat.completions.create(model="tiny", modalities=["text"], messages=follow)
    details = r2.usage.prompt_tokens_details
    # the first reply's ids are the history: the cache kept from it covers all of them but its last
    # two (the span's end token and the stop token, never fed through the model)
    assert details.cached_tokens >= r1.usage.prompt_tokens + r1.usage.completion_tokens - 2
    assert r2.usage.prompt_tokens > details.cached_tokens


def test_prompt_of_a_stored_reply_is_the_chat_sessions_history(served):
    from anygpt.chat import ChatSession
    from anygpt.serve import conversation as conv

    _, server = served("tiny")
    bundle = server.bundle
    session = ChatSession(bundle, decoding=bundle.decoding.override(max_new_tokens=40))
    first = ["the dog runs. Please read the given text."]
    reply = session.ask(first, want="speech")
    generated = reply.ids[1:]  # without the forced <sosp>, and without the stop token, as the server stores it
    if generated and generated[-1] in bundle.stop_ids:
        generated = generated[:-1]
    talk = conv.Conversation(None, [conv.Turn("user", first),
                                    conv.Turn("assistant", reply=conv.StoredReply("speech", generated)),
                                    conv.Turn("user", ["hello"])])
    assert conv.prompt_ids(bundle, talk, None) == session.prompt_ids(["hello"])


def test_task_endpoints(api):
    client, _, _ = api
    t = client.audio.transcriptions.create(model="tiny", file=("a.wav", base64.b64decode(wav_b64()), "audio/wav"))
    assert isinstance(t.text, str)
    text = client.audio.transcriptions.create(model="tiny", file=("a.wav", base64.b64decode(wav_b64())),
                                              response_format="text")
    assert isinstance(text, str)
    verbose = client.audio.transcriptions.create(model="tiny", file=("a.wav", base64.b64decode(wav_b64(seconds=1.5))),
                                                 response_format="verbose_json")
    assert verbose.duration == 1.5  # the upload's length, not the count of codes the LLM read
    for fmt in ("wav", "mp3", "flac"):
        spoken = client.audio.speech.create(model="tiny", voice="nova", input="the dog runs", response_format=fmt)
        wav, rate = sf.read(io.BytesIO(spoken.content))
        assert len(wav) / rate > 0.2
    pcm = client.audio.speech.create(model="tiny", voice="nova", input="the dog runs", response_format="pcm")
    assert len(pcm.content) % 2 == 0 and len(pcm.content) > 24000 * 2 * 0.2
    image = client.images.generate(model="tiny", prompt="a small blue square at the top", response_format="b64_json")
    assert Image.open(io.BytesIO(base64.b64decode(image.data[0].b64_json))).size == (64, 64)


def test_concurrent_requests_decode_in_one_batch(api):
    client, server, _ = api
    before = server.scheduler.peak_batch
    server.scheduler.peak_batch = 0
    errors = []

    def ask(i):
        try:
            client.chat.completions.create(model="tiny", modalities=["text", "audio"], audio={"format": "wav"},
                                           messages=[{"role": "user", "content": f"the dog number {i} runs. Please read the given text."}])
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert server.scheduler.peak_batch >= 3  # not one after another
    server.scheduler.peak_batch = max(before, server.scheduler.peak_batch)


# --- errors: OpenAI's shape, the right status, never a 500 for bad input ---------------------------------

BAD_CHAT_BODIES = [
    ({"messages": []}, 400),
    ({"messages": "hi"}, 400),
    ({"messages": [{"role": "robot", "content": "hi"}]}, 400),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, 400),
    ({"messages": [{"role": "user", "content": 5}]}, 400),
    ({"messages": [{"role": "user", "content": [{"type": "video", "video": "x"}]}]}, 400),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}, 400),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]}, 400),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}]}]}, 400),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}]}]}, 400),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "aGVsbG8=", "format": "wav"}}]}]}, 400),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": wav_b64(), "format": "aac"}}]}]}, 400),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": wav_b64(40.0), "format": "wav"}}]}]}, 400),
    ({"messages": [{"role": "user", "content": "hi"}], "modalities": ["audio", "image"]}, 400),
    ({"messages": [{"role": "user", "content": "hi"}], "modalities": ["video"]}, 400),
    ({"messages": [{"role": "user", "content": "hi"}], "audio": {"voice": "nobody", "format": "wav"}, "modalities": ["audio"]}, 400),
    ({"messages": [{"role": "user", "content": "hi"}], "audio": {"format": "opus"}, "modalities": ["audio"]}, 400),
    ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, 400),
    ({"messages": [{"role": "user", "content": "hi"}], "temperature": 5}, 400),
    ({"messages": [{"role": "user", "content": "hi"}], "n": 3}, 400),
    ({"messages": [{"role": "user", "content": "hi"}], "stream": True, "modalities": ["audio"], "audio": {"format": "wav"}}, 400),
    ({"messages": [{"role": "user", "content": "x" * 30000}]}, 413),
    ({"messages": [{"role": "user", "content": "hi"}] * 100}, 413),
]


def post(url, path, body: bytes, headers=None):
    request = urllib.request.Request(url + path, data=body, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.mark.parametrize("body,status", BAD_CHAT_BODIES, ids=range(len(BAD_CHAT_BODIES)))
def test_bad_requests_get_openai_errors(api, body, status):
    _, _, url = api
    code, raw = post(url, "/v1/chat/completions", json.dumps(body).encode())
    assert code == status, raw
    error = json.loads(raw)["error"]
    assert error["message"] and error["type"] == "invalid_request_error"


@pytest.mark.parametrize("path,raw", [("/v1/chat/completions", b"{not json"), ("/v1/chat/completions", b"[1, 2]"),
                                      ("/v1/audio/speech", b'{"input": ""}'), ("/v1/audio/speech", b'{"input": "hi", "response_format": "aac"}'),
                                      ("/v1/images/generations", b'{"prompt": 3}'), ("/v1/audio/transcriptions", b"{}")])
def test_bad_bodies_of_every_endpoint(api, path, raw):
    _, _, url = api
    code, out = post(url, path, raw)
    assert code == 400, out
    assert json.loads(out)["error"]["type"] == "invalid_request_error"


def test_the_client_sees_status_errors(api):
    client, _, _ = api
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny", messages=[
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}])
    assert "data: URLs" in caught.value.message


def test_key_and_body_size(served):
    url, _ = served("tiny", api_key="sekrit", max_body_bytes=200_000)
    code, raw = post(url, "/v1/models", b"", headers={})
    assert code in (401, 405)
    denied = openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        denied.models.list()
    allowed = openai.OpenAI(base_url=url + "/v1", api_key="sekrit", max_retries=0)
    assert allowed.models.list().data[0].id == "tiny"
    assert json.load(urllib.request.urlopen(url + "/health"))["status"] == "ok"  # no key for health and the page
    big = json.dumps({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": wav_b64(8.0), "format": "wav"}}]}]}).encode()
    code, raw = post(url, "/v1/chat/completions", big, headers={"Authorization": "Bearer sekrit"})
    assert code == 413 and json.loads(raw)["error"]["message"]


def test_overload_is_a_503(served):
    url, server = served("tiny", max_jobs=1)
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=120)
    long = client.chat.completions.create(model="tiny", modalities=["text", "music"], stream=True, messages=[
        {"role": "user", "content": "a slow sad piano piece. Please compose a piece of music from the given text."}])
    next(iter(long))  # accepted: the one job in progress
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 503
    long.close()
