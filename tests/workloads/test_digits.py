"""Gradual bank-balanced pruning of the digits MLPs (s4accel.sim.workloads.digits)."""

import numpy as np
import pytest

from s4accel.base.sparse import check_sparsity
from s4accel.sim.workloads import digits


@pytest.fixture(scope="module")
def data():
    return digits.load_digits_split(0)


@pytest.mark.parametrize("schedule", digits.PRUNE_SCHEDULES)
def test_pruning_keeps_the_mask_through_fine_tuning(data, schedule):
    x_tr, y_tr, _, _ = data
    pruned, dense = digits.train_mlp(x_tr, y_tr, 64, 16, seed=3, epochs=4, finetune=3,
                                     steps=3, step_epochs=2, schedule=schedule,
                                     keep_dense=True)
    for w, wd in ((pruned.w1, dense.w1), (pruned.w2, dense.w2)):
        # Adam would refill pruned entries if the mask were not applied after every step
        check_sparsity(w, 16)
        assert np.count_nonzero(w) == w.shape[0] * -(-w.shape[1] // 32) * 2
        # fine-tuning moved the kept weights
        assert not np.allclose(w[w != 0], wd[w != 0])


def test_gradual_masks_shrink_inside_each_other(data, monkeypatch):
    x_tr, y_tr, _, _ = data
    seen = []
    real = digits._adam_train

    def spy(p, masks, *a, **kw):
        if masks:
            seen.append({k: m.copy() for k, m in masks.items()})
        return real(p, masks, *a, **kw)

    monkeypatch.setattr(digits, "_adam_train", spy)
    digits.train_mlp(x_tr, y_tr, 64, 8, seed=1, epochs=2, finetune=1, steps=4, step_epochs=1)
    assert len(seen) == 5      # 4 pruning steps, then the final fine-tuning
    for a, b in zip(seen, seen[1:], strict=False):
        for k in a:
            assert not (b[k] > a[k]).any()      # a pruned weight never comes back
    with pytest.raises(ValueError, match="schedule must be"):
        digits.train_mlp(x_tr, y_tr, 8, 8, schedule="random")
