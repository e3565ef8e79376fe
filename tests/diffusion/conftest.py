"""Engine tests run torch on one thread: their tensors are small, and on a 2-core CI machine that
also runs the test process itself, two intra-op threads spin-wait for each other (up to 10× slower)."""

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
