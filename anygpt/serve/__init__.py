"""`anygpt serve`: an OpenAI-compatible HTTP API and a chat page over one bundle.

    command.py       the command line: load the bundle, start uvicorn
    app.py           the FastAPI app: routes, authentication, limits, errors in OpenAI's shape
    conversation.py  OpenAI messages (text, data-URL images, base64 audio) -> prompt ids
    replies.py       generated ids -> OpenAI messages and stream chunks (text deltas, audio chunks,
                     images, music)
    scheduler.py     the one thread that runs the model: every request in one running batch
    voices.py        stored prompt voices and OpenAI's voice names
    page/            the chat page served at /
"""
