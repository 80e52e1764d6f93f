"""Peer libraries as the benchmarks run them (shared by the benchmark scripts)."""

from __future__ import annotations

import logging
import warnings
from typing import Any

__all__ = ["quiet_gcm"]


def quiet_gcm() -> Any:
    """Import DoWhy-gcm quietly, single-job, without progress bars (the same thread budget as
    deepscm's runs)."""
    warnings.filterwarnings("ignore")
    from dowhy import gcm

    gcm.config.disable_progress_bars()
    gcm.config.set_default_n_jobs(1)
    for name in ("dowhy", "dowhy.gcm"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return gcm
