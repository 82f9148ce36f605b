"""Fixtures shared by the unit tests."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tests on one intra-op thread, then restore the setting.

    Their tensors are small: one thread is as fast, and it keeps PyTorch's threads from
    spinning against each other when the machine is shared (pytest-xdist workers, other jobs).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
