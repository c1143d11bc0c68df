"""The data sets: made on this machine (never downloaded), split stratified, standardised."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vanishing.config import DataConfig
from vanishing.training.data import load_splits


@pytest.mark.parametrize("name,dim,n", [("digits", 64, 1797), ("mnist1d", 40, 1000)])
def test_splits_are_stratified_standardised_and_disjoint(name, dim, n):
    cfg = DataConfig(name=name, mnist1d_samples=1000)
    s = load_splits(cfg, probe_size=128)
    sizes = [len(s.y_train), len(s.y_val), len(s.y_test)]
    assert sum(sizes) == n and s.input_dim == dim and s.n_classes == 10
    assert sizes[1] == pytest.approx(0.2 * n, abs=2) and sizes[2] == pytest.approx(0.2 * n, abs=2)
    # stratified: each split's class shares within 1.5 points of the whole data set's
    shares = [torch.bincount(y, minlength=10).double() / len(y) for y in (s.y_train, s.y_val)]
    assert (shares[0] - shares[1]).abs().max() < 0.015
    # standardised on the training split: features with spread have mean 0 and std 1 there
    x = s.x_train.double()
    spread = x.std(0) > 0
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(0, unbiased=False)[spread], 1, atol=1e-4)
    assert s.input_second_moment == pytest.approx(spread.double().mean().item(), rel=1e-4)
    # no example in two splits; the probe batch is 128 distinct training rows
    rows = {tuple(r) for r in s.x_train.numpy().round(5)}
    assert not any(tuple(r) in rows for r in s.x_test.numpy().round(5))
    assert len(set(s.probe.tolist())) == 128 and int(s.probe.max()) < len(s.y_train)


def test_same_split_seed_same_split_other_seed_other_split():
    a, b = load_splits(DataConfig(), 64), load_splits(DataConfig(), 64)
    c = load_splits(DataConfig(split_seed=1), 64)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.probe, b.probe)
    assert not torch.equal(a.y_train, c.y_train)


def test_probe_larger_than_training_split_is_named():
    with pytest.raises(ValueError, match="train.probe_size=5000 exceeds the 1078 training"):
        load_splits(DataConfig(), 5000)
