"""The shared interface of the treatment-effect estimators: input validation, the common
effect/ATE/ATT methods, overlap diagnostics and the percentile bootstrap.

Every estimator follows scikit-learn habits: ``__init__`` stores hyper-parameters only, learned
state ends in ``_``, ``fit(X, T, Y)`` returns ``self``. Subclasses implement :meth:`_fit` on
validated float arrays and :meth:`_outcomes`, the potential-outcome predictions ``(y0, y1)``.

The ATT of every estimator uses the ATT's own weights (Hahn 1998, Econometrica 66(2); the
doubly robust form of Chernozhukov et al. 2018, §5.1): with the estimator's control-outcome
model μ0 and a propensity e,

    ATT = Σ_i [T_i (Y_i − μ0(x_i)) − (1 − T_i) · e_i/(1 − e_i) · (Y_i − μ0(x_i))] / Σ_i T_i,

so the treated contribute their observed outcomes and the controls are re-weighted towards the
treated by ``e/(1 − e)``, instead of averaging an ATE-shaped fit ``μ1 − μ0`` over the treated.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.base import BaseEstimator, clone
from tqdm.auto import tqdm

from ..errors import ConfigError, DataError, NotFittedError
from .overlap import OverlapReport, OverlapWarning, overlap_report, warn_if_poor
from .propensity import fit_propensity

__all__ = [
    "ATT_MAX_PROPENSITY",
    "ArrayLike",
    "EffectEstimator",
    "MIN_ARM_ROWS",
    "as_matrix",
    "column_names",
    "as_outcome",
    "as_binary_treatment",
    "bootstrap_interval",
    "normal_interval",
    "derived_seeds",
]

ArrayLike = np.ndarray | pd.DataFrame | pd.Series | list

#: Fewest rows each treatment arm must have for fit to proceed.
MIN_ARM_ROWS = 5
#: Upper bound on the propensity in the ATT weights ``e/(1 − e)`` (a small ``e`` gives a small
#: weight, so only the upper tail needs bounding).
ATT_MAX_PROPENSITY = 0.99


def column_names(x: ArrayLike, width: int) -> list[str]:
    if isinstance(x, pd.DataFrame):
        return [str(c) for c in x.columns]
    if isinstance(x, pd.Series):
        return [str(x.name if x.name is not None else "x0")]
    return [f"x{j}" for j in range(width)]


def _columns_of(x: ArrayLike, width: int, name: str) -> list[str]:
    """Column names for error messages: a 1-D input without a name is called ``name``."""
    if not isinstance(x, (pd.DataFrame, pd.Series)) and np.ndim(x) == 1:
        return [name]
    if isinstance(x, pd.Series) and x.name is None:
        return [name]
    return column_names(x, width)


def as_matrix(x: ArrayLike, name: str = "X", columns: list[str] | None = None) -> np.ndarray:
    """``x`` as a finite float matrix ``(n, d)`` (1-D → one column).

    With ``columns`` (the training columns) a DataFrame must hold exactly those columns (they
    are re-ordered to match) and an array must have as many columns.
    """
    if isinstance(x, pd.DataFrame) and columns is not None:
        missing = [c for c in columns if c not in x.columns.astype(str)]
        if missing:
            raise DataError(f"{name} lacks the training columns {missing}")
        x = x.set_axis(x.columns.astype(str), axis=1)[columns]
    try:
        a = (
            x.to_numpy(dtype=float)
            if isinstance(x, (pd.DataFrame, pd.Series))
            else np.asarray(x, float)
        )
    except (TypeError, ValueError) as e:
        raise DataError(f"{name} must be numeric; encode categorical columns first ({e})") from e
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] == 0:
        raise DataError(f"{name} must be a non-empty 1-D or 2-D array, got shape {a.shape}")
    if columns is not None and a.shape[1] != len(columns):
        raise DataError(
            f"{name} has {a.shape[1]} columns but the estimator was fitted on {len(columns)}"
        )
    bad = ~np.isfinite(a).all(axis=0)
    if bad.any():
        names = np.asarray(_columns_of(x, a.shape[1], name))[bad].tolist()
        raise DataError(
            f"{name} contains NaN or inf in column(s) {names}; drop or impute those rows"
        )
    return a


def as_outcome(y: ArrayLike, n: int, name: str = "Y") -> np.ndarray:
    """A finite float vector of length ``n``."""
    a = as_matrix(y, name)
    if a.shape[1] != 1:
        raise DataError(f"{name} must be one column, got {a.shape[1]}")
    if len(a) != n:
        raise DataError(f"{name} has {len(a)} rows but X has {n}; pass rows that match")
    return a[:, 0]


def as_binary_treatment(t: ArrayLike, n: int, name: str = "T") -> np.ndarray:
    """A 0/1 float vector of length ``n`` with at least :data:`MIN_ARM_ROWS` rows per arm."""
    a = as_outcome(t, n, name)
    values = np.unique(a)
    if not np.isin(values, (0.0, 1.0)).all():
        shown = ", ".join(f"{v:g}" for v in values[:8]) + (" …" if len(values) > 8 else "")
        raise DataError(
            f"{name} must be binary 0/1 (bool, int or float) but holds the values {{{shown}}}; "
            "recode it (e.g. T = (dose > 0)) or use DeepIV for a continuous treatment"
        )
    treated = int(a.sum())
    if min(treated, n - treated) < MIN_ARM_ROWS:
        raise DataError(
            f"{name} has {treated} treated and {n - treated} control rows; each arm needs at "
            f"least {MIN_ARM_ROWS} to estimate an effect"
        )
    return a


def derived_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent seeds derived from ``seed`` (for bootstrap replicates and folds)."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def normal_interval(estimate: float, se: float, alpha: float) -> tuple[float, float]:
    """The Wald interval ``estimate ± z_{1-α/2}·se``."""
    _check_alpha(alpha)
    z = float(norm.ppf(1 - alpha / 2))
    return float(estimate - z * se), float(estimate + z * se)


def bootstrap_interval(
    statistic: Callable[[np.ndarray, int], float],
    n: int,
    n_bootstrap: int,
    seed: int,
    alpha: float,
    progress: bool = False,
    desc: str = "bootstrap",
) -> tuple[float, float]:
    """Percentile bootstrap (Efron & Tibshirani 1993, ch. 13): ``statistic(rows, seed)`` is
    evaluated on ``n_bootstrap`` resamples of the ``n`` rows, each with its own derived seed
    (``progress``: a tqdm bar over the resamples)."""
    _check_alpha(alpha)
    if n_bootstrap < 2:
        raise ConfigError(f"n_bootstrap must be ≥ 2, got {n_bootstrap}")
    seeds = derived_seeds(seed, n_bootstrap + 1)
    rng = np.random.default_rng(seeds[0])
    values = [
        statistic(rng.integers(0, n, n), s)
        for s in tqdm(seeds[1:], desc=desc, disable=not progress, leave=False)
    ]
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")


class EffectEstimator(BaseEstimator, ABC):
    """Base class of the binary-treatment estimators (``fit(X, T, Y)``).

    Subclasses implement :meth:`_fit` and :meth:`_outcomes`; the default :meth:`ate_interval`
    is a percentile bootstrap that refits a clone on resampled rows ``n_bootstrap`` times
    (cost: ``n_bootstrap`` fits; subclasses using it store an ``n_bootstrap`` hyper-parameter).

    After ``fit``, ``propensity_train_`` holds the training rows' propensity (the estimator's
    own where it has one, else a standardised logistic regression) and ``overlap_`` its
    :class:`~deepscm.estimators.overlap.OverlapReport`; poor overlap issues an
    :class:`~deepscm.estimators.overlap.OverlapWarning`.
    """

    # ------------------------------------------------------------------ public API
    def fit(self, X: ArrayLike, T: ArrayLike, Y: ArrayLike) -> EffectEstimator:
        """Validate the data, then learn the model. Returns ``self``."""
        x = as_matrix(X, "X")
        t = as_binary_treatment(T, len(x))
        y = as_outcome(Y, len(x))
        return self.fit_validated(x, t, y, column_names(X, x.shape[1]))

    def fit_validated(
        self, x: np.ndarray, t: np.ndarray, y: np.ndarray, columns: list[str]
    ) -> EffectEstimator:
        """:meth:`fit` on arrays already checked by :func:`as_matrix`, :func:`as_binary_treatment`
        and :func:`as_outcome` (for wrappers that validate under their own column names)."""
        self.columns_ = list(columns)
        self.n_features_in_ = x.shape[1]
        self.X_, self.T_, self.Y_ = x, t, y
        self._fit(x, t, y)
        self.propensity_train_ = self._training_propensity()
        self.overlap_: OverlapReport = overlap_report(self.propensity_train_, t)
        warn_if_poor(self.overlap_, type(self).__name__, stacklevel=4)
        return self

    def predict_outcomes(self, X: ArrayLike | None = None) -> pd.DataFrame:
        """Predicted potential outcomes ``y0 = E[Y(0)|x]`` and ``y1 = E[Y(1)|x]`` per row."""
        x = self._rows(X)
        y0, y1 = self._outcomes(x)
        return pd.DataFrame({"y0": y0, "y1": y1}, index=_index(X))

    def effect(self, X: ArrayLike | None = None) -> np.ndarray | pd.Series:
        """The CATE ``τ̂(x) = ŷ1(x) − ŷ0(x)`` per row (``None``: the training rows). A pandas
        ``X`` gives a Series ``"effect"`` on ``X``'s index, as :meth:`predict_outcomes` does."""
        y0, y1 = self._outcomes(self._rows(X))
        index = _index(X)
        return y1 - y0 if index is None else pd.Series(y1 - y0, index=index, name="effect")

    def ate(self, X: ArrayLike | None = None) -> float:
        """The average treatment effect over ``X`` (``None``: the training rows)."""
        return float(np.mean(self.effect(X)))

    def att(self) -> float:
        """The doubly robust ATT of the training rows (module docstring): observed treated
        outcomes against the control-outcome model, with the controls' residuals weighted by
        ``e/(1 − e)`` (``e`` capped at :data:`ATT_MAX_PROPENSITY`)."""
        psi, t = self._att_terms()
        return float(psi.sum() / t.sum())

    def att_interval(self, alpha: float = 0.05) -> tuple[float, float]:
        """Wald interval for :meth:`att` from its influence function
        ``(ψ_i − T_i·ATT) / mean(T)``, treating μ0 and e as known (no refits)."""
        psi, t = self._att_terms()
        att = psi.sum() / t.sum()
        phi = (psi - t * att) / t.mean()
        return normal_interval(float(att), float(phi.std(ddof=1) / np.sqrt(len(t))), alpha)

    def ate_interval(
        self, alpha: float = 0.05, n_bootstrap: int | None = None
    ) -> tuple[float, float]:
        """A ``1 − alpha`` interval for the training-sample ATE by the percentile bootstrap:
        ``n_bootstrap`` (default: the hyper-parameter) refits on resampled rows, each with a
        seed derived from ``seed``; a progress bar when the estimator's ``progress`` is on."""
        self._check_fitted()
        n_boot = self.n_bootstrap if n_bootstrap is None else n_bootstrap

        def refit_ate(rows: np.ndarray, seed: int) -> float:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OverlapWarning)
                return self._replicate(seed).fit(self.X_[rows], self.T_[rows], self.Y_[rows]).ate()

        progress = bool(self.get_params().get("progress", False))
        return bootstrap_interval(
            refit_ate, len(self.X_), n_boot, self._seed(), alpha, progress,
            f"{type(self).__name__} bootstrap",
        )  # fmt: skip

    # ------------------------------------------------------------------ for subclasses
    @abstractmethod
    def _fit(self, x: np.ndarray, t: np.ndarray, y: np.ndarray) -> None:
        """Learn from validated arrays (``t`` is 0/1 float)."""

    @abstractmethod
    def _outcomes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(y0, y1)`` predictions for validated rows, in the user's units."""

    def _training_propensity(self) -> np.ndarray:
        """The training rows' propensity; estimators with their own model override this."""
        model = fit_propensity(None, self.X_, self.T_, self._seed())
        return model.predict_proba(self.X_)[:, 1]

    def _control_outcomes(self) -> np.ndarray:
        """μ0 on the training rows for :meth:`att` (AIPW: its cross-fitted predictions)."""
        return self._outcomes(self.X_)[0]

    def _att_max_propensity(self) -> float:
        return ATT_MAX_PROPENSITY

    def _att_terms(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-row terms ψ_i of the doubly robust ATT numerator, and T."""
        self._check_fitted()
        t = self.T_
        e = np.minimum(self.propensity_train_, self._att_max_propensity())
        r = self.Y_ - self._control_outcomes()
        return t * r - (1 - t) * e / (1 - e) * r, t

    def _replicate(self, seed: int) -> EffectEstimator:
        """An unfitted copy with a new seed and no progress bar (for the bootstrap)."""
        params = {"seed": seed}
        if "progress" in self.get_params():
            params["progress"] = False
        return clone(self).set_params(**params)

    def _seed(self) -> int:
        return int(self.get_params().get("seed", 0))

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_features_in_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(X, T, Y) first"
            )

    def _rows(self, X: ArrayLike | None) -> np.ndarray:
        self._check_fitted()
        return self.X_ if X is None else as_matrix(X, "X", self.columns_)


def _index(X: ArrayLike | None) -> pd.Index | None:
    return X.index if isinstance(X, (pd.DataFrame, pd.Series)) else None
