"""The conditioning gap: how much a model's reply depends on its input.

For a task and held-out items (input x_i, reference output y_i), each reference is scored under
teacher forcing twice, after the task's own prompt (the `anygpt chat --task` prompt, prompts/tasks.toml)
around its own input and around another item's input:

    matched         NLL(y_i | prompt(x_i))         nats per reply token, all items' tokens pooled
    mismatched      NLL(y_i | prompt(x_s(i)))      s(i) = (i + 1) mod n: a fixed derangement
    gap             mismatched - matched           about 0: the model ignores its input
    matched_better  share of items whose own input gives the lower NLL

Only the reply's tokens are scored, never the prompt's:

    ids     <s> system\\n[Human]: <soim> c c .. <eoim> Please describe ..<eoh>\\n[MMGPT]: | a red circle <eos>
            |------------------------------ prompt ------------------------------|  reply  ------------|
    t2i     <s> system\\n[Human]: a red circle. Please generation an image.<eoh>\\n[MMGPT]: <soim> | c c .. <eoim> <eos>

The prompt is exactly what generation starts from (a media reply's span is opened by the prompt, so
its start token is not scored); the reply is what the model must produce after it: the text or the
span's codes and end token, then the turn's end token. Both come from one encoding of the whole
conversation (system, user turn, reply), cut where the prompt ends, so they are the ids the model
sees at training time. Everything is token ids through the bundle's layout and codecs.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from anygpt.chat import ChatSession
from anygpt.errors import AnyGPTError
from anygpt.prompts import Piece, encode_pieces, load_tasks

Example = tuple[list[int], list[int]]  # (prompt ids, reply ids)


def teacher_forced(bundle, task: str, value: Piece, answer: Piece) -> Example:
    """(prompt, reply) ids of one task item: the task's prompt around `value` (text, or Media from
    chat.encode_media), as `anygpt chat --task` builds it, and `answer` (text or Media) as the reply."""
    spec, fmt = load_tasks()[task], bundle.prompt_format
    if fmt.kind != "chat":
        raise AnyGPTError(f"the conditioning gap needs a chat prompt format, not {fmt.name!r} ({fmt.kind})")
    content = spec.chat_pieces(value)
    prompt = ChatSession(bundle).prompt_ids(content, want=spec.output)
    pieces = fmt.render_chat([("user", content), ("assistant", [answer])], bundle.layout)
    bos = [bundle.tokenizer.bos_token_id] if fmt.add_bos and bundle.tokenizer.bos_token_id is not None else []
    whole = bos + encode_pieces(pieces, bundle.tokenizer, bundle.layout)
    if whole[: len(prompt)] != prompt:  # the reply would change how the prompt tokenizes
        raise AnyGPTError(f"task {task}: the prompt's ids are not a prefix of the conversation's ids")
    return prompt, whole[len(prompt):]


def derangement(n: int) -> list[int]:
    """s(i) = (i + 1) mod n: every item gets another item's input (n >= 2)."""
    if n < 2:
        raise AnyGPTError(f"a derangement needs at least 2 items, got {n}")
    return [(i + 1) % n for i in range(n)]


@torch.no_grad()
def reply_nll(model, examples: Sequence[Example], *, pad_id: int, batch_size: int = 8) -> list[tuple[float, int]]:
    """(summed NLL in nats, reply tokens) of each example's reply given its prompt: batched forward
    passes over examples of similar length, right-padded (with a causal model the padding after a
    row's last token changes none of its logits, so no attention mask is needed)."""
    if batch_size < 1:
        raise AnyGPTError("batch_size must be at least 1")
    for prompt, reply in examples:
        if not prompt or not reply:
            raise AnyGPTError("an example needs a prompt and a reply")
    device = next(model.parameters()).device
    order = sorted(range(len(examples)), key=lambda i: len(examples[i][0]) + len(examples[i][1]))
    out: list[tuple[float, int]] = [(0.0, 0)] * len(examples)
    was_training = model.training
    model.eval()
    for start in range(0, len(order), batch_size):
        chunk = order[start: start + batch_size]
        rows = [examples[i][0] + examples[i][1] for i in chunk]
        ids = torch.full((len(rows), max(len(r) for r in rows)), pad_id, dtype=torch.long)  # (B, T)
        for b, row in enumerate(rows):
            ids[b, : len(row)] = torch.tensor(row)
        logits = model(input_ids=ids.to(device), use_cache=False).logits  # (B, T, V)
        for b, i in enumerate(chunk):
            p, reply = len(examples[i][0]), examples[i][1]
            # position p-1+k predicts reply token k: (R, V) logits, read off row by row
            nll = F.cross_entropy(logits[b, p - 1: p - 1 + len(reply)].float(),
                                  torch.tensor(reply, device=logits.device), reduction="none")  # (R,)
            out[i] = (float(nll.double().sum()), len(reply))
    model.train(was_training)
    return out


def gap_figures(matched: Sequence[tuple[float, int]], mismatched: Sequence[tuple[float, int]]) -> dict:
    """{"matched", "mismatched", "gap", "matched_better"} from per-item (NLL sum, tokens) of the same
    replies after their own and after another item's input."""
    if len(matched) != len(mismatched) or not matched:
        raise AnyGPTError(f"{len(matched)} matched and {len(mismatched)} mismatched items")
    tokens = sum(n for _, n in matched)
    m, x = sum(s for s, _ in matched) / tokens, sum(s for s, _ in mismatched) / tokens
    better = sum(a[0] < b[0] for a, b in zip(matched, mismatched, strict=True)) / len(matched)
    return {"matched": m, "mismatched": x, "gap": x - m, "matched_better": better}


def conditioning(bundle, task: str, inputs: Sequence[Piece], answers: Sequence[Piece], *,
                 batch_size: int = 8) -> dict:
    """The conditioning gap of `bundle` on one task: item i is (inputs[i], answers[i]); see the module
    docstring. Needs at least 2 items."""
    if len(inputs) != len(answers):
        raise AnyGPTError(f"{len(inputs)} inputs for {len(answers)} answers")
    other = derangement(len(inputs))
    own = [teacher_forced(bundle, task, x, y) for x, y in zip(inputs, answers, strict=True)]
    swapped = [teacher_forced(bundle, task, inputs[j], y) for j, y in zip(other, answers, strict=True)]
    if any(a[1] != b[1] for a, b in zip(own, swapped, strict=True)):
        raise AnyGPTError(f"task {task}: a reply's ids depend on the input before it")
    scores = reply_nll(bundle.model, own + swapped, pad_id=bundle.pad_id, batch_size=batch_size)
    return gap_figures(scores[: len(own)], scores[len(own):])
