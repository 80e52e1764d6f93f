"""Shared torch building blocks of the neural effect estimators: the ELU representation network,
standardisation, seeded construction and the call into :func:`deepscm.training.train_terms`."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..mechanisms.base import mlp
from ..training import TrainingHistory, resolve_device, train_terms
from .base import EffectEstimator

__all__ = [
    "NeuralEffectEstimator",
    "Standardizer",
    "TrainSetup",
    "elu_net",
    "representation",
    "seeded",
    "fit_modules",
    "to_tensor",
]


def representation(in_dim: int, hidden: tuple[int, ...]) -> nn.Sequential:
    """Φ(x): an ELU MLP whose output layer is also ELU-activated (Shalit et al. 2017, §4)."""
    return nn.Sequential(mlp(in_dim, hidden[-1], hidden[:-1], nn.ELU), nn.ELU())


def elu_net(in_dim: int, out_dim: int, hidden: tuple[int, ...]) -> nn.Sequential:
    """A head: ELU hidden layers and a linear output."""
    return mlp(in_dim, out_dim, hidden, nn.ELU)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's global generator for weight initialisation without disturbing the caller's."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@dataclass
class Standardizer:
    """Column-wise ``(v − mean) / scale``; constant columns get scale 1."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, v: np.ndarray) -> Standardizer:
        scale = v.std(axis=0)
        return cls(v.mean(axis=0), np.where(scale > 1e-12, scale, 1.0))

    def transform(self, v: np.ndarray) -> np.ndarray:
        return (v - self.mean) / self.scale

    def inverse(self, v: np.ndarray) -> np.ndarray:
        return v * self.scale + self.mean


def to_tensor(v: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(v, dtype=np.float32), device=device)


@dataclass
class TrainSetup:
    """Device, random generator and the train/validation row split of one fit."""

    device: torch.device
    generator: torch.Generator
    train_rows: torch.Tensor
    val_rows: torch.Tensor | None

    @classmethod
    def make(
        cls, n: int, val_fraction: float, seed: int, device: str, stratify: np.ndarray | None = None
    ) -> TrainSetup:
        """Split ``n`` rows at random (within each ``stratify`` group, so both treatment arms
        appear in the validation rows) and make a seeded generator on the resolved device."""
        dev = resolve_device(device)
        rng = np.random.default_rng(seed)
        groups = np.zeros(n) if stratify is None else stratify
        val: list[np.ndarray] = []
        for g in np.unique(groups):
            rows = rng.permutation(np.flatnonzero(groups == g))
            val.append(rows[: int(round(val_fraction * len(rows)))])
        val_rows = np.sort(np.concatenate(val))
        train_rows = np.setdiff1d(np.arange(n), val_rows)
        generator = torch.Generator(device=dev)
        generator.manual_seed(seed)
        as_t = lambda r: torch.as_tensor(r, dtype=torch.long, device=dev)  # noqa: E731
        return cls(dev, generator, as_t(train_rows), as_t(val_rows) if len(val_rows) else None)


def fit_modules(
    modules: dict[str, nn.Module],
    loss: Callable[[str, torch.Tensor], torch.Tensor],
    setup: TrainSetup,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    patience: int,
    progress: bool,
    desc: str,
) -> TrainingHistory:
    """Train through the shared loop (Adam, early stopping on the validation rows, NaN guard)."""
    return train_terms(
        modules,
        loss,
        setup.train_rows,
        setup.val_rows,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        generator=setup.generator,
        patience=patience,
        weight_decay=weight_decay,
        progress=progress,
        desc=desc,
    )


class NeuralEffectEstimator(EffectEstimator):
    """Scaffolding of the representation-learning estimators (TARNet/CFR, Dragonnet).

    X and Y are standardised internally and predictions mapped back to the user's units.
    Subclasses build one module (:meth:`_build`), give its loss on standardised tensors
    (:meth:`_loss`) and its standardised potential-outcome predictions (:meth:`_predict`).
    Subclasses store these hyper-parameters: ``val_fraction, epochs, batch_size, lr,
    weight_decay, patience, seed, device, progress``.
    """

    def _fit(self, x: np.ndarray, t: np.ndarray, y: np.ndarray) -> None:
        setup = TrainSetup.make(len(x), self.val_fraction, self.seed, self.device, stratify=t)
        self.x_scaler_ = Standardizer.fit(x)
        self.y_scaler_ = Standardizer.fit(y[:, None])
        xs = to_tensor(self.x_scaler_.transform(x), setup.device)
        ts = to_tensor(t, setup.device)
        ys = to_tensor(self.y_scaler_.transform(y[:, None])[:, 0], setup.device)
        with seeded(self.seed):
            self.model_ = self._build(x.shape[1]).to(setup.device)
        self.device_ = setup.device
        self.history_ = fit_modules(
            {"model": self.model_},
            lambda _, rows: self._loss(xs[rows], ts[rows], ys[rows]),
            setup,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            patience=self.patience,
            progress=self.progress,
            desc=type(self).__name__,
        )

    def _outcomes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xs = to_tensor(self.x_scaler_.transform(x), self.device_)
        with torch.no_grad():
            y0, y1 = (v.cpu().numpy().astype(float) for v in self._predict(xs))
        scale, mean = float(self.y_scaler_.scale[0]), float(self.y_scaler_.mean[0])
        return y0 * scale + mean, y1 * scale + mean

    @abstractmethod
    def _build(self, n_features: int) -> nn.Module:
        """The network, created under the estimator's seed."""

    @abstractmethod
    def _loss(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean training loss of a batch of standardised rows."""

    @abstractmethod
    def _predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised ``(y0, y1)`` predictions."""
