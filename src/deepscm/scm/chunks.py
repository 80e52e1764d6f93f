"""Row chunks of a query, worked on CPU threads.

Sampling is a loop over chunks of rows (:meth:`deepscm.DeepSCM.sample`). Drawing a chunk's
noise reads the shared random generator, so it stays on the calling thread, in chunk order;
propagating and decoding the chunk are pure functions of that noise. With
``torch.get_num_threads() = k > 1`` on the CPU, :func:`map_in_order` runs the pure part on
``k`` worker threads with one intra-op thread each: a chunk is hundreds of small tensor
operations, which parallelise poorly *inside* an operation (a fork and join each) and well
*across* chunks (torch releases the GIL inside an operation). Each chunk then runs
single-threaded whatever ``k`` is, so a seeded sample is the same on any number of threads.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")

#: chunks in flight per worker (drawn ahead on the calling thread while the workers run).
_AHEAD = 2


def map_in_order(work: Callable[[T], R], items: Iterable[T], count: int, device: torch.device) -> list[R]:
    """``[work(item) for item in items]`` (``count`` items), on ``torch.get_num_threads()``
    worker threads when ``device`` is the CPU, more than one thread is set and there is more
    than one item (intra-op threads set to one meanwhile, and restored). ``items`` is consumed on the calling thread, in order, at most
    ``_AHEAD`` per worker ahead of the results; a failure in ``work`` is raised here, after
    the chunks still queued are cancelled. ``work`` must not depend on thread-local state
    (e.g. it enters ``torch.no_grad()`` itself)."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1 or count < 2:
        return [work(item) for item in items]
    results: list[R] = []
    pending: deque[Future[R]] = deque()
    pool = ThreadPoolExecutor(threads, thread_name_prefix="deepscm-chunk")
    torch.set_num_threads(1)
    try:
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) >= _AHEAD * threads:
                results.append(pending.popleft().result())
        while pending:
            results.append(pending.popleft().result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(threads)
    return results
