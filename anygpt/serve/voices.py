"""The voices spoken replies can copy: clips stored with the server (voices/, written by
scripts/make_voices.py), OpenAI's voice names mapped onto them, or a clip sent with the request.

    Voices(codec_rate).get("alloy") -> the stored clip "slt" at the speech codec's rate
    Voices(codec_rate).get(None)    -> the default stored clip
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import numpy as np

from anygpt import media
from anygpt.serve.errors import bad_request


@cache
def _table() -> dict:
    return json.loads(resources.files("anygpt.serve").joinpath("voices/voices.json").read_text(encoding="utf-8"))


def voice_names() -> list[str]:
    """Stored voices, then OpenAI's names that map onto them."""
    table = _table()
    return list(table["voices"]) + list(table["aliases"])


class Voices:
    def __init__(self, sample_rate: int, seconds: float = 3.0):
        self.sample_rate, self.seconds = sample_rate, seconds
        self._loaded: dict[str, np.ndarray] = {}

    def get(self, name: str | None) -> np.ndarray:
        table = _table()
        name = table["default"] if name is None else table["aliases"].get(name, name)
        if name not in table["voices"]:
            raise bad_request(f"unknown voice {name!r}; choose one of {', '.join(voice_names())}, or send a clip",
                              param="audio.voice")
        if name not in self._loaded:
            data = resources.files("anygpt.serve").joinpath("voices", table["voices"][name]).read_bytes()
            self._loaded[name] = media.audio_from_bytes(data, self.sample_rate, source=f"voice {name}",
                                                        max_seconds=self.seconds)
        return self._loaded[name]
