"""OpenAI's single-task endpoints, each the release's task prompt on the chat machinery:

    POST /v1/audio/transcriptions   multipart audio -> text      (asr)
    POST /v1/audio/speech           text -> audio bytes           (tts)
    POST /v1/images/generations     text -> a PNG                 (t2i)
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from fastapi.responses import Response

from anygpt import media
from anygpt.generate.segments import parse_reply
from anygpt.prompts import load_tasks
from anygpt.serve import conversation as conv
from anygpt.serve import replies
from anygpt.serve.errors import APIError, bad_request
from anygpt.serve.scheduler import Job
from anygpt.serve.server import Server

SPEECH_FORMATS = {"wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "pcm16": "audio/L16",
                  "pcm": "audio/L16"}  # pcm: /v1/audio/speech's name for pcm16


def register(app: FastAPI, server: Server) -> None:
    bundle, config = server.bundle, server.config

    async def task_reply(task_name: str, value, want: str, body: dict) -> tuple[Job, replies.Rendered]:
        task = load_tasks()[task_name]
        talk = conv.Conversation(None, [conv.Turn("user", task.chat_pieces(value))])
        prompt = await server.media(conv.prompt_ids, bundle, talk, want)
        decoding = server.request_decoding(body, want, prompt)
        job = await server.run(prompt, decoding, want)
        segments = parse_reply(server.forced(want) + job.ids, bundle.layout, bundle.tokenizer, stop_ids=bundle.stop_ids)

        def render():  # the voice and the decoding in one turn of the media thread
            voice = server.voice(body.get("voice")) if want == "speech" else None
            return replies.render(bundle, segments, voice=voice, seed=decoding.seed or 0)

        return job, await server.media(render)

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request):
        try:
            form = await request.form(max_part_size=config.max_body_bytes)
        except APIError:
            raise
        except Exception as e:  # noqa: BLE001 - a malformed form is the client's
            raise bad_request(f"expected a multipart form with a file ({e})") from None
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise bad_request("the form needs a file field with the audio", param="file")
        fmt = form.get("response_format", "json")
        if fmt not in ("json", "text", "verbose_json"):
            raise bad_request("response_format must be json, text or verbose_json", param="response_format")
        data = await upload.read()
        speech = await server.media(conv.encode_audio_bytes, bundle, data, "speech", "file", config.limits)
        job, rendered = await task_reply("asr", speech, "text", {})
        if fmt == "text":
            return Response(rendered.text + "\n", media_type="text/plain")
        out = {"text": rendered.text}
        if fmt == "verbose_json":
            # the upload's own length: a codec may hand the LLM fewer codes than frames (one per phone)
            out.update(task="transcribe", duration=round(media.audio_seconds(data), 3))
        return out

    @app.post("/v1/audio/speech")
    async def speech(request: Request):
        body = await server.json_body(request)
        text = server.text_field(body, "input")
        fmt = body.get("response_format", "mp3")
        if fmt not in SPEECH_FORMATS:
            raise bad_request(f"response_format must be one of {', '.join(SPEECH_FORMATS)}", param="response_format")
        job, rendered = await task_reply("tts", text, "speech", body)
        if rendered.speech is None:
            raise APIError(500, "the model produced no speech that can be decoded", code="no_speech")
        data = await server.media(replies.speech_bytes, bundle, rendered.speech, "pcm16" if fmt == "pcm" else fmt)
        return Response(data, media_type=SPEECH_FORMATS[fmt])

    @app.post("/v1/images/generations")
    async def images(request: Request):
        body = await server.json_body(request)
        prompt = server.text_field(body, "prompt")
        if body.get("n", 1) != 1:
            raise bad_request("only n=1 is supported", param="n")
        fmt = body.get("response_format", "b64_json")
        if fmt not in ("b64_json", "url"):
            raise bad_request("response_format must be b64_json or url", param="response_format")
        job, rendered = await task_reply("t2i", prompt, "image", body)
        if not rendered.images:
            raise APIError(500, "the model produced no picture that can be decoded", code="no_image")
        png = media.png_bytes(rendered.images[0])
        item = {"b64_json": replies.b64(png)} if fmt == "b64_json" else {"url": replies.data_url("image/png", png)}
        return {"created": int(time.time()), "data": [item]}
