"""Shared test settings: single-threaded torch keeps the 2-core CI machine responsive; on CI
(``CI`` set) hypothesis draws a fixed sequence of examples, so a landing never depends on the
luck of one run (locally it keeps exploring new examples)."""

import os

import matplotlib
import torch
from hypothesis import settings

matplotlib.use("Agg")
torch.set_num_threads(1)

settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
