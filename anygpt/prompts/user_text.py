"""Text a user typed, and the one encoder that turns it into ids without control tokens.

The prompt builder may write role tokens ([Human], <eoh>), span tokens (<soim>) and code tokens; a
user may not. Typing "[Human]" or "<soim>" must give the ids of those characters as plain text, never
the control id, or a message could forge turns and spans.

    prompt pieces      "[Human]: " | UserText("hi <soim>") | "<eoh>\n"
                       `---------- one run of text, tokenized together ----------'
    normal case        the run through the tokenizer as one string (ids exactly as before), and
                       no control id may come from the user's characters (checked by offsets)
    a control id in    each part on its own: the builder's parts with control tokens live, the
    the user's part    user's parts with no added token live (`encode_user_text`)

Control ids: the tokenizer's special and added tokens and every id of the vocabulary layout.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass

from anygpt.errors import AnyGPTError


@dataclass(frozen=True)
class UserText:
    """A stretch of text that came from the user (a message, a caption): never a source of control ids."""

    text: str

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise TypeError(f"UserText holds a str, got {type(self.text).__name__}")
        try:
            self.text.encode("utf-8")
        except UnicodeEncodeError:  # e.g. undecodable bytes from the command line (lone surrogates)
            raise AnyGPTError(f"the text {self.text[:40]!r} is not valid Unicode") from None


_CONTROL_IDS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def control_ids(tokenizer, layout) -> frozenset[int]:
    """Ids user text may never produce: specials, added tokens, and the layout's tokens. Kept per
    tokenizer (reading its added vocabulary costs milliseconds with thousands of code tokens) until
    its size or the layout changes."""
    key = (len(tokenizer), layout.base_vocab_size, layout.vocab_size)
    kept = _CONTROL_IDS.get(tokenizer)
    if kept is not None and kept[0] == key:
        return kept[1]
    ids = set(tokenizer.all_special_ids) | set(tokenizer.get_added_vocab().values())
    ids |= set(range(layout.base_vocab_size, max(layout.vocab_size, len(tokenizer))))
    _CONTROL_IDS[tokenizer] = (key, frozenset(ids))
    return _CONTROL_IDS[tokenizer][1]


def encode_user_text(text: str, tokenizer, forbidden: frozenset[int]) -> list[int]:
    """Ids of `text` as plain text: the tokenizer's model with no added token live."""
    if getattr(tokenizer, "is_fast", False):
        from tokenizers import Tokenizer

        spec = json.loads(tokenizer.backend_tokenizer.to_str())
        spec["added_tokens"] = []  # nothing is matched as a whole token: "<soim>" is "<", "so", "im", ">"
        ids = Tokenizer.from_str(json.dumps(spec)).encode(text, add_special_tokens=False).ids
    else:  # a slow tokenizer cannot switch its added tokens off: refuse below instead
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    bad = [i for i in ids if i in forbidden]
    if bad:
        token = tokenizer.convert_ids_to_tokens(bad[0])
        raise AnyGPTError(f"the text {text[:40]!r} holds the reserved token {token!r}, which a message cannot contain")
    return ids


def encode_text_run(parts: list, tokenizer, layout) -> list[int]:
    """Ids of consecutive text parts (str from the prompt builder, UserText from the user)."""
    text = "".join(p.text if isinstance(p, UserText) else p for p in parts)
    spans, at = [], 0
    for p in parts:
        n = len(p.text if isinstance(p, UserText) else p)
        if isinstance(p, UserText) and n:
            spans.append((at, at + n))
        at += n
    if not spans:
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    forbidden = control_ids(tokenizer, layout)
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        forged = any(i in forbidden and any(s < e2 and s2 < e for s2, e2 in spans)
                     for i, (s, e) in zip(enc["input_ids"], enc["offset_mapping"]))
        if not forged:
            return list(enc["input_ids"])
    ids: list[int] = []
    for p in parts:
        if isinstance(p, UserText):
            ids += encode_user_text(p.text, tokenizer, forbidden)
        elif p:
            ids += tokenizer(p, add_special_tokens=False)["input_ids"]
    return ids
