"""Starting points for the LLM's rows of codec tokens.

`fit_tonal_rows`: a tonal music codec's layer-1 id is instrument x SLOTS + slot (a rest or a pitch
class; codecs/small/tonal.py), so a pitch class has one id per instrument, each with its own rows in
the input and output embeddings, learnt apart. The fit replaces those rows by their additive
(two-way) fit, E[i, s] -> mean_s E[i, :] + mean_i E[:, s] - mean E: one vector per instrument plus one
per slot, so that what the model learns of a pitch class under one instrument starts out shared
with every other. It is a projection (applying it twice changes nothing more).
"""

from __future__ import annotations

import torch

from anygpt.codecs.small.tonal import SLOTS
from anygpt.errors import AnyGPTError


def tonal_rows(bundle) -> torch.Tensor:
    """(instruments, SLOTS) token ids of the music codec's layer-1 codes; an error when the bundle's
    music codec is not tonal."""
    codec = bundle.codec("music") if "music" in bundle.layout.names else None
    tonal = getattr(getattr(codec, "net", None), "tonal", None)
    if tonal is None:
        raise AnyGPTError(f"bundle {bundle.name!r}: its music codec has no tonal layer 1 (tonal_fit needs one)")
    instruments = tonal.size // SLOTS
    first = bundle.layout["music"].first_id
    return first + torch.arange(instruments * SLOTS).view(instruments, SLOTS)


@torch.no_grad()
def fit_tonal_rows(bundle) -> int:
    """Replace the rows of the tonal layer-1 tokens in the input and output embeddings (the same
    matrix once when they are tied) by their additive fit. Returns the number of rows per matrix."""
    ids = tonal_rows(bundle)
    model = bundle.model
    matrices = {id(m.weight): m.weight for m in (model.get_input_embeddings(), model.get_output_embeddings())}
    for weight in matrices.values():
        x = weight[ids].float()  # (instruments, SLOTS, dim)
        fit = x.mean(1, keepdim=True) + x.mean(0, keepdim=True) - x.mean((0, 1), keepdim=True)
        weight[ids.reshape(-1)] = fit.reshape(ids.numel(), -1).to(weight.dtype)
    return ids.numel()
