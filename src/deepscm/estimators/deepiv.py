"""DeepIV: instrumental-variable regression with deep networks.

Hartford, Lewis, Leyton-Brown & Taddy (2017), "Deep IV: a flexible approach for counterfactual
prediction", ICML. With instruments Z that move the (continuous, confounded) treatment T but
affect Y only through T, the structural function h(t, x) solves (their eq. 3)

    E[Y | x, z] = ∫ h(t, x) dF(t | x, z).

Stage 1 fits F(t | x, z) by a mixture density network (a K-component Gaussian mixture); stage 2
minimises Σ_i (y_i − ∫ h(t, x_i) dF̂(t | x_i, z_i))² with the integral replaced by the mean over
M draws t_m ~ F̂(· | x_i, z_i). This implementation uses the *unbiased* gradient variant (their
§3, eq. 10): two independent sets of M draws give a = mean_m h(t_m, x), b = mean_m h(t'_m, x) and
the loss (y − a)(y − b), whose gradient is unbiased for that of the squared loss. Training
rows get fresh draws every step; the validation rows (early stopping) keep one fixed set.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, clone

from ..errors import DataError, NotFittedError
from .base import ArrayLike, as_matrix, as_outcome, bootstrap_interval, column_names
from .networks import Standardizer, TrainSetup, elu_net, fit_modules, seeded, to_tensor

__all__ = ["DeepIV", "mixture_log_prob"]


def mixture_log_prob(t: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``log Σ_k π_k N(t; μ_k, σ_k)`` from the MDN output ``[logits π | μ | log σ]``
    (Bishop 1994)."""
    logits, mean, log_scale = out.chunk(3, dim=1)
    log_scale = log_scale.clamp(-7, 5)
    comp = (
        -0.5 * ((t[:, None] - mean) / log_scale.exp()) ** 2
        - log_scale
        - 0.5 * math.log(2 * math.pi)
    )
    return torch.logsumexp(F.log_softmax(logits, dim=1) + comp, dim=1)


def _sample_mixture(out: torch.Tensor, draws: int, gen: torch.Generator) -> torch.Tensor:
    """``draws`` samples per row from the mixture, shape ``(n, draws)``."""
    logits, mean, log_scale = out.chunk(3, dim=1)
    k = torch.multinomial(torch.softmax(logits, dim=1), draws, replacement=True, generator=gen)
    noise = torch.randn(k.shape, generator=gen, device=out.device)
    return mean.gather(1, k) + log_scale.clamp(-7, 5).exp().gather(1, k) * noise


class DeepIV(BaseEstimator):
    """Two-stage DeepIV for a continuous treatment with instruments.

    ``fit(X, T, Y, Z)``; ``predict(X, T)`` = ĥ(T, x); ``effect(X, T0, T1)`` = ĥ(T1, x) − ĥ(T0, x);
    ``ate(X, T0, T1)`` its mean; ``ate_interval`` by the percentile bootstrap (``n_bootstrap``
    refits of both stages).

    Args:
        n_components: Gaussian components of the first-stage mixture density network.
        hidden: ELU hidden widths of both networks.
        n_draws: M, treatment draws per row in each of the two draw sets of stage 2.
        patience: epochs without held-out improvement before a stage stops; long by default
            because the second stage's held-out loss often plateaus for tens of epochs before
            the structural function's shape emerges.
        Others as for :class:`~deepscm.estimators.TARNet`.
    """

    def __init__(
        self,
        n_components: int = 10,
        hidden: tuple[int, ...] = (100, 100),
        n_draws: int = 10,
        epochs: int = 300,
        batch_size: int = 100,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        patience: int = 100,
        val_fraction: float = 0.2,
        n_bootstrap: int = 50,
        seed: int = 0,
        device: str = "auto",
        progress: bool = True,
    ) -> None:
        self.n_components = n_components
        self.hidden = hidden
        self.n_draws = n_draws
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.val_fraction = val_fraction
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self.device = device
        self.progress = progress

    # ------------------------------------------------------------------ fitting
    def fit(self, X: ArrayLike, T: ArrayLike, Y: ArrayLike, Z: ArrayLike) -> DeepIV:
        """Fit the treatment network F(t|x,z), then the response network h(t,x).
        Returns ``self``."""
        x = as_matrix(X, "X")
        t = as_outcome(T, len(x), "T")
        y = as_outcome(Y, len(x), "Y")
        z = as_matrix(Z, "Z")
        if len(z) != len(x):
            raise DataError(f"Z has {len(z)} rows but X has {len(x)}; pass rows that match")
        if len(np.unique(t)) < 2:
            raise DataError("T takes a single value; DeepIV needs a treatment that varies")
        self.columns_ = column_names(X, x.shape[1])
        self.X_, self.T_, self.Y_, self.Z_ = x, t, y, z
        self._fit(x, t, y, z)
        return self

    def _fit(self, x: np.ndarray, t: np.ndarray, y: np.ndarray, z: np.ndarray) -> None:
        setup = TrainSetup.make(len(x), self.val_fraction, self.seed, self.device)
        dev = self.device_ = setup.device
        self.x_scaler_, self.z_scaler_ = Standardizer.fit(x), Standardizer.fit(z)
        self.t_scaler_, self.y_scaler_ = Standardizer.fit(t[:, None]), Standardizer.fit(y[:, None])
        xs = to_tensor(self.x_scaler_.transform(x), dev)
        xz = torch.cat([xs, to_tensor(self.z_scaler_.transform(z), dev)], dim=1)
        ts = to_tensor(self.t_scaler_.transform(t[:, None])[:, 0], dev)
        ys = to_tensor(self.y_scaler_.transform(y[:, None])[:, 0], dev)
        hidden = tuple(self.hidden)
        with seeded(self.seed):
            self.treatment_net_ = elu_net(xz.shape[1], 3 * self.n_components, hidden).to(dev)
            self.response_net_ = elu_net(xs.shape[1] + 1, 1, hidden).to(dev)
        train = dict(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            patience=self.patience,
            progress=self.progress,
        )
        self.history_ = {
            "treatment": fit_modules(
                {"treatment": self.treatment_net_},
                lambda _, rows: -mixture_log_prob(ts[rows], self.treatment_net_(xz[rows])).mean(),
                setup,
                desc="DeepIV stage 1",
                **train,
            )
        }
        self.treatment_net_.requires_grad_(False)
        gen = setup.generator
        m = self.n_draws

        with torch.no_grad():  # common random numbers: the held-out loss is not re-drawn each epoch
            fixed_draws = _sample_mixture(self.treatment_net_(xz), 2 * m, gen)

        def response_loss(_: str, rows: torch.Tensor) -> torch.Tensor:
            if self.response_net_.training:
                with torch.no_grad():
                    draws = _sample_mixture(self.treatment_net_(xz[rows]), 2 * m, gen)
            else:
                draws = fixed_draws[rows]
            x_rep = xs[rows].repeat_interleave(2 * m, dim=0)
            h = self.response_net_(torch.cat([draws.reshape(-1, 1), x_rep], dim=1)).reshape(
                -1, 2 * m
            )
            a, b = h[:, :m].mean(dim=1), h[:, m:].mean(dim=1)
            return ((ys[rows] - a) * (ys[rows] - b)).mean()

        self.history_["response"] = fit_modules(
            {"response": self.response_net_}, response_loss, setup, desc="DeepIV stage 2", **train
        )

    # ------------------------------------------------------------------ prediction
    def _check_fitted(self) -> None:
        if not hasattr(self, "response_net_"):
            raise NotFittedError("this DeepIV is not fitted yet; call fit(X, T, Y, Z) first")

    def _treatment(self, T: ArrayLike | float, n: int, name: str) -> np.ndarray:
        if np.ndim(T) == 0:
            return np.full(n, float(T))
        return as_outcome(T, n, name)

    def predict(self, X: ArrayLike | None, T: ArrayLike | float) -> np.ndarray:
        """The structural function ĥ(T, x) per row, in the user's units (``X=None``: the
        training rows)."""
        self._check_fitted()
        x = self.X_ if X is None else as_matrix(X, "X", self.columns_)
        t = self._treatment(T, len(x), "T")
        inp = np.column_stack([self.t_scaler_.transform(t[:, None]), self.x_scaler_.transform(x)])
        with torch.no_grad():
            h = self.response_net_(to_tensor(inp, self.device_))[:, 0].cpu().numpy().astype(float)
        return self.y_scaler_.inverse(h[:, None])[:, 0]

    def effect(
        self, X: ArrayLike | None = None, T0: ArrayLike | float = 0.0, T1: ArrayLike | float = 1.0
    ) -> np.ndarray:
        """ĥ(T1, x) − ĥ(T0, x) per row."""
        return self.predict(X, T1) - self.predict(X, T0)

    def ate(
        self, X: ArrayLike | None = None, T0: ArrayLike | float = 0.0, T1: ArrayLike | float = 1.0
    ) -> float:
        """Mean of :meth:`effect` over ``X`` (``None``: the training rows)."""
        return float(np.mean(self.effect(X, T0, T1)))

    def ate_interval(
        self, alpha: float = 0.05, T0: float = 0.0, T1: float = 1.0, n_bootstrap: int | None = None
    ) -> tuple[float, float]:
        """Percentile-bootstrap interval of the training-sample ``ate(None, T0, T1)``
        (``n_bootstrap`` refits of both stages, default the hyper-parameter)."""
        self._check_fitted()

        def refit_ate(rows: np.ndarray, seed: int) -> float:
            est = clone(self).set_params(seed=seed, progress=False)
            return est.fit(self.X_[rows], self.T_[rows], self.Y_[rows], self.Z_[rows]).ate(
                None, T0, T1
            )

        n_boot = self.n_bootstrap if n_bootstrap is None else n_bootstrap
        return bootstrap_interval(refit_ate, len(self.X_), n_boot, self.seed, alpha)
