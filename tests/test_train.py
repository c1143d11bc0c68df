"""Training through Lightning: replicas inside a batch equal the same seed and lr trained alone;
divergence freezes one replica and leaves the others untouched; runs are repeatable."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vanishing.config import Cell, DataConfig, ModelConfig, TrainConfig
from vanishing.training.data import load_splits
from vanishing.training.module import fit_cell


@pytest.fixture(scope="module")
def splits():
    torch.set_num_threads(1)
    return load_splits(DataConfig(), probe_size=64)


def cell(activation="tanh", norm="none", residual=False, depth=4, epochs=2, optimizer="sgd"):
    return Cell(
        "test",
        DataConfig(),
        ModelConfig(activation, depth, norm, residual, width=16),
        TrainConfig(optimizer=optimizer, epochs=epochs, probe_every=5, probe_size=64),
    )


def losses(module) -> np.ndarray:
    return torch.stack(module.history.step_losses).cpu().numpy()  # (steps, R)


def probes(module, q="grad_preact_rms") -> np.ndarray:
    return np.stack([v[q] for _, v in module.history.probes])  # (probes, R, depth)


@pytest.mark.parametrize(
    "norm,residual,optimizer",
    [
        ("none", False, "sgd"),
        ("batch", False, "sgd"),
        ("none", True, "sgd"),
        ("layer", True, "adam"),
        ("none", False, "lnsgd"),
    ],
)
def test_replica_in_batch_matches_replica_alone(splits, norm, residual, optimizer):
    c = cell(norm=norm, residual=residual, optimizer=optimizer)
    seeds, lrs = [0, 1, 0, 1], [0.01, 0.01, 0.05, 0.05]
    if optimizer == "adam":
        lrs = [x / 10 for x in lrs]
    batch, _ = fit_cell(c, splits, seeds, lrs)
    d = batch.data
    _, acc_batch = batch.evaluate(d.x_test, d.y_test)
    for r in (1, 2):
        alone, _ = fit_cell(c, splits, [seeds[r]], [lrs[r]])
        np.testing.assert_allclose(losses(batch)[:20, r], losses(alone)[:20, 0], rtol=1e-4)
        np.testing.assert_allclose(probes(batch)[:5, r], probes(alone)[:5, 0], rtol=1e-3)
        _, acc_alone = alone.evaluate(alone.data.x_test, alone.data.y_test)
        # after 32 steps float rounding may flip a handful of the 360 test predictions
        assert abs(acc_batch[r] - acc_alone[0]) <= 0.02


def test_divergence_freezes_one_replica_only(splits):
    c = cell(activation="relu", depth=6, epochs=2)
    both, _ = fit_cell(c, splits, [0, 0], [0.05, 500.0])
    alone, _ = fit_cell(c, splits, [0], [0.05])
    step = both.history.diverged_step[1]
    assert both.history.diverged_step[0] is None and step is not None and step < 10
    np.testing.assert_allclose(losses(both)[:, 0], losses(alone)[:, 0], rtol=1e-4)
    assert (losses(both)[step:, 1] == 0).all()  # frozen: no loss counted after divergence
    assert np.isnan(probes(both)[-1, 1]).all() and np.isfinite(probes(both)[-1, 0]).all()
    assert all(np.isfinite(p).all() for p in both.net.parameters() for p in [p.detach().numpy()])


def test_same_seed_same_numbers(splits):
    c = cell(norm="batch")
    a, _ = fit_cell(c, splits, [3], [0.02])
    b, _ = fit_cell(c, splits, [3], [0.02])
    np.testing.assert_array_equal(losses(a), losses(b))
    np.testing.assert_array_equal(probes(a), probes(b))


def test_probes_at_step_zero_every_k_and_at_the_end(splits):
    m, _ = fit_cell(cell(epochs=1), splits, [0], [0.01])
    steps = [s for s, _ in m.history.probes]
    n = len(splits.y_train) // 64
    assert steps == [0, 1, 2, 4, 5, 10, 15, n] and n == 16  # log-spaced below probe_every


def test_mnist1d_trains_and_probes():
    """The generated mnist1d set (40 features, never downloaded) trains like digits: a shallow
    ReLU net learns well above chance (0.1); probes see 40 inputs; a deep plain sigmoid net
    starts with a gradient at layer 1 orders of magnitude below the top."""
    data = DataConfig(name="mnist1d", mnist1d_samples=2000)
    s = load_splits(data, probe_size=64)
    shallow = Cell(
        "mnist1d",
        data,
        ModelConfig("relu", 2, "none", False, width=64),
        TrainConfig(epochs=15, probe_every=20, probe_size=64),
    )
    m, _ = fit_cell(shallow, s, [0, 1], [0.05, 0.05])
    _, acc = m.evaluate(m.data.x_test, m.data.y_test)
    assert s.input_dim == 40 and (acc > 0.3).all()
    deep = Cell(
        "mnist1d-deep",
        data,
        ModelConfig("sigmoid", 12, "none", False, width=32),
        TrainConfig(epochs=1, probe_every=100, probe_size=64),
    )
    d, _ = fit_cell(deep, s, [0], [0.05])
    rms = probes(d)[0, 0]  # step 0, the one replica, per layer
    assert rms[0] / rms[-1] < 1e-5  # sigmoid chi ~ 1/4 per layer on squared norms: ~1e-7


def test_a_profile_at_init_trains_nothing_and_probes_step_zero(splits):
    """epochs 0: one probe at step 0, equal to a trained cell's step-0 probe; nothing moved."""
    profile, _ = fit_cell(cell(epochs=0, norm="batch"), splits, [0, 1], [0.01, 0.01])
    trained, _ = fit_cell(cell(epochs=1, norm="batch"), splits, [0, 1], [0.01, 0.01])
    assert [s for s, _ in profile.history.probes] == [0]
    np.testing.assert_array_equal(probes(profile)[0], probes(trained)[0])
    step0 = profile.history.probes[0][1]
    assert (step0["weight_unchanged"] == 1).all() and (step0["weight_distance_rel"] == 0).all()
    assert np.isnan(step0["weight_update_rel"]).all()
    assert (
        profile.history.curves == [] and np.isnan(profile.history.final["best_val_accuracy"]).all()
    )


def test_weights_move_from_their_init_during_training(splits):
    m, _ = fit_cell(cell(epochs=1), splits, [0], [0.05])
    last = m.history.probes[-1][1]
    assert (last["weight_distance_rel"] > 0).all() and (last["weight_unchanged"] < 0.5).all()
    # the update over the last interval (step 15 to 16) is smaller than the distance travelled
    assert (last["weight_update_rel"] < last["weight_distance_rel"]).all()


def test_layer_1s_unchanged_fraction_leaves_out_the_constant_pixels(splits):
    """Digits has pixels that are 0 in every training image: layer 1's weights from them get no
    gradient, at any depth. They are left out of its unchanged fraction, so a shallow net that
    trains reads 0 there, where counting them would read their share of W_1."""
    x = splits.x_train
    constant = int((~(x != x[:1]).any(dim=0)).sum())
    assert constant >= 1  # the premise: digits has constant pixels
    m, _ = fit_cell(cell(activation="relu", depth=2, epochs=1), splits, [0], [0.05])
    w, w0 = m.hidden_weights()[0][0], m.init_state["weights.0"][0]  # (fan_in, fan_out)
    raw = (w == w0).float().mean().item()
    assert raw >= constant / x.shape[1]  # their rows never moved
    assert m.history.probes[-1][1]["weight_unchanged"][0, 0] == 0.0


def test_layer_reset_restores_the_lower_half_by_hand(splits):
    """reset_test_accuracy is the test accuracy with layers 1..depth//2 back at their step-0
    values, computed here on a copy; an untrained net loses nothing by the reset."""
    c = cell(activation="relu", depth=4, epochs=2)
    m, _ = fit_cell(c, splits, [0, 1], [0.05, 0.05])
    final = m.history.final
    assert (final["reset_layers"] == 2).all()
    net = m.net
    trained = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        for i in range(2):
            net.weights[i].copy_(m.init_state[f"weights.{i}"])
            net.biases[i].copy_(m.init_state[f"biases.{i}"])
    _, acc = m.evaluate(m.data.x_test, m.data.y_test)
    net.load_state_dict(trained)
    np.testing.assert_allclose(final["reset_test_accuracy"], acc)
    assert (final["reset_test_accuracy"] < final["final_test_accuracy"]).all()  # it learned
    # at lr 0 nothing moves: resetting the lower half changes nothing
    untrained, _ = fit_cell(cell(activation="relu", depth=4, epochs=1), splits, [0], [0.0])
    u = untrained.history.final
    np.testing.assert_array_equal(u["reset_test_accuracy"], u["final_test_accuracy"])
    shallow, _ = fit_cell(cell(depth=1, epochs=1), splits, [0], [0.05])
    assert np.isnan(shallow.history.final["reset_test_accuracy"]).all()
