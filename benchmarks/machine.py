"""What a benchmark ran on, recorded beside its results (shared by the benchmark scripts)."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
from typing import Any

import numpy as np
import pandas as pd
import torch

import deepscm as ds

__all__ = ["machine_info", "report_header"]


def machine_info(*distributions: str) -> dict[str, Any]:
    """Date, Python, platform, CPU count, torch threads, core library versions, the versions
    of ``distributions`` (``None`` when not installed) and the load average at the start."""
    info: dict[str, Any] = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "deepscm": getattr(ds, "__version__", "unknown"),
    }
    for dist in distributions:
        try:
            info[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            info[dist] = None
    try:
        info["load_average_start"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not available on every platform
        pass
    return info


def report_header(command: str, machine: dict[str, Any], runtime_s: float, threads: int = 1,
                  versions: tuple[str, ...] = ()) -> list[str]:
    """The two lines under a results file's title: the command that made it, then the date,
    the ``versions`` named (keys of ``machine``, e.g. ``"torch"``), the thread count, the run
    time and the load average at the start (:func:`machine_info`), as markdown lines."""
    facts = [f"Date: {machine['date']}"]
    facts += [f"{name} {machine.get(name)}" for name in versions]
    facts += [f"{threads} thread{'s' if threads != 1 else ''}", f"run time {runtime_s:.0f} s",
              f"load average at the start {machine.get('load_average_start')}"]
    return [f"Command: `{command}`  ", "; ".join(facts) + "."]
