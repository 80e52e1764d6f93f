"""One device-agnostic training loop for every model in deepscm.

A model is trained as a set of named *terms* (for a deep SCM, one per node: the factorised
likelihood ``log p(x) = Σ_i log p(x_i | pa_i)`` makes the terms independent). Every term
steps on the same mini-batches, so all train concurrently; each has its own early stopping on
a held-out score (optionally with a plateau learning-rate schedule, :class:`Plateau`), keeps
its best weights, and leaves the loop when it stops improving.

A term either gives a differentiable ``loss`` (the default: the loop steps all such terms in
one backward pass over the sum of their losses, with one Adam — equal to one Adam per term,
since the terms share no weights and Adam's update is element-wise — and clips gradients per
term), or its own ``step`` that owns its optimisers (a denoising or adversarial mechanism).

The mini-batches are a permutation of ``train_rows`` each epoch, or come from a callable
source (:data:`Batches`, e.g. a Parquet stream, :mod:`deepscm.streaming`). Inside
:func:`deepscm.distributed.data_parallel` every process walks the same batches and steps on its
share of each, with gradients and held-out scores averaged across processes.

Guards: a non-finite loss or weight, or a loss that rises far above where it started
(:data:`DIVERGENCE_FACTOR`), stops training with a :class:`TrainingError` naming the term.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from . import distributed
from .errors import ConfigError, TrainingError

__all__ = [
    "Batches",
    "DIVERGENCE_FACTOR",
    "MAX_LR_DECAYS",
    "Plateau",
    "Term",
    "TrainingHistory",
    "check_options",
    "resolve_device",
    "train",
    "train_terms",
]

#: ``loss(term, rows)`` → the mean loss of ``term`` over the given row indices.
TermLoss = Callable[[str, torch.Tensor], torch.Tensor]
#: a term has diverged when its loss exceeds ``start + DIVERGENCE_FACTOR · max(1, |start|)``,
#: ``start`` being its loss on the first mini-batch, before any step.
DIVERGENCE_FACTOR = 100.0
#: :class:`Plateau`: the most times a term's learning rate is lowered before it stops.
MAX_LR_DECAYS = 3
#: ``batches(generator)`` → one epoch's mini-batches of row indices, a source that loads each
#: chunk's tensors before yielding its rows (the terms' losses read them).
Batches = Callable[[torch.Generator], Iterable[torch.Tensor]]


@dataclass
class Term:
    """One trainable part of a model.

    Attributes:
        module: the weights (saved and restored for early stopping).
        score: ``score(rows)`` → held-out score to minimise (called without gradients).
        loss: ``loss(rows)`` → differentiable mean loss, for the shared default step.
        step: ``step(rows)`` → one optimisation step of the term's own, returning its loss.
        patience_factor: the term's patience and decay interval in multiples of the fit's.
    """

    module: nn.Module
    score: Callable[[torch.Tensor], torch.Tensor]
    loss: Callable[[torch.Tensor], torch.Tensor] | None = None
    step: Callable[[torch.Tensor], torch.Tensor] | None = None
    patience_factor: int = 1

    def __post_init__(self) -> None:
        if (self.loss is None) == (self.step is None):
            raise ConfigError("a training term needs exactly one of loss= or step=")


class Plateau:
    """Per-term early stopping with a plateau learning-rate schedule.

    A term *improves* when its held-out score drops below its best by more than ``min_delta``.
    Every ``max(1, patience // 4)`` epochs without improvement its learning rate is multiplied
    by ``decay`` (``lr_k = lr · decayᵏ``, as ``ReduceLROnPlateau``), at most
    :data:`MAX_LR_DECAYS` times; the term stops after ``patience`` epochs without improvement,
    or at the first plateau after its last decay. ``decay = 1`` keeps the rate constant and
    stops after ``patience`` epochs only. A smaller step after a plateau lets a stochastic
    optimiser settle instead of bouncing around the minimum, and a settled term stops sooner.

    Per term, ``factors`` multiplies both intervals (default 1; :attr:`Term.patience_factor`),
    and a term in ``constant`` keeps its rate (a term with its own step, whose optimisers the
    loop does not own): it stops after its patience only, not at plateaus after decays that
    never happened.
    """

    def __init__(self, patience: int, min_delta: float, decay: float,
                 factors: Mapping[object, int] | None = None, constant: Iterable[object] = ()) -> None:
        if not (isinstance(decay, (int, float)) and 0 < decay <= 1):
            raise ConfigError(f"lr_decay must be in (0, 1], got {decay!r}")
        self.patience, self.min_delta, self.decay = patience, min_delta, float(decay)
        self.factors, self.constant = dict(factors or {}), set(constant)
        self.every = max(1, patience // 4)
        self.best: dict = {}
        self.waited: dict = {}
        self.decays: dict = {}

    def update(self, key: object, value: float) -> str:
        """Record a held-out score; returns ``"improved"``, ``"decayed"`` (the rate was just
        lowered: see :meth:`rate`), ``"stopped"`` or ``"waiting"``."""
        if value < self.best.get(key, math.inf) - self.min_delta:
            self.best[key], self.waited[key] = value, 0
            return "improved"
        waited = self.waited[key] = self.waited.get(key, 0) + 1
        factor = self.factors.get(key, 1)
        if waited >= self.patience * factor:
            return "stopped"
        if self.decay == 1 or key in self.constant or waited % (self.every * factor):
            return "waiting"
        if self.decays.get(key, 0) >= MAX_LR_DECAYS:
            return "stopped"
        self.decays[key] = self.decays.get(key, 0) + 1
        return "decayed"

    def rate(self, key: object) -> float:
        """The factor on the base learning rate of a term now, ``decay ** decays``."""
        return self.decay ** self.decays.get(key, 0)


@dataclass
class TrainingHistory:
    """Per-term losses by epoch, and where each term stopped."""

    train_loss: dict[str, list[float]] = field(default_factory=dict)
    val_loss: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: dict[str, int] = field(default_factory=dict)
    epochs_run: int = 0

    def to_dict(self) -> dict:
        return {
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
        }


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then the CPU; anything else must be a device
    this torch can use, or :class:`ConfigError` says which are available."""
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    try:
        dev = torch.device(device)
        torch.empty(0, device=dev)
    except (RuntimeError, TypeError, ValueError, AssertionError) as err:
        raise ConfigError(
            f"cannot use device {device!r} ({str(err).splitlines()[0]}); available here: {available}"
        ) from None
    return dev


def train(
    terms: Mapping[str, Term],
    train_rows: torch.Tensor | Batches,
    val_rows: torch.Tensor | None,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    patience: int = 20,
    weight_decay: float = 0.0,
    max_grad_norm: float = 10.0,
    min_delta: float = 1e-4,
    lr_decay: float = 1.0,
    progress: bool = True,
    desc: str = "training",
) -> TrainingHistory:
    """Train every term with per-term early stopping; see the module docstring.

    ``lr_decay`` < 1 lowers a term's learning rate on plateaus (:class:`Plateau`; the terms
    with a ``loss``, whose optimiser the loop owns; a term's own ``step`` keeps its rates).

    ``train_rows``: row indices, permuted into mini-batches of ``batch_size`` each epoch, or a
    :data:`Batches` source. Without ``val_rows`` the terms run for all ``epochs`` and keep
    their final weights.
    """
    check_options(epochs, batch_size, lr)
    schedule = Plateau(patience, min_delta, lr_decay, {n: t.patience_factor for n, t in terms.items()},
                       constant=[n for n, t in terms.items() if t.step is not None])
    names = [n for n, t in terms.items() if any(p.requires_grad for p in t.module.parameters())]
    history = TrainingHistory(train_loss={n: [] for n in names}, val_loss={n: [] for n in names})
    if not names:
        return history
    joint = [n for n in names if terms[n].loss is not None]
    optimiser = (
        torch.optim.Adam(
            [{"params": list(terms[n].module.parameters())} for n in joint],
            lr=lr, weight_decay=weight_decay, foreach=True,  # one multi-tensor update
        )
        if joint else None
    )
    dp = distributed.current()
    hooks = None
    if dp is not None:  # rank 0's weights everywhere; hooks for the terms that step themselves
        dp.broadcast(terms[n].module for n in names)
        hooks = distributed.GradientHooks(terms[n].module for n in names if terms[n].step is not None)
    with hooks if hooks is not None else contextlib.nullcontext():
        _loop(terms, names, joint, optimiser, train_rows, val_rows, history, dp, hooks, epochs=epochs,
              batch_size=batch_size, generator=generator, schedule=schedule,
              max_grad_norm=max_grad_norm, progress=progress, desc=desc)
    for t in terms.values():
        t.module.eval()
    return history


def check_options(epochs: int, batch_size: int, lr: float) -> None:
    """:class:`ConfigError` unless ``epochs`` and ``batch_size`` are integers ≥ 1 and ``lr`` a
    positive finite number (the options every training loop takes)."""
    if not (isinstance(epochs, int) and epochs >= 1 and isinstance(batch_size, int) and batch_size >= 1):
        raise ConfigError(f"epochs ({epochs!r}) and batch_size ({batch_size!r}) must be integers ≥ 1")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ConfigError(f"lr must be a positive number, got {lr!r}")


def _loop(terms: Mapping[str, Term], names: list[str], joint: list[str],
          optimiser: torch.optim.Optimizer | None, train_rows: torch.Tensor | Batches,
          val_rows: torch.Tensor | None, history: TrainingHistory,
          dp: distributed.DataParallel | None, hooks: distributed.GradientHooks | None, *,
          epochs: int, batch_size: int, generator: torch.Generator, schedule: Plateau,
          max_grad_norm: float, progress: bool, desc: str) -> None:
    """The epochs of :func:`train`, filling ``history``; ``dp``: this process's share of a
    data-parallel fit, ``hooks`` reducing the gradients of the self-stepping terms."""
    active = set(names)
    start: dict[str, float] = {}
    val_start: dict[str, float] = {}  # a held-out score may have its own scale (validation_metric)
    best_state = {n: copy.deepcopy(terms[n].module.state_dict()) for n in names}
    groups = dict(zip(joint, optimiser.param_groups)) if optimiser is not None else {}
    base_lr = {n: group["lr"] for n, group in groups.items()}
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        for t in terms.values():
            t.module.train()
        running = [n for n in names if n in active]  # fixed order: reproducible sums
        sums = {n: 0.0 for n in running}
        seen = 0
        for rows in _batches(train_rows, batch_size, generator):
            weight = 1.0
            if dp is not None:
                shared = dp.share(rows)
                if shared is None:
                    continue
                rows, weight = shared
                hooks.weight = weight
            seen += len(rows)
            stepping = [n for n in joint if n in active]
            if stepping:
                optimiser.zero_grad(set_to_none=True)
                total = 0.0
                for n in stepping:
                    value = terms[n].loss(rows)
                    _record(n, value, epoch, sums, start, len(rows))
                    total = total + value
                total.backward()
                if dp is not None:
                    dp.reduce_gradients((p for n in stepping for p in terms[n].module.parameters()), weight)
                for n in stepping:
                    nn.utils.clip_grad_norm_(terms[n].module.parameters(), max_grad_norm)
                optimiser.step()
            own = [n for n in running if terms[n].step is not None]
            with dp.own_stream(generator) if dp is not None and own else contextlib.nullcontext():
                for n in own:
                    _record(n, terms[n].step(rows), epoch, sums, start, len(rows))
        if dp is not None:
            *totals, seen = dp.all_sum([sums[n] for n in running] + [seen], generator.device)
            sums = dict(zip(running, totals))
        if not seen:
            raise ConfigError("an epoch had no training rows: give more rows or a smaller batch_size")
        for n in running:
            mean = sums[n] / seen
            history.train_loss[n].append(mean)
            _check_diverged(n, mean, start[n], epoch, "training")
            _check_weights(n, terms[n].module, epoch)
        history.epochs_run = epoch + 1
        if val_rows is None or not len(val_rows):
            continue
        for n in running:
            if dp is None:
                value = evaluate(terms[n].module, terms[n].score, val_rows)
            else:
                value = dp.mean_score(lambda r, n=n: evaluate(terms[n].module, terms[n].score, r), val_rows)
            _check_finite(n, value, epoch, "held-out")
            _check_diverged(n, value, val_start.setdefault(n, value), epoch, "held-out")
            history.val_loss[n].append(value)
            outcome = schedule.update(n, value)
            if outcome == "improved":
                best_state[n] = copy.deepcopy(terms[n].module.state_dict())
                history.best_epoch[n] = epoch
            elif outcome == "stopped":
                active.discard(n)
            elif outcome == "decayed" and n in groups:
                groups[n]["lr"] = base_lr[n] * schedule.rate(n)
        bar.set_postfix(val=f"{sum(schedule.best.values()):.3f}", active=len(active))
        if not active:
            break
    bar.close()
    if val_rows is not None and len(val_rows):
        for n in names:
            terms[n].module.load_state_dict(best_state[n])


def _batches(train_rows: torch.Tensor | Batches, batch_size: int,
             generator: torch.Generator) -> Iterable[torch.Tensor]:
    """One epoch's mini-batches: a fresh permutation of ``train_rows``, or the source's."""
    if callable(train_rows):
        yield from train_rows(generator)
        return
    order = train_rows[torch.randperm(len(train_rows), generator=generator, device=generator.device)]
    for first in range(0, len(order), batch_size):
        yield order[first : first + batch_size]


def train_terms(
    modules: Mapping[str, nn.Module],
    loss: TermLoss,
    train_rows: torch.Tensor,
    val_rows: torch.Tensor | None,
    **options,
) -> TrainingHistory:
    """:func:`train` for terms that all minimise a differentiable ``loss(term, rows)``, scored
    on held-out rows by the same loss."""
    terms = {
        n: Term(m, score=lambda r, n=n: loss(n, r), loss=lambda r, n=n: loss(n, r))
        for n, m in modules.items()
    }
    return train(terms, train_rows, val_rows, **options)


def evaluate(module: nn.Module, score: Callable[[torch.Tensor], torch.Tensor], rows: torch.Tensor,
             chunk: int = 16_384) -> float:
    """Mean score over ``rows`` without gradients, in chunks."""
    module.eval()
    total = 0.0
    with torch.no_grad():
        for first in range(0, len(rows), chunk):
            part = rows[first : first + chunk]
            total += float(score(part)) * len(part)
    module.train()
    return total / len(rows)


def _record(term: str, value: torch.Tensor, epoch: int, sums: dict[str, float],
            start: dict[str, float], rows: int) -> None:
    loss = float(value.detach())
    _check_finite(term, loss, epoch, "training")
    start.setdefault(term, loss)
    sums[term] += loss * rows


def _advice() -> str:
    return (
        "Try a lower learning rate (lr), check the data for outliers or columns on very "
        "different scales, or use a simpler mechanism for this node"
    )


def _check_finite(term: str, value: float, epoch: int, which: str) -> None:
    if not math.isfinite(value):
        raise TrainingError(
            f"the {which} loss of {term!r} became {value} at epoch {epoch + 1}: training "
            f"diverged. {_advice()}"
        )


def _check_diverged(term: str, value: float, start: float, epoch: int, which: str) -> None:
    limit = start + DIVERGENCE_FACTOR * max(1.0, abs(start))
    if value > limit:
        raise TrainingError(
            f"the {which} loss of {term!r} rose from {start:.4g} to {value:.4g} by epoch "
            f"{epoch + 1}: training diverged. {_advice()}"
        )


def _check_weights(term: str, module: nn.Module, epoch: int) -> None:
    for name, p in module.named_parameters():
        if not torch.isfinite(p).all():
            raise TrainingError(
                f"weight {name!r} of {term!r} became non-finite at epoch {epoch + 1}: training "
                f"diverged. {_advice()}"
            )
