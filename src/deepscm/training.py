"""One device-agnostic training loop for every model in deepscm.

A model is trained as a set of named *terms*, each a module with its own loss (for a deep SCM,
one term per node: the factorised likelihood ``log p(x) = Σ_i log p(x_i | pa_i)`` makes the
terms independent). All active terms share mini-batches and take a step together, so they train
concurrently; each has its own early stopping on held-out loss, keeps its best weights, and
drops out of the loop when it stops improving. A non-finite loss stops training with a
:class:`TrainingError` naming the term.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from .errors import TrainingError

__all__ = ["TrainingHistory", "train_terms", "resolve_device"]

#: ``loss(term, rows)`` → the mean loss of ``term`` over the given row indices.
TermLoss = Callable[[str, torch.Tensor], torch.Tensor]


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
    """``"auto"`` picks CUDA, then Apple MPS, then the CPU."""
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def train_terms(
    modules: Mapping[str, nn.Module],
    loss: TermLoss,
    train_rows: torch.Tensor,
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
    progress: bool = True,
    desc: str = "training",
) -> TrainingHistory:
    """Train every term's module on its own loss with Adam and per-term early stopping.

    Adam's update is element-wise, so one optimiser over all terms equals one per term;
    gradient clipping is per term to keep them independent. Without ``val_rows`` the terms
    run for all ``epochs`` and keep their final weights.
    """
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise TrainingError(
            f"epochs ({epochs}) and batch_size ({batch_size}) must be ≥ 1 and lr ({lr}) > 0"
        )
    names = [n for n, m in modules.items() if any(p.requires_grad for p in m.parameters())]
    history = TrainingHistory(
        train_loss={n: [] for n in names}, val_loss={n: [] for n in names}
    )
    if not names:
        return history
    optimiser = torch.optim.Adam(
        [{"params": list(modules[n].parameters())} for n in names], lr=lr, weight_decay=weight_decay
    )
    active = set(names)
    best = {n: math.inf for n in names}
    best_state = {n: copy.deepcopy(modules[n].state_dict()) for n in names}
    waited = {n: 0 for n in names}
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        for m in modules.values():
            m.train()
        order = train_rows[torch.randperm(len(train_rows), generator=generator, device=generator.device)]
        running = [n for n in names if n in active]  # fixed order: reproducible sums
        sums = {n: 0.0 for n in running}
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            optimiser.zero_grad(set_to_none=True)
            total = 0.0
            for n in running:
                value = loss(n, rows)
                _check_finite(n, value, epoch)
                sums[n] += float(value.detach()) * len(rows)
                total = total + value
            total.backward()
            for n in running:
                nn.utils.clip_grad_norm_(modules[n].parameters(), max_grad_norm)
            optimiser.step()
        for n in running:
            history.train_loss[n].append(sums[n] / len(order))
        history.epochs_run = epoch + 1
        if val_rows is None or not len(val_rows):
            continue
        for n in running:
            value = evaluate(modules[n], lambda rows, n=n: loss(n, rows), val_rows)
            _check_finite(n, torch.tensor(value), epoch, "held-out")
            history.val_loss[n].append(value)
            if value < best[n] - min_delta:
                best[n], waited[n] = value, 0
                best_state[n] = copy.deepcopy(modules[n].state_dict())
                history.best_epoch[n] = epoch
            else:
                waited[n] += 1
                if waited[n] >= patience:
                    active.discard(n)
        bar.set_postfix(val=f"{sum(best.values()):.3f}", active=len(active))
        if not active:
            break
    bar.close()
    if val_rows is not None and len(val_rows):
        for n in names:
            modules[n].load_state_dict(best_state[n])
    for m in modules.values():
        m.eval()
    return history


def evaluate(module: nn.Module, loss: Callable[[torch.Tensor], torch.Tensor], rows: torch.Tensor,
             chunk: int = 16_384) -> float:
    """Mean loss over ``rows`` without gradients, in chunks."""
    module.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            total += float(loss(part)) * len(part)
    module.train()
    return total / len(rows)


def _check_finite(term: str, value: torch.Tensor, epoch: int, which: str = "training") -> None:
    if not torch.isfinite(value).all():
        raise TrainingError(
            f"the {which} loss of {term!r} became {float(value.detach())} at epoch {epoch + 1}: training "
            "diverged. Try a lower learning rate (lr), check the data for outliers or columns "
            "on very different scales, or use a simpler mechanism for this node"
        )
