"""Distribution distances and counterfactual errors for evaluating SCMs against ground truth.

Inputs are 2-D arrays or DataFrames of shape ``(n, d)``; 1-D inputs are read as ``(n, 1)``.
When both inputs are DataFrames, columns are aligned by name (the second input must hold every
column of the first). Kernel and distance statistics build ``n x m`` matrices, i.e. memory
``O(n m)``: with more than :data:`LARGE_N` rows per side, subsample before calling — the
functions never subsample silently; they warn instead.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist, pdist
from scipy.stats import wasserstein_distance

from ..errors import DataError

__all__ = [
    "LARGE_N",
    "counterfactual_mae",
    "counterfactual_mse",
    "counterfactual_rmse",
    "energy_distance",
    "mmd2_unbiased",
    "mmd_dcm",
    "wasserstein1",
]

ArrayLike = np.ndarray | pd.DataFrame | pd.Series

LARGE_N = 5000
"""Rows per side above which the pairwise statistics warn about their quadratic memory."""


# --------------------------------------------------------------------------- input handling
def _matrix(x: ArrayLike, name: str) -> np.ndarray:
    if isinstance(x, pd.Series):
        x = x.to_frame()
    try:
        a = x.to_numpy(dtype=float) if isinstance(x, pd.DataFrame) else np.asarray(x, float)
    except (TypeError, ValueError) as e:
        raise DataError(f"{name} must be numeric (encode categorical columns first)") from e
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] == 0:
        raise DataError(f"{name} must be a non-empty 1-D or 2-D array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise DataError(f"{name} contains NaN or inf")
    return a


def _aligned(x: ArrayLike, y: ArrayLike, names: tuple[str, str] = ("x", "y")) -> tuple:
    """Both inputs as float matrices with matching columns, plus the column labels."""
    if isinstance(x, pd.DataFrame) and isinstance(y, pd.DataFrame):
        missing = [c for c in x.columns if c not in y.columns]
        if missing:
            raise DataError(f"{names[1]} lacks columns {missing} of {names[0]}")
        y = y[list(x.columns)]
    columns = list(x.columns) if isinstance(x, pd.DataFrame) else None
    a, b = _matrix(x, names[0]), _matrix(y, names[1])
    if a.shape[1] != b.shape[1]:
        raise DataError(
            f"{names[0]} has {a.shape[1]} columns but {names[1]} has {b.shape[1]}"
        )
    return a, b, columns if columns is not None else list(range(a.shape[1]))


def _warn_if_large(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if max(len(a), len(b)) > LARGE_N:
        warnings.warn(
            f"{what} on {len(a)} x {len(b)} rows builds pairwise matrices with "
            f"O(n^2) memory; subsample to <= {LARGE_N} rows per side",
            stacklevel=3,
        )


# --------------------------------------------------------------------------- kernel statistics
def mmd2_unbiased(x: ArrayLike, y: ArrayLike, bandwidth: float | None = None) -> float:
    r"""Unbiased squared MMD with a Gaussian kernel (Gretton et al. 2012, JMLR, eq. 3).

    .. math:: \widehat{\mathrm{MMD}}^2_u = \frac{1}{m(m-1)}\sum_{i\ne j} k(x_i,x_j)
        + \frac{1}{n(n-1)}\sum_{i\ne j} k(y_i,y_j) - \frac{2}{mn}\sum_{i,j} k(x_i,y_j),
        \qquad k(a, b) = \exp\!\big(-\lVert a-b\rVert^2 / (2\sigma^2)\big).

    ``bandwidth`` is :math:`\sigma`; by default the median heuristic, the median of the
    positive pairwise distances of the pooled sample. Can be slightly negative when both
    samples come from the same distribution.
    """
    a, b, _ = _aligned(x, y)
    if len(a) < 2 or len(b) < 2:
        raise DataError("mmd2_unbiased needs at least 2 rows in each sample")
    _warn_if_large(a, b, "mmd2_unbiased")
    if bandwidth is None:
        d = pdist(np.vstack([a, b]))
        d = d[d > 0]
        if d.size == 0:
            return 0.0  # every point coincides: the two samples are identical
        bandwidth = float(np.median(d))
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")
    gamma = 1.0 / (2.0 * bandwidth**2)
    kxx = np.exp(-gamma * cdist(a, a, "sqeuclidean"))
    kyy = np.exp(-gamma * cdist(b, b, "sqeuclidean"))
    kxy = np.exp(-gamma * cdist(a, b, "sqeuclidean"))
    m, n = len(a), len(b)
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2.0 * kxy.mean()
    )


def mmd_dcm(x: ArrayLike, y: ArrayLike) -> float:
    """MMD exactly as the DCM paper computes it (Chao et al. 2023, ``experiments/MMD.py``).

    Biased V-statistic ``mean K_XX + mean K_YY - 2 mean K_XY`` with ``K = exp(-gamma ||a-b||²)``
    (sklearn's ``rbf_kernel``), where ``gamma = 1 / median`` of the positive entries of the
    upper triangle (diagonal included) of the ``X``-``Y`` squared-distance matrix, i.e.
    ``D - tril(D, -1)`` with ``D = euclidean_distances(X, Y, squared=True)``.
    """
    a, b, _ = _aligned(x, y)
    _warn_if_large(a, b, "mmd_dcm")
    d = np.triu(cdist(a, b, "sqeuclidean"))  # == D - tril(D, k=-1)
    positive = d[d > 0]
    if positive.size == 0:
        raise DataError("mmd_dcm: every X-Y distance in the upper triangle is zero; "
                        "the bandwidth is undefined")
    gamma = 1.0 / float(np.median(positive))
    return float(
        np.exp(-gamma * cdist(a, a, "sqeuclidean")).mean()
        + np.exp(-gamma * cdist(b, b, "sqeuclidean")).mean()
        - 2.0 * np.exp(-gamma * cdist(a, b, "sqeuclidean")).mean()
    )


def energy_distance(x: ArrayLike, y: ArrayLike) -> float:
    r"""Multivariate energy distance (Székely & Rizzo 2013, eq. 1), V-statistic form.

    .. math:: \mathcal{E}(X, Y) = 2\,\mathbb{E}\lVert X-Y\rVert - \mathbb{E}\lVert X-X'\rVert
        - \mathbb{E}\lVert Y-Y'\rVert

    with empirical means over all pairs (diagonals included). In 1-D this equals
    ``scipy.stats.energy_distance(x, y) ** 2`` (scipy returns the square root).
    """
    a, b, _ = _aligned(x, y)
    _warn_if_large(a, b, "energy_distance")
    m, n = len(a), len(b)
    return float(
        2.0 * cdist(a, b).mean() - 2.0 * pdist(a).sum() / m**2 - 2.0 * pdist(b).sum() / n**2
    )


def wasserstein1(x: ArrayLike, y: ArrayLike) -> dict:
    """Per-variable 1-Wasserstein distance (``scipy.stats.wasserstein_distance``).

    Keys are the column names of ``x`` for DataFrames, column indices for arrays.
    """
    a, b, columns = _aligned(x, y)
    return {c: float(wasserstein_distance(a[:, j], b[:, j])) for j, c in enumerate(columns)}


# --------------------------------------------------------------------------- counterfactual error
def _errors(pred: ArrayLike, true: ArrayLike) -> np.ndarray:
    """``pred - true`` over all entries; DataFrames are aligned on ``true``'s columns and index
    (extra columns of ``pred`` are ignored)."""
    if isinstance(pred, pd.DataFrame) and isinstance(true, pd.DataFrame):
        missing = [c for c in true.columns if c not in pred.columns]
        if missing:
            raise DataError(f"pred lacks columns {missing} of true")
        if not pred.index.equals(true.index):
            if len(pred) != len(true) or not pred.index.sort_values().equals(
                true.index.sort_values()
            ):
                raise DataError("pred and true have different row indices; "
                                "pass the predictions of exactly the units in true")
            pred = pred.loc[true.index]
        pred = pred[list(true.columns)]
    p, t, _ = _aligned(pred, true, names=("pred", "true"))
    if p.shape != t.shape:
        raise DataError(f"pred has shape {p.shape} but true has shape {t.shape}")
    return p - t


def counterfactual_mse(pred: ArrayLike, true: ArrayLike) -> float:
    """Mean squared error over all entries (the DCM paper's counterfactual metric)."""
    return float(np.mean(_errors(pred, true) ** 2))


def counterfactual_rmse(pred: ArrayLike, true: ArrayLike) -> float:
    """Root mean squared error over all entries."""
    return float(np.sqrt(counterfactual_mse(pred, true)))


def counterfactual_mae(pred: ArrayLike, true: ArrayLike) -> float:
    """Mean absolute error over all entries."""
    return float(np.mean(np.abs(_errors(pred, true))))
