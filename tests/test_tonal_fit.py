"""The tonal fit of the music layer-1 rows (train/embeddings.py): additive afterwards, idempotent, every
other row untouched, what a recipe's `tonal_fit` runs, and a clear error without a tonal codec."""

import pytest
import torch

from anygpt.errors import AnyGPTError
from anygpt.train.embeddings import fit_tonal_rows, tonal_rows


@pytest.fixture()
def tiny():
    from anygpt.bundles import load_bundle

    return load_bundle("tiny")


def matrices(b):
    return [b.model.get_input_embeddings().weight, b.model.get_output_embeddings().weight]


def test_rows_become_instrument_plus_slot_and_nothing_else_moves(tiny):
    ids = tonal_rows(tiny)
    assert ids.shape == (27, 13) and int(ids[0, 0]) == tiny.layout["music"].first_id
    before = [w.detach().clone() for w in matrices(tiny)]
    x = before[0][ids]
    residual = x - x.mean(1, keepdim=True) - x.mean(0, keepdim=True) + x.mean((0, 1), keepdim=True)
    assert residual.norm() > 0.5 * (x - x.mean((0, 1))).norm()  # the shipped rows are far from additive

    assert fit_tonal_rows(tiny) == 351
    for w, old in zip(matrices(tiny), before):
        y = w.detach()[ids]
        additive = y.mean(1, keepdim=True) + y.mean(0, keepdim=True) - y.mean((0, 1), keepdim=True)
        torch.testing.assert_close(y, additive, atol=1e-5, rtol=0)
        torch.testing.assert_close(y.mean(1), old[ids].mean(1))  # each instrument's mean is kept
        others = torch.ones(w.shape[0], dtype=torch.bool)
        others[ids.reshape(-1)] = False
        assert torch.equal(w.detach()[others], old[others])

    once = [w.detach().clone() for w in matrices(tiny)]
    fit_tonal_rows(tiny)
    for w, old in zip(matrices(tiny), once):
        torch.testing.assert_close(w.detach(), old, atol=1e-5, rtol=0)


def test_a_bundle_without_a_tonal_codec_is_refused(debug_bundle):
    with pytest.raises(AnyGPTError, match="tonal"):
        fit_tonal_rows(debug_bundle)


def test_the_recipe_setting_runs_the_fit(tiny, tmp_path, monkeypatch):
    from anygpt.train import trainer
    from anygpt.train.recipe import TrainConfig

    monkeypatch.setattr(trainer, "prepare_data", lambda *a: (_ for _ in ()).throw(RuntimeError("stop here")))
    ids = tonal_rows(tiny)
    for fit in (False, True):
        w = tiny.model.get_input_embeddings().weight
        with pytest.raises(RuntimeError, match="stop here"):
            trainer.train(TrainConfig(bundle="tiny", out=str(tmp_path / str(fit)), tonal_fit=fit), bundle=tiny)
        y = w.detach()[ids]
        gap = (y - y.mean(1, keepdim=True) - y.mean(0, keepdim=True) + y.mean((0, 1), keepdim=True)).norm()
        assert (gap < 1e-3) == fit
