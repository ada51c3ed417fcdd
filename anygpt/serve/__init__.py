"""`anygpt serve`: an OpenAI-compatible HTTP API and a chat page over one bundle.

    command.py       the command line: bind the port, load the bundle, start uvicorn
    app.py           the FastAPI app: authentication, body limit, errors in OpenAI's shape, page, health
    chat_api.py      POST /v1/chat/completions, whole or streamed
    tasks_api.py     transcriptions, speech and image generation (the release's task prompts)
    server.py        the state behind the routes: scheduler, media threads, stored replies, voices
    conversation.py  OpenAI messages (text, data-URL images, base64 audio) -> prompt ids
    replies.py       generated ids -> OpenAI messages and stream events (text deltas, speech chunks,
                     pictures, music)
    scheduler.py     the one thread that runs the model: every request in one running batch
    voices.py        stored prompt voices and OpenAI's voice names
    page/            the chat page served at /
"""
