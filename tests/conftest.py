"""Fixtures shared by the test files."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """One torch thread, as the book's tests and builds run (two threads collapse when the
    machine is shared). Test files that train use it: pytestmark = usefixtures(...)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
