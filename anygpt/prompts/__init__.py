"""Prompt formats, task prompts and instruction pools: data files in this folder, loaded only here.

A prompt is a list of pieces: plain strings (the prompt builder's own text), `UserText` (what a user
typed) and `Media` (a modality name and its codes). Strings go through the text tokenizer (which
knows role tokens such as [Human] as added tokens); user text goes through the same tokenizer but can
never produce a control id (see user_text.py); media become ids by arithmetic in the vocabulary
layout. Because every media span starts and ends with an added token, encoding the pieces one by one
gives the same ids as tokenizing the whole rendered string.
"""

from __future__ import annotations

import functools
import string
import tomllib
from dataclasses import dataclass, fields
from importlib import resources
from typing import Union

import torch

from anygpt.errors import AnyGPTError
from anygpt.layout import VocabLayout
from anygpt.prompts.user_text import UserText, encode_text_run


@dataclass(frozen=True)
class Media:
    modality: str
    codes: torch.Tensor  # (K, T) codes as the codec returns them

    def __repr__(self) -> str:
        return f"Media({self.modality}, codes={tuple(self.codes.shape)})"


Piece = Union[str, UserText, Media]
DIRECTIONS = ("to_text", "from_text")


@dataclass(frozen=True)
class PromptFormat:
    """One prompt format (a `formats/*.toml` file). Chat formats render turns; base formats render
    the pretraining templates in both directions."""

    name: str
    kind: str  # "chat" or "base"
    description: str
    tokens: tuple[str, ...]  # role / end tokens the vocabulary layout must contain
    add_bos: bool = True
    stop_tokens: tuple[str, ...] = ()
    generation_prompt: str = ""  # what the assistant's turn starts with
    media_prefix: str = " "  # between generation_prompt and a forced media start token
    assistant_end: str = ""  # token closing an assistant turn
    # chat formats
    system: str = ""
    system_template: str = "{system}\n"
    user_template: str = "{content}\n"
    assistant_template: str = "{content}"
    turn_separator: str = "\n"
    # base formats
    to_text: str = ""
    from_text: str = ""
    append_eos: bool = False  # training samples end with the tokenizer's EOS after assistant_end

    # --- chat ---------------------------------------------------------------------------------------
    def system_pieces(self) -> list[Piece]:
        return fill(self.system_template, system=self.system) if self.system else []

    def user_pieces(self, content: list[Piece]) -> list[Piece]:
        return fill(self.user_template, content=content)

    def assistant_pieces(self, content: list[Piece]) -> list[Piece]:
        return fill(self.assistant_template, content=content)

    def reply_prefix(self, layout: VocabLayout, want: str | None = None) -> list[Piece]:
        """The start of the assistant's turn; with `want` a media modality, its span is opened too."""
        pieces: list[Piece] = [self.generation_prompt]
        if want not in (None, "text"):
            pieces.append(self.media_prefix + layout[want].spec.start_token)
        return merge_text(pieces)

    def render_chat(self, messages: list[tuple[str, list[Piece]]], layout: VocabLayout,
                    want: str | None = None) -> list[Piece]:
        """A whole conversation [(role, content)], ending with the generation prompt when the last
        message is the user's (the released template's get_prompt)."""
        self._need("chat")
        pieces = self.system_pieces()
        for i, (role, content) in enumerate(messages):
            if role == "user":
                pieces += self.user_pieces(content)
            elif role == "assistant":
                pieces += self.assistant_pieces(content)
                if i != len(messages) - 1:
                    pieces.append(self.turn_separator)
            else:
                raise AnyGPTError(f"unknown role {role!r}: expected 'user' or 'assistant'")
        if messages and messages[-1][0] == "user":
            pieces += self.reply_prefix(layout, want)
        return pieces

    # --- base ---------------------------------------------------------------------------------------
    def base_pieces(self, direction: str, instruction: str, *, media: Media | None = None,
                    text: str | UserText | None = None, layout: VocabLayout | None = None,
                    open_span: str | None = None) -> list[Piece]:
        """A pretraining sample when both sides are given; otherwise the inference prompt, cut right
        after the generation prompt (`open_span` names a modality whose span is opened too)."""
        self._need("base")
        template = {"to_text": self.to_text, "from_text": self.from_text}.get(direction)
        if template is None:
            raise AnyGPTError(f"unknown direction {direction!r}: expected one of {DIRECTIONS}")
        if media is None and text is None:
            raise AnyGPTError("a base prompt needs its input: media for to_text, text for from_text")
        values = {"instruction": instruction, "media": [media] if media is not None else [],
                  "text": text if text is not None else ""}
        if media is not None and text is not None:
            return fill(template, **values)
        cut = template.index(self.generation_prompt) + len(self.generation_prompt)
        pieces = fill(template[:cut], **values)
        if open_span is not None:
            assert layout is not None, "opening a span needs the layout"
            pieces.append(self.media_prefix + layout[open_span].spec.start_token)
        return merge_text(pieces)

    def _need(self, kind: str) -> None:
        if self.kind != kind:
            raise AnyGPTError(f"prompt format {self.name!r} is a {self.kind} format, not a {kind} format")


# --- loading -------------------------------------------------------------------------------------

def _data(*parts: str):
    return resources.files(__package__).joinpath(*parts)


def format_names() -> list[str]:
    return sorted(p.name[: -len(".toml")] for p in _data("formats").iterdir() if p.name.endswith(".toml"))


@functools.cache
def load_format(name: str) -> PromptFormat:
    path = _data("formats", f"{name}.toml")
    if not path.is_file():
        raise AnyGPTError(f"unknown prompt format {name!r}; known: {', '.join(format_names())}")
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    known = {f.name for f in fields(PromptFormat)}
    unknown = set(raw) - known
    if unknown:
        raise AnyGPTError(f"prompt format {name!r} has unknown keys: {sorted(unknown)}")
    for key in ("tokens", "stop_tokens"):
        raw[key] = tuple(raw.get(key, ()))
    return PromptFormat(name=name, **raw)


@functools.cache
def load_pool(modality: str, direction: str) -> tuple[str, ...]:
    """Instruction paraphrases for one modality and direction ("to_text": X -> text)."""
    path = _data("pools", f"{modality}_{direction}.txt")
    if direction not in DIRECTIONS or not path.is_file():
        raise AnyGPTError(f"no instruction pool for modality {modality!r} and direction {direction!r}")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return tuple(line for line in lines if line)


@dataclass(frozen=True)
class Task:
    name: str
    input: str  # modality of the input
    output: str  # modality of the answer
    chat: str  # the released chat model's prompt, with one placeholder for the input
    punctuate: str | None = None  # placeholder whose text gets a final full stop when it has none
    reply: str | None = None

    def chat_pieces(self, value: Piece) -> list[Piece]:
        """The user message of this task for the released chat model (stripped, as it did)."""
        key = _placeholders(self.chat)[0]
        if isinstance(value, str):
            value = value.strip()
            if key == self.punctuate and value and value[-1] not in ".!?":
                value += "."
        pieces = fill(self.chat, **{key: [value]})
        if isinstance(pieces[0], str):
            pieces[0] = pieces[0].lstrip()
        if isinstance(pieces[-1], str):
            pieces[-1] = pieces[-1].rstrip()
        return merge_text(pieces)

    @property
    def direction(self) -> str:
        return "to_text" if self.output == "text" else "from_text"


@functools.cache
def load_tasks() -> dict[str, Task]:
    raw = tomllib.loads(_data("tasks.toml").read_text(encoding="utf-8"))
    return {name: Task(name=name, **entry) for name, entry in raw.items()}


# --- pieces --------------------------------------------------------------------------------------

def _placeholders(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def fill(template: str, **values: Union[str, UserText, list[Piece]]) -> list[Piece]:
    """Fill {name} placeholders: a string (or UserText) value is substituted as text, a list of pieces
    in place."""
    out: list[Piece] = []
    for literal, name, spec, conv in string.Formatter().parse(template):
        if literal:
            out.append(literal)
        if name is None:
            continue
        if spec or conv:
            raise AnyGPTError(f"template placeholders take no format spec: {template!r}")
        if name not in values:
            raise AnyGPTError(f"template needs a value for {{{name}}}: {template!r}")
        value = values[name]
        out.extend([value] if isinstance(value, (str, UserText)) else value)
    return merge_text(out)


def merge_text(pieces: list[Piece]) -> list[Piece]:
    """Join adjacent strings (and adjacent user texts) and drop empty ones; a user text stays apart
    from the builder's strings (encode_pieces tokenizes the two together, as one string)."""
    out: list[Piece] = []
    for p in pieces:
        if isinstance(p, UserText):
            if not p.text:
                continue
            if out and isinstance(out[-1], UserText):
                out[-1] = UserText(out[-1].text + p.text)
                continue
        elif isinstance(p, str):
            if not p:
                continue
            if out and isinstance(out[-1], str):
                out[-1] += p
                continue
        out.append(p)
    return out


def render_text(pieces: list[Piece], layout: VocabLayout) -> str:
    """The prompt as one string with media written as code tokens (for display and parity checks)."""
    parts = []
    for p in pieces:
        if isinstance(p, str):
            parts.append(p)
        elif isinstance(p, UserText):
            parts.append(p.text)
        else:
            spec = layout[p.modality].spec
            stream = spec.flatten(p.codes).tolist()
            parts.append(spec.start_token + "".join(spec.code_token(k) for k in stream) + spec.end_token)
    return "".join(parts)


def encode_pieces(pieces: list[Piece], tokenizer, layout: VocabLayout) -> list[int]:
    """Token ids of a prompt: each run of text (strings and user text) through the tokenizer as one
    string, user text never giving a control id; media by layout arithmetic."""
    ids: list[int] = []
    run: list = []
    for p in merge_text(pieces) + [None]:
        if isinstance(p, (str, UserText)):
            run.append(p)
            continue
        if run:
            ids += encode_text_run(run, tokenizer, layout)
            run = []
        if p is not None:
            ids += layout.span_ids(p.modality, p.codes).tolist()
    return ids


def user_pieces(content: list) -> list[Piece]:
    """A user's message: its strings become UserText (media stay as they are)."""
    return [UserText(p) if isinstance(p, str) else p for p in content]
