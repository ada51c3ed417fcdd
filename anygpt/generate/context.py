"""The one context-length rule: how much of the model's context a prompt and its reply may use.

    C  the model's context: config.max_position_embeddings (positions it was built for)
    P  the prompt in tokens, the conversation's history included

    input media      refused before encoding when one clip alone needs more than C - RESERVE tokens
                     (seconds x frame rate x codebooks: `check_input_seconds`)
    prompt           refused when P + RESERVE > C: a prompt is never cut, since cutting loses what
                     the user said (interactive chat: /reset starts an empty history)
    reply            its budget is cut to min(max_new_tokens, C - P): the one thing cut, and said so
    span limits      a max_seconds whose span alone would exceed C is refused (`check_span_limits`);
                     a forced reply span of fixed length (an image) must fit in the budget

RESERVE is the least room a reply needs: a start token, one code frame and an end token, or a few
words. `limits(...)` describes these numbers for `anygpt info`.
"""

from __future__ import annotations

from dataclasses import replace

from anygpt.errors import AnyGPTError
from anygpt.generate.config import DecodingConfig
from anygpt.layout import VocabLayout

RESERVE = 16  # tokens left for the reply at the least


def context_length(model) -> int | None:
    """Positions the model was built for; None when its config does not say."""
    n = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return int(n) if isinstance(n, int) and n > 0 else None


def check_input_seconds(context: int | None, layout: VocabLayout, modality: str, seconds: float) -> None:
    """Refuse an audio input whose codes alone cannot fit in the context (before encoding it)."""
    spec = layout[modality].spec
    if context is None or spec.frame_rate is None:
        return
    tokens = int(seconds * spec.frame_rate) * spec.num_codebooks + 2
    if tokens > context - RESERVE:
        longest = (context - RESERVE - 2) // spec.num_codebooks / spec.frame_rate
        raise AnyGPTError(f"a {seconds:.1f} s {modality} input is {tokens} tokens, more than the model's context of "
                          f"{context} allows; the longest that fits is {longest:.1f} s")


def check_span_limits(context: int | None, layout: VocabLayout, decoding: DecodingConfig) -> None:
    """Refuse span limits (max_seconds) that ask for more tokens than the whole context."""
    if context is None:
        return
    for modality, seconds in decoding.max_seconds.items():
        if modality not in layout.names:
            continue
        tokens = layout[modality].spec.max_span_tokens(seconds)
        if tokens is not None and tokens + 2 > context:
            raise AnyGPTError(f"max_seconds_{modality}={seconds:g} asks for {tokens} tokens, more than the model's "
                              f"context of {context}")


def fit(prompt_lengths: list[int], decoding: DecodingConfig, *, context: int | None, layout: VocabLayout,
        want: str | None = None) -> DecodingConfig:
    """The decoding settings with the reply budget cut to fit the longest prompt, or AnyGPTError."""
    check_span_limits(context, layout, decoding)
    if context is None:
        return decoding
    longest = max(prompt_lengths)
    if longest + RESERVE > context:
        raise AnyGPTError(f"the prompt is {longest} tokens; the model's context is {context} (at least {RESERVE} "
                          f"left for the reply): shorten the input, or /reset a long conversation")
    budget = min(decoding.max_new_tokens, context - longest)
    if want not in (None, "text"):
        need = layout[want].spec.tokens_per_item
        if need is not None and need + 1 > budget:  # the codes and the end token; the start is in the prompt
            raise AnyGPTError(f"an {want} reply needs {need + 1} tokens; {budget} are left after a "
                              f"{longest}-token prompt in a context of {context}")
    return decoding if budget == decoding.max_new_tokens else replace(decoding, max_new_tokens=budget)


def limits(context: int | None, layout: VocabLayout) -> dict:
    """The limits a user can see (`anygpt info`): context, and the longest audio input per modality."""
    out: dict = {"context_tokens": context, "reply_reserve_tokens": RESERVE}
    if context is not None:
        for name in layout.names:
            spec = layout[name].spec
            if spec.frame_rate is not None:
                out[f"max_{name}_input_seconds"] = round((context - RESERVE - 2) // spec.num_codebooks / spec.frame_rate, 2)
    return out
