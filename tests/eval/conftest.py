import pytest
import torch


@pytest.fixture
def one_thread():
    """Small problems run fastest on one thread, and far faster on a machine shared with other jobs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
