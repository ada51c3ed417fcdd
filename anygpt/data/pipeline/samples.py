"""Stage 2a: a unit (codes + text) -> one training sample: token ids and a role for every token.

    pair         base format, direction drawn per sample (P(to_text) set per dataset):
                   to_text    <s>[Human]: {I} <soim>..<eoim><eoh> [MMGPT]: {text}<eos></s>
                   from_text  <s>[Human]: {I} This is input: {text}<eoh> [MMGPT]: <soim>..<eoim><eos></s>
                 roles        |-------------- USER ------------------------|--- ASSISTANT ----------|
                 ({I} drawn from the instruction pool of that modality and direction)
    interleaved  <s> text <soim>..<eoim> text ... </s>             every token ASSISTANT (plain LM)
    chat         chat format:  system line   [Human]: ... <eoh>\n   [MMGPT]:  reply<eos>   \n ...
                 roles         CONTEXT       USER                   CONTEXT   ASSISTANT    CONTEXT

Roles are given per token by encoding each part on its own (`encode_pieces`): a part boundary is
always an added token or a media span, where the tokenizer starts afresh anyway, so the ids equal
those of the whole rendered string. No length offsets: the loss mask is `roles == ASSISTANT`.
The assistant header ("[MMGPT]:", the generation prompt given at inference) is CONTEXT: only
what the model must produce after it is trained on under `loss_on = "assistant"`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from anygpt.errors import AnyGPTError
from anygpt.prompts import (
    Media,
    Piece,
    PromptFormat,
    encode_pieces,
    fill,
    load_format,
    load_pool,
    load_tasks,
)
from anygpt.prompts.user_text import control_ids

CONTEXT, USER, ASSISTANT = 0, 1, 2  # the per-token roles
ROLE_NAMES = {CONTEXT: "context", USER: "user", ASSISTANT: "assistant"}
# the evaluation task a pair of each modality and direction is, when rendered as a task chat
TASK_BY_PAIR = {("image", "to_text"): "caption", ("image", "from_text"): "t2i", ("speech", "to_text"): "asr",
                ("speech", "from_text"): "tts", ("music", "to_text"): "music_caption", ("music", "from_text"): "t2m"}


@dataclass
class Sample:
    ids: list[int]
    roles: list[int]  # one of CONTEXT / USER / ASSISTANT per token
    tag: str  # what it teaches: "image/to_text", "speech/from_text", "interleaved", "chat"

    def __len__(self) -> int:
        return len(self.ids)


def unit_pieces(row: dict) -> list[tuple[int, str, Piece]]:
    """(turn, role, piece) for every segment of a unit-shard row; media become `Media`."""
    out = []
    for turn, role, modality, text, codes, k in zip(row["seg_turn"], row["seg_role"], row["seg_modality"],
                                                   row["seg_text"], row["seg_codes"], row["seg_codebooks"]):
        if modality == "text":
            out.append((turn, role, text))
        else:
            out.append((turn, role, Media(modality, torch.tensor(codes, dtype=torch.long).reshape(k, -1))))
    return out


class SampleBuilder:
    """Builds samples with one tokenizer, layout, base format (pairs) and chat format (chats)."""

    def __init__(self, tokenizer, layout, base_format: str | PromptFormat = "base",
                 chat_format: str | PromptFormat = "mmgpt"):
        self.tokenizer, self.layout = tokenizer, layout
        self.base = load_format(base_format) if isinstance(base_format, str) else base_format
        self.chat = load_format(chat_format) if isinstance(chat_format, str) else chat_format
        if self.base.kind != "base" or self.chat.kind != "chat":
            raise AnyGPTError(f"need a base and a chat format, got {self.base.kind} and {self.chat.kind}")
        for fmt in (self.base, self.chat):
            for tok in fmt.tokens:
                i = tokenizer.convert_tokens_to_ids(tok)
                if i is None or i == tokenizer.unk_token_id:
                    raise AnyGPTError(f"format {fmt.name!r} needs token {tok!r}, which the tokenizer lacks")
        self.bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        self.eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        self._forbidden = set(self.base.tokens) | set(self.chat.tokens)
        self._control = control_ids(tokenizer, layout)
        self._gen = {fmt.name: self.encode([fmt.generation_prompt]) for fmt in (self.base, self.chat)}

    def encode(self, pieces: list[Piece]) -> list[int]:
        return encode_pieces(pieces, self.tokenizer, self.layout)

    def _check_text(self, text: str) -> None:
        """Data text, like a user's text, never produces a control or code id: a record whose text
        would (a role token, "<soim>", a code token) is refused, and the mixture skips and counts it."""
        # a role token inside data text would be read as structure (and break the role split)
        for tok in self._forbidden:
            if tok in text:
                raise AnyGPTError(f"text contains the format token {tok!r}")
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        bad = next((i for i in ids if i in self._control), None)
        if bad is not None:
            token = self.tokenizer.convert_ids_to_tokens(bad)
            raise AnyGPTError(f"text contains the reserved token {token!r}")

    def _header_len(self, ids: list[int], fmt: PromptFormat) -> int:
        """Tokens of the generation prompt at the start of an assistant part (0 when it differs)."""
        gen = self._gen[fmt.name]
        return len(gen) if ids[: len(gen)] == gen else 0

    # --- the three kinds --------------------------------------------------------------------------
    def pair(self, media: Media, text: str, direction: str, instruction: str) -> Sample:
        """A pretraining pair in one direction. The sample is encoded whole, exactly as its rendered
        string would be, and the user / assistant boundary is found right after the generation
        prompt's ids (an added token starts it, and data text may not contain it): no text piece is
        ever split at a place where the tokenizer would not split it."""
        self._check_text(text)
        fmt = self.base
        pieces = fmt.base_pieces(direction, instruction, media=media, text=text)
        ids = self.encode(pieces)
        gen = self._gen[fmt.name]
        cut = _find(ids, gen)
        if cut < 0:
            raise AnyGPTError(f"generation prompt {fmt.generation_prompt!r} not found in a {direction} sample")
        cut += len(gen)
        tail = self.eos if fmt.append_eos else []
        ids = self.bos + ids + tail
        roles = [CONTEXT] * len(self.bos) + [USER] * cut + [ASSISTANT] * (len(ids) - len(self.bos) - cut)
        return Sample(ids, roles, f"{media.modality}/{direction}")

    def interleaved(self, pieces: list[Piece]) -> Sample:
        for p in pieces:
            if isinstance(p, str):
                self._check_text(p)
        body = self.encode(pieces)
        ids = self.bos + body + self.eos
        return Sample(ids, [CONTEXT] * len(self.bos) + [ASSISTANT] * (len(body) + len(self.eos)), "interleaved")

    def chat_sample(self, messages: list[tuple[str, list[Piece]]]) -> Sample:
        """[(role, pieces)] with roles system / user / assistant -> a sample whose ASSISTANT tokens
        are exactly the assistant replies (content and end token)."""
        fmt = self.chat
        ids: list[int] = list(self.bos) if fmt.add_bos else []
        roles: list[int] = [CONTEXT] * len(ids)

        def put(part: list[int], role: int) -> None:
            ids.extend(part)
            roles.extend([role] * len(part))

        if not messages or messages[0][0] != "system":
            put(self.encode(fmt.system_pieces()), CONTEXT)
        for i, (role, content) in enumerate(messages):
            for p in content:
                if isinstance(p, str):
                    self._check_text(p)
            if role == "system":
                if i:
                    raise AnyGPTError("a system message must come first")
                put(self.encode(fill(fmt.system_template, system=content)), CONTEXT)
            elif role == "user":
                put(self.encode(fmt.user_pieces(content)), USER)
            elif role == "assistant":
                part = self.encode(fmt.assistant_pieces(content))
                head = self._header_len(part, fmt)
                put(part[:head], CONTEXT)
                put(part[head:], ASSISTANT)
                if i != len(messages) - 1:
                    put(self.encode([fmt.turn_separator]), CONTEXT)
            else:
                raise AnyGPTError(f"unknown role {role!r}")
        if fmt.append_eos:
            put(self.eos, ASSISTANT)
        return Sample(ids, roles, "chat")

    # --- from unit rows ---------------------------------------------------------------------------
    def task_chat(self, media: Media, text: str, direction: str) -> Sample:
        """A pair as one chat turn of the evaluation task for its modality and direction (caption, t2i,
        asr, tts, music_caption, t2m): the released chat model's prompt, the answer as the reply."""
        task = TASK_BY_PAIR[(media.modality, direction)]
        value, answer = (media, text) if direction == "to_text" else (text, media)
        sample = self.chat_sample([("user", load_tasks()[task].chat_pieces(value)), ("assistant", [answer])])
        return Sample(sample.ids, sample.roles, f"{media.modality}/{direction}")

    def from_row(self, row: dict, rng: random.Random, to_text: float = 0.5,
                 direction: str | None = None, style: str = "base") -> Sample:
        """A sample from a unit-shard row. For pairs the direction is `direction` when given, else
        to_text with probability `to_text`; with style "base" the instruction is drawn from that
        direction's pool (pretraining template), with "task" the pair is a task chat turn."""
        parts = unit_pieces(row)
        kind = row["kind"]
        if kind == "pair":
            media = next(p for _, _, p in parts if isinstance(p, Media))
            text = next(p for _, _, p in parts if isinstance(p, str))
            if direction is None:
                direction = "to_text" if rng.random() < to_text else "from_text"
            if style == "task":
                return self.task_chat(media, text, direction)
            instruction = rng.choice(load_pool(media.modality, direction))
            return self.pair(media, text, direction, instruction)
        if kind == "interleaved":
            return self.interleaved([p for _, _, p in parts])
        if kind == "chat":
            messages: list[tuple[str, list[Piece]]] = []
            last = None
            for turn, role, p in parts:
                if turn != last:
                    messages.append((role, []))
                    last = turn
                messages[-1][1].append(p)
            return self.chat_sample(messages)
        raise AnyGPTError(f"unknown unit kind {kind!r}")


def _find(seq: list[int], sub: list[int]) -> int:
    """First index of `sub` in `seq`, or -1."""
    if not sub:
        return 0
    arr = np.asarray(seq)
    for i in np.flatnonzero(arr == sub[0]):
        if seq[i: i + len(sub)] == sub:
            return int(i)
    return -1
