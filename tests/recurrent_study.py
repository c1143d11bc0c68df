"""The tiny recurrent study the end-to-end test runs: both sub-grids of the default study's
recurrent nets (config/config.yaml), shrunk."""

from __future__ import annotations

RNN = {"data": ["cmudict"], "depth": [1], "norm": ["none"], "residual": [False]}
RECURRENT = {
    "study": "tiny-recurrent",
    "seeds": [0, 1, 2],
    "train": {"lr": [0.01], "epochs": 1, "probe_every": 10, "probe_size": 64},
    "grids": {
        "recurrent_profile": {**RNN, "arch": ["rnn"], "activation": ["tanh", "relu"],
                              "sigma_w2": [0.5, 1.0], "seq_len": [12, 16, 24, 40],
                              "epochs": [0], "lr": [0.1], "seeds": [0, 1, 2, 3, 4]},
        "recurrent": {**RNN, "arch": ["rnn", "gru"], "activation": ["tanh"], "seq_len": [12],
                      "optimizer": ["adam"], "epochs": [1], "lr": [0.01]},
    },
    "pack": ["depth", "norm", "init", "optimizer", "epochs", "arch", "data", "seq_len",
             "sigma_w2"],
}  # fmt: skip
