"""The conditioning gap during training: does the model read its input, direction by direction?

At every evaluation, beside the validation loss, `val/gap/<direction>` is logged for each pair
direction of the validation data ("image/to_text" -> "image->text", "image/from_text" ->
"text->image"): the mean NLL per reply token of a few fixed validation pairs after another pair's
prompt, minus the same after their own prompt (anygpt.eval.conditioning). About 0 means the model
answers without reading its input; a rising gap is the model learning to condition.

    pairs      the first `gap_pairs` documents of that direction in the validation rows' order,
               each split at its first ASSISTANT token: prompt (instruction + input) | reply
    matched    reply i after prompt i
    mismatched reply i after prompt s(i), s(i) = (i + 1) mod n   (a fixed derangement)

The pairs are chosen once per run from the data alone, so the figure is deterministic and the same
after a resume. A swapped prompt also carries the other pair's instruction (drawn from the same pool),
so a small part of the gap can come from the instruction. Cost: 2 x gap_pairs forward passes of one
document per direction, no backward; every process computes the same figures on the same pairs.
"""

from __future__ import annotations

from anygpt.data.pipeline.samples import ASSISTANT
from anygpt.eval.conditioning import Example, derangement, gap_figures, reply_nll
from anygpt.train.data import PackedRows

DIRECTIONS = {"to_text": "{m}->text", "from_text": "text->{m}"}
READ_ROWS = 64  # validation rows read at a time while looking for pairs


def direction_name(tag: str) -> str | None:
    """"speech/to_text" -> "speech->text", "speech/from_text" -> "text->speech"; None for a tag that
    is not a pair direction ("chat", "interleaved")."""
    modality, _, direction = tag.partition("/")
    return DIRECTIONS[direction].format(m=modality) if direction in DIRECTIONS else None


def gap_pairs(rows: PackedRows, per_direction: int) -> dict[str, list[Example]]:
    """{direction: [(prompt ids, reply ids)]}: the first `per_direction` documents of each pair
    direction with a prompt followed by a reply to the end; directions with fewer than 2 are left out."""
    wanted = {name for name in map(direction_name, rows.tags) if name is not None}
    found: dict[str, list[Example]] = {name: [] for name in wanted}
    for start in range(0, len(rows), READ_ROWS):
        for row in rows.rows(list(range(start, min(start + READ_ROWS, len(rows))))):
            end = 0
            for length, tag in zip(row["doc_lens"], row["doc_tags"], strict=True):
                ids, roles = row["input_ids"][end: end + length], row["roles"][end: end + length]
                end += length
                name = direction_name(tag)
                if name is None or len(found[name]) >= per_direction or ASSISTANT not in roles:
                    continue
                cut = roles.index(ASSISTANT)
                if cut > 0 and all(r == ASSISTANT for r in roles[cut:]):
                    found[name].append((ids[:cut], ids[cut:]))
        if all(len(pairs) >= per_direction for pairs in found.values()):
            break
    return {name: pairs for name, pairs in sorted(found.items()) if len(pairs) >= 2}


def conditioning_gaps(model, pairs: dict[str, list[Example]], *, pad_id: int, batch_size: int) -> dict[str, float]:
    """{"val/gap/<direction>": mismatched - matched NLL per reply token} for `gap_pairs`' output."""
    out = {}
    for name, own in pairs.items():
        swapped = [(own[j][0], reply) for j, (_, reply) in zip(derangement(len(own)), own, strict=True)]
        scores = reply_nll(model, own + swapped, pad_id=pad_id, batch_size=batch_size)
        out[f"val/gap/{name}"] = gap_figures(scores[: len(own)], scores[len(own):])["gap"]
    return out
