"""Fixtures shared by the test files."""
from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """dlbook built as the wheel that a Colab setup cell installs (data sets inside)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out),
                    str(ROOT)], check=True)
    (path,) = out.glob("dlbook-*.whl")
    return path


@pytest.fixture
def one_torch_thread():
    """One torch thread, as the book's tests and builds run (two threads collapse when the
    machine is shared). Test files that train use it: pytestmark = usefixtures(...)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same random state (torch, numpy's legacy global generator and
    Python's), so a test run alone draws what it draws in the whole suite."""
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
