"""Parse generated token ids into an ordered list of text and media segments.

Model output can be truncated or malformed (a span cut off by the token budget, a partial music
frame, a stray end token, codes of another modality inside a span). Parsing never raises on such
output: it keeps what is usable, marks a damaged span incomplete with its reasons in
`Segment.warnings`, and reports stray tokens outside spans with `warnings.warn`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch

from anygpt.layout import VocabLayout


@dataclass
class Segment:
    modality: str  # "text" or a layout modality
    ids: list[int]  # the token ids this segment came from (span body only, for media)
    text: str | None = None  # text segments
    codes: torch.Tensor | None = None  # media segments: (K, T)
    complete: bool = True  # False: span unclosed, wrong length, or cleaned up
    warnings: list[str] = field(default_factory=list)

    @property
    def num_codes(self) -> int:
        return 0 if self.codes is None else int(self.codes.numel())


def parse_reply(ids: list[int], layout: VocabLayout, tokenizer, *, stop_ids=()) -> list[Segment]:
    """Split reply ids at span boundaries. Parsing ends at the first stop id."""
    kinds = layout.kind_table()
    names = layout.names
    stops = set(stop_ids)
    segments: list[Segment] = []
    text_ids: list[int] = []
    span: Segment | None = None

    def flush_text() -> None:
        if text_ids:
            text = tokenizer.decode(text_ids, skip_special_tokens=True).strip()
            if text:
                segments.append(Segment("text", list(text_ids), text=text))
            text_ids.clear()

    def close_span(closed: bool) -> None:
        nonlocal span
        assert span is not None
        _finish_span(span, layout, closed)
        segments.append(span)
        span = None

    for tok in ids:
        if tok in stops:
            break
        if not 0 <= tok < kinds.numel():  # e.g. a padded embedding row beyond the tokenizer
            warnings.warn(f"dropped token id {tok}, outside the vocabulary", stacklevel=2)
            continue
        kind = int(kinds[tok])
        if span is None:
            if kind < 0 and kind > -100:  # a start token
                flush_text()
                span = Segment(names[-kind - 1], [])
            elif kind != 0:
                what = "end token" if kind <= -100 else "code"
                name = names[(-kind - 101) if kind <= -100 else kind - 1]
                warnings.warn(f"dropped a stray {name} {what} outside a span", stacklevel=2)
            else:
                text_ids.append(tok)
            continue
        mod = names.index(span.modality) + 1
        if kind == mod:
            span.ids.append(tok)
        elif kind == -(100 + mod):
            close_span(closed=True)
        else:  # anything else ends the span early; the token is read again outside it
            span.warnings.append(f"{span.modality} span interrupted by token id {tok}")
            close_span(closed=False)
            if kind < 0 and kind > -100:
                span = Segment(names[-kind - 1], [])
            elif kind == 0:
                text_ids.append(tok)
            else:
                warnings.warn("dropped a code of another modality after an interrupted span", stacklevel=2)
    if span is not None:
        span.warnings.append(f"{span.modality} span not closed")
        close_span(closed=False)
    flush_text()
    return segments


def _finish_span(span: Segment, layout: VocabLayout, closed: bool) -> None:
    spec = layout[span.modality].spec
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        span.codes = layout.ids_to_codes(span.modality, torch.tensor(span.ids, dtype=torch.long))
    span.warnings += [str(w.message) for w in caught]
    if spec.tokens_per_item is not None and len(span.ids) != spec.tokens_per_item:
        span.warnings.append(f"{span.modality} span has {len(span.ids)} codes, expected {spec.tokens_per_item}")
    if span.codes.numel() == 0:
        span.warnings.append(f"empty {span.modality} span")
    span.complete = closed and not span.warnings

