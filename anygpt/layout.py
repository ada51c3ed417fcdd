"""The vocabulary layout: which token id stands for which code of which modality.

AnyGPT leaves the LLM unchanged and only appends tokens to its vocabulary. With the official order
(and a text vocabulary of V0 tokens, 32000 for LLaMA-2) the ids are:

    0 .. V0-1                 text tokens of the base tokenizer
    V0 .. V0+3                [Human] [MMGPT] <eoh> <eos>            (tokens_before)
    image   first_id + k      <👀k>   k in [0, 8192)    then <soim> <eoim>
    speech  first_id + k      <🗣️k>   k in [0, 1024)    then <sosp> <eosp>
    music   first_id + k      <🎶k>   k in [0, 8192)    then <somu> <eomu>
    ...                       tokens_after (the chat fine-tune's <-Ins-> <-Res->)

Everything here is arithmetic on tensors; no code is ever parsed out of a decoded string. Multi-codebook
modalities (music: 4 RVQ codebooks x 2048) are flattened frame-major with a per-codebook offset:

    codes (K=4, T)          c0[0] c0[1] ...          stream: c0[0] c1[0]+2048 c2[0]+4096 c3[0]+6144
                            c1[0] c1[1] ...   --->           c0[1] c1[1]+2048 ...
                            ...                              (T frames x 4 tokens)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field

import torch

from anygpt.errors import LayoutError


@dataclass(frozen=True)
class ModalitySpec:
    """How one modality's codes appear in the token stream."""

    name: str  # "image", "speech", "music", or a new modality
    token_prefix: str  # code k is the added token f"<{token_prefix}{k}>"
    start_token: str  # opens a span, e.g. "<soim>"
    end_token: str  # closes it, e.g. "<eoim>"
    codebook_size: int  # entries per codebook
    num_codebooks: int = 1  # codebooks flattened frame-major into one stream
    tokens_per_item: int | None = None  # fixed span length in tokens (an image: 32); None = variable
    frame_rate: float | None = None  # code frames per second (audio); None for images

    def __post_init__(self) -> None:
        if self.codebook_size < 1 or self.num_codebooks < 1:
            raise LayoutError(f"{self.name}: codebook_size and num_codebooks must be positive")
        if self.tokens_per_item is not None and self.tokens_per_item % self.num_codebooks:
            raise LayoutError(f"{self.name}: tokens_per_item must be a whole number of frames")

    @property
    def vocab_size(self) -> int:
        """Code tokens of this modality (start and end tokens not counted)."""
        return self.codebook_size * self.num_codebooks

    def code_token(self, k: int) -> str:
        return f"<{self.token_prefix}{k}>"

    def tokens(self) -> list[str]:
        """This modality's added tokens in the official order: codes, then start, then end."""
        return [self.code_token(k) for k in range(self.vocab_size)] + [self.start_token, self.end_token]

    def max_span_tokens(self, seconds: float | None) -> int | None:
        """Longest allowed span in tokens: fixed for images, whole frames within `seconds` for audio."""
        if self.tokens_per_item is not None:
            return self.tokens_per_item
        if seconds is None or self.frame_rate is None:
            return None
        return max(1, math.floor(seconds * self.frame_rate)) * self.num_codebooks

    def seconds(self, num_frames: int) -> float | None:
        return None if self.frame_rate is None else num_frames / self.frame_rate

    def flatten(self, codes: torch.Tensor) -> torch.Tensor:
        """(K, T) codes -> (T*K,) stream values in [0, vocab_size), frame-major with offsets."""
        codes = torch.as_tensor(codes, dtype=torch.long)
        if codes.dim() == 1 and self.num_codebooks == 1:
            codes = codes[None]
        if codes.dim() != 2 or codes.shape[0] != self.num_codebooks:
            raise LayoutError(
                f"{self.name}: expected codes of shape ({self.num_codebooks}, frames), got {tuple(codes.shape)}"
            )
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codebook_size):
            bad = codes[(codes < 0) | (codes >= self.codebook_size)][0].item()
            raise LayoutError(f"{self.name}: code {bad} outside [0, {self.codebook_size})")
        offsets = torch.arange(self.num_codebooks) * self.codebook_size  # (K,)
        return (codes + offsets[:, None]).T.reshape(-1)  # (T*K,)

    def unflatten(self, stream: torch.Tensor, *, strict: bool = False) -> torch.Tensor:
        """(N,) stream values -> (K, N // K) codes.

        A trailing partial frame is dropped and a value in another codebook's range is mapped back by
        `% codebook_size`, each with a warning (or a LayoutError when `strict`): model output may be
        malformed, and the caller should get the usable part rather than a crash.
        """
        stream = torch.as_tensor(stream, dtype=torch.long).reshape(-1)
        if stream.numel() and (stream.min() < 0 or stream.max() >= self.vocab_size):
            raise LayoutError(f"{self.name}: stream value outside [0, {self.vocab_size})")
        k = self.num_codebooks
        whole = stream.numel() // k * k
        if whole != stream.numel():
            _complain(strict, f"{self.name}: dropped a partial frame of {stream.numel() - whole} token(s)")
            stream = stream[:whole]
        frames = stream.reshape(-1, k).T  # (K, T)
        layer = frames // self.codebook_size
        if (layer != torch.arange(k)[:, None]).any():
            _complain(strict, f"{self.name}: codes in the wrong codebook position were remapped")
        return frames % self.codebook_size


def _complain(strict: bool, message: str) -> None:
    if strict:
        raise LayoutError(message)
    warnings.warn(message, stacklevel=3)


# The official AnyGPT modalities (SEED-2 images, SpeechTokenizer layer 1, Encodec 32 kHz music).
OFFICIAL_IMAGE = ModalitySpec("image", "\U0001f440", "<soim>", "<eoim>", 8192, 1, tokens_per_item=32)
OFFICIAL_SPEECH = ModalitySpec("speech", "\U0001f5e3\ufe0f", "<sosp>", "<eosp>", 1024, 1, frame_rate=50.0)
OFFICIAL_MUSIC = ModalitySpec("music", "\U0001f3b6", "<somu>", "<eomu>", 2048, 4, frame_rate=50.0)
OFFICIAL_ROLE_TOKENS = ("[Human]", "[MMGPT]", "<eoh>", "<eos>")
OFFICIAL_CHAT_EXTRA_TOKENS = ("<-Ins->", "<-Res->")


@dataclass(frozen=True)
class LayoutConfig:
    """Which tokens are appended to a text vocabulary, in order. Plain data: saved in bundle manifests."""

    modalities: tuple[ModalitySpec, ...]
    tokens_before: tuple[str, ...] = OFFICIAL_ROLE_TOKENS  # added before the modality tokens
    tokens_after: tuple[str, ...] = ()  # added after them

    def to_dict(self) -> dict:
        return {
            "modalities": [asdict(m) for m in self.modalities],
            "tokens_before": list(self.tokens_before),
            "tokens_after": list(self.tokens_after),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "LayoutConfig":
        return cls(
            modalities=tuple(ModalitySpec(**m) for m in d["modalities"]),
            tokens_before=tuple(d.get("tokens_before", ())),
            tokens_after=tuple(d.get("tokens_after", ())),
        )


def official_layout_config(chat_extras: bool = False) -> LayoutConfig:
    """The released AnyGPT layout (49,418 added-token vocabulary on LLaMA-2; +2 for the chat model)."""
    return LayoutConfig(
        modalities=(OFFICIAL_IMAGE, OFFICIAL_SPEECH, OFFICIAL_MUSIC),
        tokens_before=OFFICIAL_ROLE_TOKENS,
        tokens_after=OFFICIAL_CHAT_EXTRA_TOKENS if chat_extras else (),
    )


@dataclass(frozen=True)
class ModalityIds:
    """Where one modality lives in the id space."""

    spec: ModalitySpec
    first_id: int  # id of code 0

    @property
    def start_id(self) -> int:
        return self.first_id + self.spec.vocab_size

    @property
    def end_id(self) -> int:
        return self.start_id + 1


@dataclass(frozen=True)
class VocabLayout:
    """A LayoutConfig placed after a text vocabulary of `base_vocab_size` tokens."""

    config: LayoutConfig
    base_vocab_size: int
    modalities: dict[str, ModalityIds] = field(init=False)
    extra_ids: dict[str, int] = field(init=False)  # tokens_before and tokens_after -> id
    vocab_size: int = field(init=False)

    def __post_init__(self) -> None:
        next_id = self.base_vocab_size
        extra: dict[str, int] = {}
        for tok in self.config.tokens_before:
            extra[tok] = next_id
            next_id += 1
        mods: dict[str, ModalityIds] = {}
        for spec in self.config.modalities:
            if spec.name in mods or spec.name == "text":
                raise LayoutError(f"modality name {spec.name!r} is used twice or reserved")
            mods[spec.name] = ModalityIds(spec, next_id)
            next_id += spec.vocab_size + 2
        for tok in self.config.tokens_after:
            extra[tok] = next_id
            next_id += 1
        object.__setattr__(self, "modalities", mods)
        object.__setattr__(self, "extra_ids", extra)
        object.__setattr__(self, "vocab_size", next_id)

    # --- tokens -----------------------------------------------------------------------------------
    def tokens_to_add(self) -> list[str]:
        """Every added token in id order (the official order for the official config)."""
        out = list(self.config.tokens_before)
        for m in self.modalities.values():
            out += m.spec.tokens()
        return out + list(self.config.tokens_after)

    def token_id(self, token: str) -> int:
        """Id of a role/extra token or a start/end token."""
        if token in self.extra_ids:
            return self.extra_ids[token]
        for m in self.modalities.values():
            if token == m.spec.start_token:
                return m.start_id
            if token == m.spec.end_token:
                return m.end_id
        raise LayoutError(f"token {token!r} is not part of this layout")

    def __getitem__(self, modality: str) -> ModalityIds:
        if modality not in self.modalities:
            known = ", ".join(self.modalities) or "none"
            raise LayoutError(f"unknown modality {modality!r}; this layout has: {known}")
        return self.modalities[modality]

    @property
    def names(self) -> list[str]:
        return list(self.modalities)

    # --- codes <-> ids ----------------------------------------------------------------------------
    def span_ids(self, modality: str, codes: torch.Tensor) -> torch.Tensor:
        """(K, T) codes -> ids of the whole span: <start> tokens... <end>."""
        m = self[modality]
        body = m.spec.flatten(codes) + m.first_id
        return torch.cat([torch.tensor([m.start_id]), body, torch.tensor([m.end_id])])

    def ids_to_codes(self, modality: str, ids: torch.Tensor, *, strict: bool = False) -> torch.Tensor:
        """Code-token ids of one span body (no start/end) -> (K, T) codes."""
        m = self[modality]
        ids = torch.as_tensor(ids, dtype=torch.long)
        return m.spec.unflatten(ids - m.first_id, strict=strict)

    def kind_table(self) -> torch.Tensor:
        """(vocab_size,) int table used by generation constraints and reply parsing.

        0: text or extra token; i+1: a code of modality i; -(i+1): its start token;
        -(100+i+1): its end token (i indexes `names`).
        """
        table = torch.zeros(self.vocab_size, dtype=torch.long)
        for i, m in enumerate(self.modalities.values()):
            table[m.first_id : m.start_id] = i + 1
            table[m.start_id] = -(i + 1)
            table[m.end_id] = -(100 + i + 1)
        return table

    # --- checks -----------------------------------------------------------------------------------
    def verify(self, tokenizer) -> None:
        """Raise LayoutError unless every added token has the id this layout computes."""
        tokens = self.tokens_to_add()
        got = tokenizer.convert_tokens_to_ids(tokens)
        want = range(self.base_vocab_size, self.vocab_size)
        bad = [(t, g, w) for t, g, w in zip(tokens, got, want) if g != w]
        if len(tokenizer) < self.vocab_size:
            bad = bad or [("<vocabulary>", len(tokenizer), self.vocab_size)]
        if bad:
            shown = "; ".join(f"{t!r} has id {g}, layout expects {w}" for t, g, w in bad[:3])
            raise LayoutError(f"tokenizer does not match the layout ({len(bad)} mismatches): {shown}")

    @classmethod
    def from_tokenizer(cls, config: LayoutConfig, tokenizer) -> "VocabLayout":
        """The layout of a tokenizer that already holds the added tokens (e.g. an official checkpoint)."""
        first = config.tokens_before[0] if config.tokens_before else config.modalities[0].code_token(0)
        first_id = tokenizer.convert_tokens_to_ids(first)
        if first_id is None or first_id == tokenizer.unk_token_id:
            raise LayoutError(f"tokenizer has no token {first!r}: it was not expanded with this layout")
        layout = cls(config, first_id)
        layout.verify(tokenizer)
        return layout

    def describe(self) -> dict:
        """Plain-JSON summary (what `anygpt info` prints)."""
        out = {}
        for name, m in self.modalities.items():
            s = m.spec
            out[name] = {
                "size": s.vocab_size,
                "codebook_size": s.codebook_size,
                "codebooks": s.num_codebooks,
                "tokens_per_item": s.tokens_per_item,
                "frame_rate": s.frame_rate,
                "tokens_per_second": None if s.frame_rate is None else s.frame_rate * s.num_codebooks,
                "start": s.start_token,
                "end": s.end_token,
                "first_token": s.code_token(0),
                "first_id": m.first_id,
                "start_id": m.start_id,
                "end_id": m.end_id,
            }
        return out
