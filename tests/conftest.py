"""Shared test settings: single-threaded torch keeps the 2-core CI machine responsive; on CI
(``CI`` set) hypothesis draws a fixed sequence of examples, so a landing never depends on the
luck of one run (locally it keeps exploring new examples)."""

import os

import matplotlib
import pytest
import torch
from hypothesis import settings

matplotlib.use("Agg")
torch.set_num_threads(1)

settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def one_thread():
    """One torch thread for the test, the previous count restored afterwards (for tests that
    change it, or that must not inherit another test's change)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
