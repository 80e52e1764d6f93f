"""Shared test settings: single-threaded torch keeps the 2-core CI machine responsive."""

import matplotlib
import torch

matplotlib.use("Agg")
torch.set_num_threads(1)
