"""Load the JSON data files (vocabularies, templates, instrument and voice tables) in one place."""

import functools
import json
from importlib import resources


@functools.cache
def load(name: str) -> dict:
    """The parsed `<name>.json` beside this module. Cached: treat the result as read-only."""
    text = resources.files(__package__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text)
