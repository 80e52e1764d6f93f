"""Data-parallel training: one fit on several processes (CPU: gloo; GPUs: NCCL, one per GPU).

Every process holds the same model (rank 0's initial weights are broadcast) and walks the
same global mini-batches (one shared permutation); process ``r`` of ``W`` computes the loss
on its share ``rows[r::W]`` of each batch, and the gradients are summed across processes with
weight ``|share_r| / |batch|``, so the averaged gradient is exactly the one-process gradient
of the whole batch (the all-reduce of PyTorch DDP; Li et al. 2020, "PyTorch Distributed",
§3.2). Terms with the shared loss are reduced in one flat bucket after ``backward``; terms with
their own ``training_step`` (which call ``backward`` and step their optimisers inside) through
a gradient hook on every weight. The held-out score is averaged over shards of the held-out
rows, so every process sees the same value and takes the same early-stopping decision.

One process per device is spawned by :func:`fit` (``DeepSCM.fit(df, devices=2,
strategy="ddp")``); under ``torchrun`` or ``srun`` (``RANK``/``WORLD_SIZE`` set) each launched
process joins the launcher's process group instead. Rank 0's weights are the result.

Equivalence with one process: for terms with the shared loss, the batches and the gradient
are the same up to floating-point summation order (the all-reduce adds per-process partial
sums); Adam and early stopping can amplify these rounding differences over many steps, so two
fits agree statistically, not bit for bit. Terms with their own step draw their noise (e.g. a
diffusion's timesteps) from a per-process stream, so their updates differ in distribution-
preserving ways only.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import json
import os
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .errors import ConfigError, TrainingError

__all__ = [
    "COLLECTIVE_TIMEOUT_S",
    "STRATEGIES",
    "DataParallel",
    "GradientHooks",
    "current",
    "data_parallel",
    "fit",
    "launched",
    "requested",
]

#: ``strategy=`` values of :meth:`DeepSCM.fit`: ``"auto"`` (one process unless ``devices > 1``)
#: and ``"ddp"`` (data-parallel, spawned here or joined under a launcher).
STRATEGIES = ("auto", "ddp")
#: a collective that waits longer than this raises in the worker instead of hanging.
COLLECTIVE_TIMEOUT_S = 600
_POLL_S = 0.05

_CURRENT: ContextVar[DataParallel | None] = ContextVar("deepscm_data_parallel", default=None)


@dataclass(frozen=True)
class DataParallel:
    """This process's place in a data-parallel fit: ``rank`` of ``world_size``."""

    rank: int
    world_size: int
    _noise: dict[int, torch.Tensor] = field(default_factory=dict, compare=False, repr=False)

    def share(self, rows: torch.Tensor) -> tuple[torch.Tensor, float] | None:
        """This process's rows of one global batch and their weight ``|share| / |batch|``;
        ``None`` (on every process alike) for a batch smaller than the world."""
        if len(rows) < self.world_size:
            return None
        local = rows[self.rank :: self.world_size]
        return local, len(local) / len(rows)

    def all_sum(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sum of ``values`` over all processes."""
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

    def reduce_gradients(self, parameters: Iterable[nn.Parameter], weight: float) -> None:
        """Replace every gradient by ``Σ_r weight_r · grad_r`` in one flat all-reduce."""
        grads = [p.grad for p in parameters if p.grad is not None]
        for g, reduced in zip(grads, self.reduce_tensors(grads, weight)):
            g.copy_(reduced)

    def reduce_tensors(self, tensors: list[torch.Tensor], weight: float) -> list[torch.Tensor]:
        """``Σ_r weight_r · t_r`` for every tensor, in one flat all-reduce (new tensors)."""
        if not tensors:
            return []
        flat = torch.cat([t.reshape(-1) for t in tensors]) * weight
        dist.all_reduce(flat)
        return [part.view_as(t) for t, part in zip(tensors, flat.split([t.numel() for t in tensors]))]

    def broadcast(self, modules: Iterable[nn.Module]) -> None:
        """Copy rank 0's parameters and buffers to every process (a model starts identical)."""
        for module in modules:
            for t in [*module.parameters(), *module.buffers()]:
                with torch.no_grad():
                    dist.broadcast(t.data, 0)

    def mean_score(self, score: Callable[[torch.Tensor], float], rows: torch.Tensor) -> float:
        """The mean of ``score`` over ``rows``, each process scoring its shard."""
        local = rows[self.rank :: self.world_size]
        total = score(local) * len(local) if len(local) else 0.0
        return self.all_sum([total], rows.device)[0] / len(rows)

    @contextlib.contextmanager
    def own_stream(self, generator: torch.Generator) -> Iterator[None]:
        """Inside, ``generator`` draws from this process's own stream (seeded from the shared
        seed and the rank), so per-row noise differs between processes; outside it keeps the
        shared stream that orders the batches on every process alike."""
        shared, key = generator.get_state(), id(generator)
        if key not in self._noise:
            seed = (generator.initial_seed() + 7919 * (self.rank + 1)) % (2**63)
            self._noise[key] = torch.Generator(device=generator.device).manual_seed(seed).get_state()
        generator.set_state(self._noise[key])
        try:
            yield
        finally:
            self._noise[key] = generator.get_state()
            generator.set_state(shared)


class GradientHooks:
    """Hooks that all-reduce each weight's gradient as ``backward`` computes it (for terms that
    step their own optimisers), scaled by :attr:`weight`; :meth:`remove` detaches them."""

    def __init__(self, modules: Iterable[nn.Module]) -> None:
        self.weight = 1.0
        self._handles = [
            p.register_hook(self._reduce)
            for module in modules for p in module.parameters() if p.requires_grad
        ]

    def _reduce(self, grad: torch.Tensor) -> torch.Tensor:
        grad = grad * self.weight
        dist.all_reduce(grad)
        return grad

    def __enter__(self) -> GradientHooks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def current() -> DataParallel | None:
    """The data-parallel fit this process takes part in, or ``None``."""
    return _CURRENT.get()


@contextlib.contextmanager
def data_parallel(rank: int, world_size: int) -> Iterator[DataParallel]:
    """Make :func:`deepscm.training.train` data-parallel inside (a process group must exist)."""
    token = _CURRENT.set(DataParallel(rank, world_size))
    try:
        yield _CURRENT.get()
    finally:
        _CURRENT.reset(token)


def launched() -> bool:
    """Whether a launcher (``torchrun``, ``srun`` with the variables exported) started this
    process as one rank of a group: ``RANK`` and ``WORLD_SIZE`` are set."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def requested(devices: Any, strategy: Any) -> bool:
    """Whether ``fit(devices=, strategy=)`` asks for a data-parallel fit; checks the values."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ConfigError(f"devices must be a positive integer (processes per machine), got {devices!r}")
    return devices > 1 or strategy == "ddp"


def fit(scm: Any, data: Any, devices: int, options: Mapping[str, Any]) -> Any:
    """``scm.fit(data, **options)`` data-parallel on ``devices`` processes; returns ``scm``.

    Under a launcher every launched process calls this and joins the launcher's group (the
    world is the launcher's; ``devices`` is then only checked against ``LOCAL_WORLD_SIZE``).
    Otherwise ``devices`` workers are started (forked on CPU, spawned for CUDA), rank 0 saves
    its fitted model to a temporary directory (safetensors + JSON, :meth:`DeepSCM.save`), and
    it is loaded into ``scm``; a worker's error is raised here with its class and message, the
    other workers are stopped, and ``scm`` is left as it was.
    """
    if current() is not None:
        raise ConfigError("a data-parallel fit cannot start another one inside a worker")
    device = _device_type(options.get("device", "auto"))
    if launched():
        return _fit_launched(scm, data, devices, device, options)
    if device == "cuda" and devices > torch.cuda.device_count():
        raise ConfigError(
            f"devices={devices} but this machine has {torch.cuda.device_count()} GPU(s); use at "
            "most that many, or device='cpu' for CPU processes"
        )
    import torch.multiprocessing as mp

    method = "fork" if device == "cpu" and "fork" in mp.get_all_start_methods() else "spawn"
    context = mp.get_context(method)
    if method == "fork":  # Adam's first use imports torch._dynamo (seconds): once, not per worker
        torch.optim.Adam([nn.Parameter(torch.zeros(1))])
    with tempfile.TemporaryDirectory(prefix="deepscm-ddp-") as tmp:
        out = Path(tmp)
        workers = [
            context.Process(target=_worker, args=(rank, devices, device, str(out), scm, data, dict(options)),
                            daemon=True)
            for rank in range(devices)
        ]
        try:
            for w in workers:
                w.start()
            _wait(workers, out)
        finally:
            _stop(workers)
        fitted = type(scm).load(out / "model", device=_parent_device(device))
        history = json.loads((out / "history.json").read_text())
    from .training import TrainingHistory

    scm.schema, scm.mechanisms, scm.ranges = fitted.schema, fitted.mechanisms, fitted.ranges
    scm.support = fitted.support
    scm.fit_info, scm.device = fitted.fit_info, fitted.device
    scm.history = TrainingHistory(**history)
    return scm


# ---------------------------------------------------------------------- internals
def _device_type(device: Any) -> str:
    from .training import resolve_device

    kind = resolve_device(device).type
    if kind not in ("cpu", "cuda"):
        raise ConfigError(f"data-parallel fits run on CPU or CUDA devices, not {kind!r}; pass device='cpu'")
    return kind


def _parent_device(kind: str) -> str:
    return "cuda" if kind == "cuda" else "cpu"


def _backend(kind: str) -> str:
    return "nccl" if kind == "cuda" else "gloo"


def _fit_launched(scm: Any, data: Any, devices: int, kind: str, options: Mapping[str, Any]) -> Any:
    """One launched rank: join (or reuse) the process group, fit, copy rank 0's weights."""
    import warnings

    from .errors import DeepSCMWarning

    local = int(os.environ.get("LOCAL_WORLD_SIZE", devices))
    if devices not in (1, local):
        warnings.warn(f"devices={devices} ignored: the launcher started {local} process(es) on this machine",
                      DeepSCMWarning, stacklevel=3)
    created = not dist.is_initialized()
    if created:
        dist.init_process_group(_backend(kind), timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S))
    rank, world = dist.get_rank(), dist.get_world_size()
    device = "cpu"
    if kind == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    try:
        with data_parallel(rank, world) as dp:
            scm.fit(data, **{**options, "device": device, "progress": options.get("progress", True) and rank == 0})
            dp.broadcast(scm.mechanisms.values())
        scm.fit_info["distributed"] = {"world_size": world, "backend": _backend(kind), "launcher": True}
    finally:
        if created:
            dist.destroy_process_group()
    return scm


def _worker(rank: int, world: int, kind: str, out: str, scm: Any, data: Any, options: dict[str, Any]) -> None:
    """One spawned rank: fit under a file-store process group; rank 0 saves the model."""
    out_dir = Path(out)
    try:
        torch.set_num_threads(max(1, torch.get_num_threads() // world))
        device = "cpu"
        if kind == "cuda":
            torch.cuda.set_device(rank)
            device = f"cuda:{rank}"
        dist.init_process_group(
            _backend(kind), init_method=f"file://{out_dir / 'store'}", rank=rank, world_size=world,
            timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S),
        )
        with data_parallel(rank, world):
            scm.fit(data, **{**options, "device": device, "progress": options.get("progress", True) and rank == 0})
        if rank == 0:
            scm.fit_info["distributed"] = {"world_size": world, "backend": _backend(kind), "launcher": False}
            scm.save(out_dir / "model")
            (out_dir / "history.json").write_text(json.dumps(scm.history.to_dict()))
            (out_dir / "done").write_text("ok")
        dist.barrier()
        dist.destroy_process_group()
    except BaseException as err:  # noqa: BLE001 - reported to the parent, which re-raises it
        report = {
            "time": time.time(), "rank": rank, "module": type(err).__module__,
            "name": type(err).__qualname__, "message": str(err), "traceback": traceback.format_exc(),
        }
        (out_dir / f"error-{rank}.json").write_text(json.dumps(report))
        os._exit(1)


def _wait(workers: list, out: Path) -> None:
    """Block until every worker ends; at the first failure stop the rest and raise its error."""
    while True:
        codes = [w.exitcode for w in workers]
        if any(code not in (None, 0) for code in codes):
            break
        if all(code == 0 for code in codes):
            if not (out / "done").exists():
                raise TrainingError("the data-parallel fit ended without a result from rank 0")
            return
        time.sleep(_POLL_S)
    _stop(workers)
    reports = [json.loads(p.read_text()) for p in out.glob("error-*.json")]
    if not reports:
        failed = next(i for i, w in enumerate(workers) if w.exitcode not in (None, 0))
        raise TrainingError(
            f"data-parallel worker {failed} exited with code {workers[failed].exitcode} without "
            "reporting an error (killed, e.g. out of memory?)"
        )
    first = min(reports, key=lambda r: r["time"])
    raise _rebuild_error(first)


def _stop(workers: list) -> None:
    for w in workers:
        if w.is_alive():
            w.terminate()
    deadline = time.monotonic() + 5
    for w in workers:
        w.join(max(0.0, deadline - time.monotonic()))
        if w.is_alive():
            w.kill()
            w.join()


def _rebuild_error(report: Mapping[str, Any]) -> BaseException:
    """The worker's exception as the same class and message (never unpickled), with the
    worker's traceback as a note."""
    cls: Any = None
    with contextlib.suppress(Exception):
        cls = importlib.import_module(report["module"])
        for part in report["name"].split("."):
            cls = getattr(cls, part)
    err: BaseException
    try:
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            raise TypeError
        err = cls(report["message"])
    except Exception:  # noqa: BLE001 - a class that cannot be rebuilt from its message
        err = TrainingError(f"{report['name']}: {report['message']}")
    err.add_note(f"raised in data-parallel worker {report['rank']}:\n{report['traceback']}")
    return err
