"""Chapter 06 generates MNIST-1D in memory: the call it uses must touch neither the network nor
the file system (``mnist1d.data.get_dataset`` would download a pickle, or write one)."""
import builtins
import socket

import numpy as np


def test_make_dataset_needs_no_network_and_writes_no_file(monkeypatch):
    from mnist1d.data import get_dataset_args, make_dataset

    def no_network(*args, **kwargs):
        raise AssertionError("make_dataset tried to open a network connection")

    real_open = builtins.open

    def read_only_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            raise AssertionError(f"make_dataset tried to write {file}")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(builtins, "open", read_only_open)
    data = make_dataset(get_dataset_args())
    assert data["x"].shape == (4000, 40) and data["x_test"].shape == (1000, 40)
    assert sorted(np.unique(data["y"])) == list(range(10))
    again = make_dataset(get_dataset_args())
    assert np.array_equal(data["x"], again["x"]), "seeded: the same signals every run"
