"""Hyper-parameter selection without counterfactuals.

Candidates are fitted on a training split and scored on held-out rows by a criterion that needs
only observed data, with cross-fitted nuisances m(x) = E[Y | x], e(x) = P(T = 1 | x) and the arm
regressions μ0, μ1 (all out-of-fold, fitted once for every candidate):

- ``"r_loss"`` — the R-loss of Nie & Wager (2021), "Quasi-oracle estimation of heterogeneous
  treatment effects", Biometrika 108(2), eq. (4):
  ``mean[((Y − m(x)) − (T − e(x)) τ(x))²]``; the same score as EconML's ``RScorer``.
- ``"dr"`` — the squared error against the doubly robust pseudo-outcome
  ``ψ = μ1 − μ0 + T(Y − μ1)/e − (1 − T)(Y − μ0)/(1 − e)`` (Kennedy 2023, "Towards optimal
  doubly robust estimation of heterogeneous causal effects"; Saito & Yasui 2020), whose
  conditional mean is τ(x), so ``mean[(ψ − τ(x))²]`` ranks candidates like the PEHE up to a
  constant.

:func:`select` returns the best candidate refitted on all rows and the scores of all;
:class:`Tuned` wraps it as an estimator (``Tuned(CFR()).fit(X, T, Y)``), with
:func:`default_grid` as the search space unless one is given.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin, RegressorMixin, clone
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.model_selection import ParameterGrid, StratifiedKFold

from .aipw import AIPW
from .base import (
    ArrayLike,
    EffectEstimator,
    as_binary_treatment,
    as_matrix,
    as_outcome,
    column_names,
    derived_seeds,
)
from .cevae import CEVAE
from .dragonnet import Dragonnet
from .meta_learners import SLearner, TLearner, seeded_regressor
from .overlap import OverlapWarning
from .propensity import fit_propensity
from .tarnet import CFR, TARNet

__all__ = [
    "CRITERIA",
    "Nuisances",
    "Selection",
    "Tuned",
    "cross_fit_nuisances",
    "default_grid",
    "dr_loss",
    "r_loss",
    "select",
]

CRITERIA = ("r_loss", "dr")
#: Propensity bounds inside the pseudo-outcome and the R-loss residual.
_E_CLIP = (0.01, 0.99)

ParamGrid = Mapping[str, Sequence] | Sequence[Mapping[str, Sequence]]


@dataclass(frozen=True)
class Nuisances:
    """Out-of-fold ``m(x) = E[Y|x]``, ``e(x)`` (clipped to [0.01, 0.99]), ``μ0(x)``, ``μ1(x)``."""

    m: np.ndarray
    e: np.ndarray
    mu0: np.ndarray
    mu1: np.ndarray

    def pseudo_outcome(self, t: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The doubly robust pseudo-outcome ψ per row."""
        return (
            self.mu1 - self.mu0
            + t * (y - self.mu1) / self.e
            - (1 - t) * (y - self.mu0) / (1 - self.e)
        )  # fmt: skip


def cross_fit_nuisances(
    x: np.ndarray,
    t: np.ndarray,
    y: np.ndarray,
    n_folds: int = 5,
    seed: int = 0,
    outcome_model: RegressorMixin | None = None,
    propensity_model: ClassifierMixin | None = None,
) -> Nuisances:
    """Cross-fitted nuisances (folds stratified by T): gradient boosting for ``m``, ``μ0``,
    ``μ1`` and standardised logistic regression for ``e`` unless models are given."""
    fold_seed, model_seed = derived_seeds(seed, 2)
    m, e, mu0, mu1 = (np.empty(len(y)) for _ in range(4))
    for train, held in StratifiedKFold(n_folds, shuffle=True, random_state=fold_seed).split(x, t):
        xt, tt, yt = x[train], t[train], y[train]
        m[held] = seeded_regressor(outcome_model, model_seed).fit(xt, yt).predict(x[held])
        for arm, out in ((0, mu0), (1, mu1)):
            fitted = seeded_regressor(outcome_model, model_seed).fit(xt[tt == arm], yt[tt == arm])
            out[held] = fitted.predict(x[held])
        model = fit_propensity(propensity_model, xt, tt, model_seed)
        e[held] = model.predict_proba(x[held])[:, 1]
    return Nuisances(m, np.clip(e, *_E_CLIP), mu0, mu1)


def r_loss(tau: np.ndarray, t: np.ndarray, y: np.ndarray, nuisances: Nuisances) -> float:
    """Nie & Wager's (2021) R-loss ``mean[((Y − m) − (T − e) τ)²]``."""
    return float(np.mean(((y - nuisances.m) - (t - nuisances.e) * tau) ** 2))


def dr_loss(tau: np.ndarray, t: np.ndarray, y: np.ndarray, nuisances: Nuisances) -> float:
    """``mean[(ψ − τ)²]`` against the doubly robust pseudo-outcome ψ."""
    return float(np.mean((nuisances.pseudo_outcome(t, y) - tau) ** 2))


_SCORERS = {"r_loss": r_loss, "dr": dr_loss}


@dataclass
class Selection:
    """The outcome of :func:`select`: ``estimator`` (the best candidate, refitted on all rows
    when ``refit``), its ``params`` and ``scores`` (one row per candidate: its parameters,
    the criterion on the held-out rows, fit seconds)."""

    estimator: EffectEstimator
    params: dict
    scores: pd.DataFrame
    criterion: str


def _gb(depth: int) -> GradientBoostingRegressor:
    return GradientBoostingRegressor(
        n_estimators=200, max_depth=depth, learning_rate=0.05, subsample=0.8
    )


def default_grid(estimator: EffectEstimator) -> list[dict[str, list]]:
    """The search space :class:`Tuned` uses when none is given: CFR's α; the widths of
    TARNet / Dragonnet; CEVAE's latent size; the depth of the default gradient boosting of
    the S-, T-learner and AIPW. IPW has no outcome model to select (ValueError)."""
    wide = {"rep_layers": [(200, 200, 200)], "head_layers": [(100, 100)]}
    narrow = {"rep_layers": [(50, 50, 50)], "head_layers": [(25, 25)]}
    if isinstance(estimator, CFR):
        return [{"alpha": [0.0, 0.1, 0.5]}]
    if isinstance(estimator, (TARNet, Dragonnet)):
        own = {"rep_layers": [estimator.rep_layers], "head_layers": [estimator.head_layers]}
        return [narrow, own, wide]
    if isinstance(estimator, CEVAE):
        return [{"latent_dim": [5, 20]}]
    if isinstance(estimator, (SLearner, TLearner)):
        return [{"model": [_gb(2), _gb(3), _gb(5)]}]
    if isinstance(estimator, AIPW):
        return [{"outcome_model": [_gb(2), _gb(3), _gb(5)]}]
    raise ValueError(
        f"no default search space for {type(estimator).__name__}; pass param_grid "
        "(IPW has no outcome model for an R-loss to select)"
    )


def _describe(params: dict) -> dict:
    """Parameters as printable values (a model by its class and depth)."""
    out = {}
    for k, v in params.items():
        if isinstance(v, GradientBoostingRegressor):
            v = f"GradientBoosting(max_depth={v.max_depth})"
        elif hasattr(v, "get_params"):
            v = type(v).__name__
        out[k] = v
    return out


def select(
    estimator: EffectEstimator,
    param_grid: ParamGrid,
    X: ArrayLike,
    T: ArrayLike,
    Y: ArrayLike,
    criterion: str = "r_loss",
    val_fraction: float = 0.3,
    n_folds: int = 5,
    refit: bool = True,
    nuisance_model: RegressorMixin | None = None,
    seed: int = 0,
) -> Selection:
    """Fit each setting of ``param_grid`` (scikit-learn ``ParameterGrid`` semantics) on a
    stratified ``1 − val_fraction`` of the rows, score its CATE on the rest by ``criterion``
    (lower is better; nuisances cross-fitted on all rows by :func:`cross_fit_nuisances` with
    ``nuisance_model`` as the outcome regressor, so no candidate sees its own held-out
    outcomes) and return the best, refitted on all rows when ``refit``."""
    if criterion not in _SCORERS:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    x = as_matrix(X, "X")
    t = as_binary_treatment(T, len(x))
    y = as_outcome(Y, len(x))
    columns = column_names(X, x.shape[1])
    nuisance_seed, split_seed = derived_seeds(seed, 2)
    nuisances = cross_fit_nuisances(x, t, y, n_folds, nuisance_seed, nuisance_model)
    rng = np.random.default_rng(split_seed)
    val = np.zeros(len(y), bool)
    for arm in (0, 1):
        rows = rng.permutation(np.flatnonzero(t == arm))
        val[rows[: int(round(val_fraction * len(rows)))]] = True
    held = Nuisances(*(v[val] for v in (nuisances.m, nuisances.e, nuisances.mu0, nuisances.mu1)))
    score = _SCORERS[criterion]
    rows, fitted = [], []
    for params in ParameterGrid(param_grid):
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OverlapWarning)
            candidate = clone(estimator).set_params(**params)
            candidate.fit_validated(x[~val], t[~val], y[~val], columns)
        tau = np.asarray(candidate.effect(x[val]), float)
        rows.append({
            **_describe(params), criterion: score(tau, t[val], y[val], held),
            "fit_s": time.perf_counter() - started,
        })  # fmt: skip
        fitted.append((params, candidate))
    scores = pd.DataFrame(rows)
    best = int(scores[criterion].to_numpy().argmin())
    params, chosen = fitted[best]
    if refit:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OverlapWarning)
            chosen = clone(estimator).set_params(**params).fit_validated(x, t, y, columns)
    return Selection(chosen, dict(params), scores, criterion)


class Tuned(EffectEstimator):
    """An estimator whose hyper-parameters are chosen by :func:`select` at ``fit``.

    ``fit`` selects among ``param_grid`` (default: :func:`default_grid` of ``estimator``) by
    ``criterion`` and refits the best on all rows; ``best_params_``, ``scores_`` and
    ``best_estimator_`` report the choice. Every method delegates to ``best_estimator_`` (so
    AIPW keeps its doubly robust ``ate()``).

    Args:
        estimator: the unfitted estimator whose settings are searched (others kept).
        param_grid: ``ParameterGrid``-style dict or list of dicts; ``None``: the default.
        criterion: ``"r_loss"`` (Nie & Wager 2021) or ``"dr"`` (pseudo-outcome).
        val_fraction, n_folds, nuisance_model, seed: as for :func:`select`.
    """

    def __init__(
        self,
        estimator: EffectEstimator,
        param_grid: ParamGrid | None = None,
        criterion: str = "r_loss",
        val_fraction: float = 0.3,
        n_folds: int = 5,
        nuisance_model: RegressorMixin | None = None,
        seed: int = 0,
    ) -> None:
        self.estimator = estimator
        self.param_grid = param_grid
        self.criterion = criterion
        self.val_fraction = val_fraction
        self.n_folds = n_folds
        self.nuisance_model = nuisance_model
        self.seed = seed

    def _fit(self, x: np.ndarray, t: np.ndarray, y: np.ndarray) -> None:
        grid = default_grid(self.estimator) if self.param_grid is None else self.param_grid
        frame = pd.DataFrame(x, columns=self.columns_)  # the inner fit keeps the column names
        found = select(
            self.estimator, grid, frame, t, y, self.criterion, self.val_fraction, self.n_folds,
            nuisance_model=self.nuisance_model, seed=self.seed,
        )  # fmt: skip
        self.best_estimator_ = found.estimator
        self.best_params_ = found.params
        self.scores_ = found.scores

    def _outcomes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.best_estimator_._outcomes(x)

    def _training_propensity(self) -> np.ndarray:
        return self.best_estimator_.propensity_train_

    def ate(self, X: ArrayLike | None = None) -> float:
        self._check_fitted()
        return self.best_estimator_.ate(X)

    def att(self) -> float:
        self._check_fitted()
        return self.best_estimator_.att()

    def att_interval(self, alpha: float = 0.05) -> tuple[float, float]:
        self._check_fitted()
        return self.best_estimator_.att_interval(alpha)

    def ate_interval(self, alpha: float = 0.05) -> tuple[float, float]:
        self._check_fitted()
        return self.best_estimator_.ate_interval(alpha)
