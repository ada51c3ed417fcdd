"""The conditioning gap (anygpt.eval.conditioning, anygpt.train.conditioning): the reply mask covers
exactly the reply, the figure is the hand-computed NLL, a model that cannot read its input has a gap of
exactly 0. Training's per-direction gap: tests/test_train_resume.py."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from anygpt.chat import ChatSession
from anygpt.errors import AnyGPTError
from anygpt.eval.conditioning import conditioning, derangement, gap_figures, reply_nll, teacher_forced
from anygpt.prompts import Media, load_tasks

pytestmark = pytest.mark.usefixtures("one_thread")

CAPTIONS = ["a red circle", "two blue squares on a green background", "a small yellow triangle"]


def images(n: int) -> list[Media]:
    g = torch.Generator().manual_seed(0)
    return [Media("image", torch.randint(0, 8192, (1, 32), generator=g)) for _ in range(n)]


def hand_nll(model, prompt: list[int], reply: list[int]) -> float:
    """Summed NLL of `reply` after `prompt`: one unpadded forward pass, log-softmax, read off."""
    with torch.no_grad():
        logp = F.log_softmax(model(input_ids=torch.tensor([prompt + reply])).logits[0].double(), -1)  # (T, V)
    return -sum(logp[len(prompt) - 1 + k, t].item() for k, t in enumerate(reply))


class Bigram(torch.nn.Module):
    """Logits from the current token alone: a model that cannot read anything before it."""

    def __init__(self, vocab: int):
        super().__init__()
        self.table = torch.nn.Embedding(vocab, vocab)
        torch.nn.init.normal_(self.table.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, input_ids, **kwargs):
        return SimpleNamespace(logits=self.table(input_ids))


def test_reply_covers_exactly_the_reply(debug_bundle):
    b = debug_bundle
    eos = b.token_ids([b.prompt_format.assistant_end])
    image = images(1)[0]
    # text reply: the prompt is the `anygpt chat --task` prompt; the reply is the caption, then <eos>
    prompt, reply = teacher_forced(b, "caption", image, CAPTIONS[0])
    assert prompt == ChatSession(b).prompt_ids(load_tasks()["caption"].chat_pieces(image), want="text")
    assert reply[-1:] == eos and b.tokenizer.decode(reply[:-1]) == " " + CAPTIONS[0]
    # media reply: the prompt opens the span (<soim> is given, not scored); the reply is codes, <eoim>, <eos>
    prompt, reply = teacher_forced(b, "t2i", CAPTIONS[0], image)
    span = b.layout.span_ids("image", image.codes).tolist()  # <soim> 32 codes <eoim>
    assert prompt[-1] == span[0] == b.layout["image"].start_id
    assert reply == span[1:] + eos and len(reply) == 34


def test_figure_equals_hand_computed_nll(debug_bundle):
    b = debug_bundle
    xs, ys = images(3), CAPTIONS
    got = conditioning(b, "caption", xs, ys, batch_size=2)  # batches of two with padding
    own = [teacher_forced(b, "caption", x, y) for x, y in zip(xs, ys)]
    swapped = [teacher_forced(b, "caption", xs[j], y) for j, y in zip([1, 2, 0], ys)]
    tokens = sum(len(r) for _, r in own)
    matched = [hand_nll(b.model, p, r) for p, r in own]
    mismatched = [hand_nll(b.model, p, r) for p, r in swapped]
    assert got["matched"] == pytest.approx(sum(matched) / tokens, rel=1e-5)
    assert got["mismatched"] == pytest.approx(sum(mismatched) / tokens, rel=1e-5)
    assert got["gap"] == pytest.approx(got["mismatched"] - got["matched"])
    assert got["matched_better"] == sum(a < c for a, c in zip(matched, mismatched)) / 3
    assert got["gap"] != 0.0  # the random debug model does read its input a little
    # per example, padded in a batch or alone: the same sums
    one = reply_nll(b.model, own, pad_id=b.pad_id, batch_size=3)
    assert [n for _, n in one] == [len(r) for _, r in own]
    assert [s for s, _ in one] == pytest.approx(matched, rel=1e-5)


def test_identical_inputs_give_a_gap_of_exactly_zero(debug_bundle):
    same = images(1) * 3
    got = conditioning(debug_bundle, "caption", same, CAPTIONS, batch_size=64)
    assert got["gap"] == 0.0 and got["matched"] == got["mismatched"] and got["matched_better"] == 0.0


def test_a_model_blind_to_its_input_is_caught(debug_bundle):
    """A bigram model scores each reply token from the token before it alone: the swapped input never
    reaches the reply, so its gap is exactly 0, for text and for media replies."""
    import dataclasses

    blind = dataclasses.replace(debug_bundle, model=Bigram(debug_bundle.model.config.vocab_size))
    for task, xs, ys in (("caption", images(3), CAPTIONS), ("t2i", CAPTIONS, images(3))):
        got = conditioning(blind, task, xs, ys)
        assert got["gap"] == 0.0 and got["matched_better"] == 0.0, task


def test_gap_figures_and_derangement_pinned():
    got = gap_figures([(2.0, 2), (3.0, 1)], [(4.0, 2), (1.0, 1)])
    assert got == {"matched": 5 / 3, "mismatched": 5 / 3, "gap": 0.0, "matched_better": 0.5}
    assert gap_figures([(1.0, 4)], [(3.0, 4)]) == {"matched": 0.25, "mismatched": 0.75, "gap": 0.5,
                                                   "matched_better": 1.0}
    for n in (2, 3, 7):
        s = derangement(n)
        assert sorted(s) == list(range(n)) and all(s[i] != i for i in range(n))
    with pytest.raises(AnyGPTError):
        derangement(1)
    with pytest.raises(AnyGPTError):
        conditioning(None, "caption", images(2), CAPTIONS)  # 2 inputs, 3 answers
