"""Tests for dlbook.data: the committed files, the loaders, and the error paths."""

import hashlib
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dlbook import data
from dlbook.data import (
    CHECKSUMS,
    DataIntegrityError,
    data_path,
    load_mnist5k,
    load_moby_dick,
    load_names,
    mnist5k_tensors,
)

REPO_DATA = Path(__file__).resolve().parents[1] / "data"  # the committed files


@pytest.fixture
def repo_data_only(monkeypatch):
    """Resolve files from the repository's data/ only, whatever else is installed or set."""
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setattr(data, "PACKAGE_DATA_DIR", REPO_DATA / "__no_such_dir__")
    monkeypatch.setattr(data, "REPO_DATA_DIR", REPO_DATA)


@pytest.mark.parametrize("name", sorted(CHECKSUMS))
def test_committed_file_matches_checksum(name):
    actual = hashlib.sha256((REPO_DATA / name).read_bytes()).hexdigest()
    assert actual == CHECKSUMS[name]


def test_readme_lists_the_same_checksums():
    readme = (REPO_DATA / "README.md").read_text(encoding="utf-8")
    table = dict(re.findall(r"^\| `([\w.]+)` \|[^|\n]*\| `([0-9a-f]{64})` \|$", readme, re.M))
    assert table == CHECKSUMS


def test_mnist_shapes_dtypes_and_class_balance(repo_data_only):
    x_train, y_train = load_mnist5k("train")
    x_test, y_test = load_mnist5k("test")
    x_all, y_all = load_mnist5k("all")
    assert x_train.shape == (4000, 28, 28) and y_train.shape == (4000,)
    assert x_test.shape == (1000, 28, 28) and y_test.shape == (1000,)
    assert x_all.shape == (5000, 28, 28) and y_all.shape == (5000,)
    assert x_all.dtype == np.uint8 and y_all.dtype == np.int64
    assert np.bincount(y_all, minlength=10).tolist() == [500] * 10
    assert np.bincount(y_test, minlength=10).tolist() == [100] * 10
    assert x_all.max() == 255 and x_all.min() == 0
    np.testing.assert_array_equal(x_all, np.concatenate([x_train, x_test]))


def test_mnist_train_and_test_share_no_digit(repo_data_only):
    x_train, _ = load_mnist5k("train")
    x_test, _ = load_mnist5k("test")
    train_rows = {img.tobytes() for img in x_train}
    assert not any(img.tobytes() in train_rows for img in x_test)


def test_mnist_is_shuffled_and_upright(repo_data_only):
    x, y = load_mnist5k("train")
    assert len(set(y[:100].tolist())) == 10  # the front of the split mixes all classes
    ink_per_row = x[y == 7].astype(np.float64).mean(axis=0).sum(axis=1)  # (28,) for a mean "7"
    # A 7's bar is at the top: images stored upside down would put the inkiest row below 14.
    assert ink_per_row.argmax() < 14


def test_mnist_bad_split_lists_valid_ones():
    with pytest.raises(ValueError, match="train.*test.*all"):
        load_mnist5k("validation")


def test_mnist_tensors(repo_data_only):
    x, y = mnist5k_tensors("test")
    assert x.shape == (1000, 784) and x.dtype == torch.float32
    assert y.shape == (1000,) and y.dtype == torch.int64
    assert 0.0 <= x.min().item() and x.max().item() == 1.0
    images, labels = load_mnist5k("test")
    assert torch.equal(x, torch.from_numpy(images.reshape(1000, 784)).float() / 255)
    assert torch.equal(y, torch.from_numpy(labels))
    x_img, _ = mnist5k_tensors("train", flatten=False)
    assert x_img.shape == (4000, 1, 28, 28)


def test_names(repo_data_only):
    names = load_names()
    assert len(names) == 32_000
    assert len(set(names)) == 32_000
    assert all(re.fullmatch(r"[a-z]+", name) for name in names)
    assert {"mary", "james", "john"} <= set(names[:10])  # most common first


def test_moby_dick(repo_data_only):
    text = load_moby_dick()
    assert 1_100_000 < len(text) < 1_300_000
    assert "Call me Ishmael" in text
    assert "\r" not in text


def _copy_all(dest):
    for name in CHECKSUMS:
        shutil.copy(REPO_DATA / name, dest / name)


def test_corrupt_copy_raises_integrity_error(tmp_path, monkeypatch):
    _copy_all(tmp_path)
    raw = bytearray((tmp_path / "names.txt").read_bytes())
    raw[100] ^= 0x01  # one flipped bit
    (tmp_path / "names.txt").write_bytes(bytes(raw))
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    with pytest.raises(DataIntegrityError, match="names.txt") as excinfo:
        load_names()
    assert isinstance(excinfo.value, ValueError)
    assert CHECKSUMS["names.txt"] in str(excinfo.value)


def test_cache_is_invalidated_when_the_file_changes(tmp_path, monkeypatch):
    _copy_all(tmp_path)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    assert "Call me Ishmael" in load_moby_dick()  # verified, now cached

    path = tmp_path / "moby_dick.txt"
    raw = bytearray(path.read_bytes())
    raw[0] ^= 0x20  # same size, different bytes
    path.write_bytes(bytes(raw))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(DataIntegrityError, match="moby_dick.txt"):
        load_moby_dick()


def test_missing_file_says_where_it_looked_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    monkeypatch.setattr(data, "PACKAGE_DATA_DIR", tmp_path / "pkg" / "_data")
    monkeypatch.setattr(data, "REPO_DATA_DIR", tmp_path / "repo" / "data")
    with pytest.raises(FileNotFoundError, match="moby_dick.txt") as excinfo:
        load_moby_dick()
    message = str(excinfo.value)
    assert "build_data.py" in message
    assert str(tmp_path / "pkg" / "_data") in message


def test_lookup_order_env_then_package_then_repo(tmp_path, monkeypatch):
    env_dir, pkg_dir, repo_dir = (tmp_path / d for d in ("env", "_data", "data"))
    for folder in (env_dir, pkg_dir, repo_dir):
        folder.mkdir()
        (folder / "names.txt").write_text(folder.name)
    monkeypatch.setattr(data, "PACKAGE_DATA_DIR", pkg_dir)
    monkeypatch.setattr(data, "REPO_DATA_DIR", repo_dir)

    monkeypatch.setenv(data.ENV_VAR, str(env_dir))
    assert data_path("names.txt") == env_dir / "names.txt"
    monkeypatch.delenv(data.ENV_VAR)
    assert data_path("names.txt") == pkg_dir / "names.txt"
    (pkg_dir / "names.txt").unlink()
    assert data_path("names.txt") == repo_dir / "names.txt"


def test_damaged_copy_gets_the_fix_for_its_own_folder(tmp_path, monkeypatch):
    (tmp_path / "names.txt").write_text("not the names\n")
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    with pytest.raises(data.DataIntegrityError) as err:
        data.load_names()
    assert "DLBOOK_DATA_DIR" in str(err.value) and "git checkout" not in str(err.value)
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "names.txt").write_text("not the names either\n")
    monkeypatch.delenv(data.ENV_VAR)
    monkeypatch.setattr(data, "PACKAGE_DATA_DIR", pkg)
    with pytest.raises(data.DataIntegrityError, match="Reinstall dlbook"):
        data.load_names()


def test_validation_split_is_stratified_disjoint_and_reproducible():
    import torch

    x, y = data.mnist5k_tensors("train")
    (xt, yt), (xv, yv) = data.validation_split(x, y, 0.2, seed=0)
    assert len(xv) == 800 and len(xt) == 3200
    assert torch.bincount(yv).tolist() == [80] * 10
    (_, _), (xv2, _) = data.validation_split(x, y, 0.2, seed=0)
    assert torch.equal(xv, xv2)
    rows = {r.numpy().tobytes() for r in xt}
    assert not any(r.numpy().tobytes() in rows for r in xv), "no digit is in both parts"
    train, val, test = data.mnist5k_splits()
    assert len(train[0]) + len(val[0]) == 4000 and len(test[0]) == 1000
    with pytest.raises(ValueError, match="between 0 and 1"):
        data.validation_split(x, y, 1.5)
    with pytest.raises(ValueError, match="differ in length"):
        data.validation_split(x, y[:-1])


def test_two_spirals_shapes_labels_and_seeding():
    from dlbook.data import two_spirals

    x, y = two_spirals(50, noise=0.0, seed=0)
    assert x.shape == (100, 2) and x.dtype == np.float32 and y.tolist() == [0] * 50 + [1] * 50
    assert np.abs(x).max() <= 2.0 + 1e-6
    assert np.allclose(x[50:], -x[:50], atol=1e-6), "class 1 is class 0 turned half a turn"
    noisy, _ = two_spirals(50, noise=0.04, seed=0)
    assert np.array_equal(noisy, two_spirals(50, noise=0.04, seed=0)[0])
    assert not np.array_equal(noisy, two_spirals(50, noise=0.04, seed=1)[0])


def test_two_spirals_bad_input():
    from dlbook.data import two_spirals

    with pytest.raises(ValueError, match="positive integer"):
        two_spirals(0)
    with pytest.raises(ValueError, match="standard deviation"):
        two_spirals(10, noise=-1.0)
