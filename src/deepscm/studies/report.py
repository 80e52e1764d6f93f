"""Helpers shared by the studies: torch threads for a run, the environment block of a
results file, and writing results as JSON."""

from __future__ import annotations

import json
import platform
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypeVar

from .._version import __version__
from ..io import to_jsonable

__all__ = ["environment", "with_threads", "write_json"]

T = TypeVar("T")


def with_threads(threads: int | None, run: Callable[[], T]) -> T:
    """Run ``run()`` with ``threads`` torch CPU threads (unchanged when ``None``), restoring
    the previous setting afterwards. One thread is fastest for the studies' small networks."""
    import torch

    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return run()
    finally:
        torch.set_num_threads(previous)


def environment() -> dict[str, Any]:
    """Versions and the machine, recorded beside every study's numbers."""
    import torch

    return {
        "deepscm": __version__, "torch": torch.__version__, "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(), "machine": platform.machine(),
    }


def write_json(path: Path, results: dict, drop: Collection[str] = ()) -> None:
    """Write ``results`` (numpy values converted; keys in ``drop`` left out) as JSON."""
    path.write_text(json.dumps(to_jsonable(results, drop=drop), indent=2))
