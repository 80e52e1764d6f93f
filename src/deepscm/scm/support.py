"""The joint support of each node's parents: does a query ask about a parent combination the
training data covered?

The range check (:func:`deepscm.scm.engine.outside_shares`) looks at one variable at a time.
An intervention can keep every parent of a node inside its own training range and still ask
about a combination the data never showed — ``do(x3 := 2)`` for a unit whose ``x2`` makes
``x3 ≈ −1`` the only values seen with it — and the node's mechanism then extrapolates in its
joint input. On the benchmark SCMs the counterfactual pairs flagged here carry several times
the error of the others (``benchmarks/results/support_check.md``).

Summary of one node, fitted on its training contexts (the engine's encoding of the parents,
``c ∈ R^d``, ``d ≥ 2``): robust coordinates ``z = (c − median) / s`` with ``s = IQR / 1.349``
(the standard deviation where the IQR is zero, 1 where both are), so that a heavy tail does
not squash the bulk; k-means (Lloyd's algorithm, scikit-learn) with ``k = clip(n / 100, 2,
64)`` clusters (at most the number of distinct rows) on at most :data:`MAX_ROWS` rows; each
cluster with at least :data:`MIN_MEMBERS` members keeps its centroid ``μ_j`` and radius
``r_j``, the 99th percentile of its members' distances to ``μ_j``. A context is *outside the
support* when

    min_j ‖z − μ_j‖ / r_j  >  FACTOR  (= 1.5).

Only centroids and radii are kept, each computed from at least ten rows: no training row is
stored in the model. Of 5,000 fresh observational rows of each benchmark SCM, 0–1.0 % are
flagged (per SCM and seed; the same file).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

#: a context is outside when its scaled distance to every centroid exceeds this.
FACTOR = 1.5
#: clusters with fewer training rows are dropped (their centroid would be close to a row).
MIN_MEMBERS = 10
#: k-means runs on at most this many training rows (an even subsample).
MAX_ROWS = 4000
#: contexts wider than this (e.g. image parents) get no summary.
MAX_DIM = 64
#: rows per distance block when scoring.
_BLOCK = 8192


def even_rows(n: int, m: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``min(n, m)`` evenly spaced row indices of ``0..n−1`` (all rows when ``n ≤ m``; of
    shuffled rows, a random subsample)."""
    return torch.linspace(0, n - 1, max(1, min(n, m)), device=device).round().long()


@dataclass(frozen=True)
class ParentSupport:
    """The k-means summary of one node's training contexts (module docstring)."""

    center: np.ndarray  # (d,)
    scale: np.ndarray  # (d,)
    centroids: np.ndarray  # (k, d)
    radius: np.ndarray  # (k,)

    def score(self, context: torch.Tensor | np.ndarray) -> np.ndarray:
        """``min_j ‖z − μ_j‖ / r_j`` per row of ``context`` ``(n, d)``; above :data:`FACTOR`
        is outside the support."""
        c = context.detach().cpu().numpy() if torch.is_tensor(context) else np.asarray(context)
        z = (c.astype(np.float64) - self.center) / self.scale
        out = np.empty(len(z))
        for first in range(0, len(z), _BLOCK):
            block = z[first : first + _BLOCK]
            d2 = (block**2).sum(1)[:, None] - 2 * block @ self.centroids.T + (self.centroids**2).sum(1)[None]
            out[first : first + _BLOCK] = (np.sqrt(np.maximum(d2, 0.0)) / self.radius[None]).min(1)
        return out

    def outside(self, context: torch.Tensor | np.ndarray) -> np.ndarray:
        """Whether each row of ``context`` lies outside the support (a boolean array)."""
        return self.score(context) > FACTOR

    def to_dict(self) -> dict[str, Any]:
        return {"center": self.center.tolist(), "scale": self.scale.tolist(),
                "centroids": self.centroids.tolist(), "radius": self.radius.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ParentSupport:
        """The summary written by :meth:`to_dict`; ``ValueError`` if the shapes disagree."""
        out = cls(*(np.asarray(d[k], dtype=np.float64) for k in ("center", "scale", "centroids", "radius")))
        k, dim = out.centroids.shape if out.centroids.ndim == 2 else (-1, -1)
        if not (out.center.shape == out.scale.shape == (dim,) and out.radius.shape == (k,) and k >= 1):
            raise ValueError("a parent-support summary has inconsistent shapes")
        if not (np.all(out.scale > 0) and np.all(out.radius > 0)):
            raise ValueError("a parent-support summary has a non-positive scale or radius")
        return out


def fit_support(context: torch.Tensor, seed: int = 0) -> ParentSupport | None:
    """The summary of one node's training contexts ``(n, d)``, or ``None`` when ``d`` is
    outside ``[2, MAX_DIM]`` or no cluster keeps :data:`MIN_MEMBERS` rows."""
    from sklearn.cluster import KMeans

    n, dim = context.shape
    if not 2 <= dim <= MAX_DIM or n < 2 * MIN_MEMBERS:
        return None
    c = context.detach().cpu().numpy().astype(np.float64)
    if n > MAX_ROWS:
        c = c[even_rows(n, MAX_ROWS).numpy()]
    center = np.median(c, axis=0)
    q75, q25 = np.percentile(c, [75, 25], axis=0)
    scale = (q75 - q25) / 1.349
    sd = c.std(axis=0)
    scale = np.where(scale > 0, scale, np.where(sd > 0, sd, 1.0))
    z = (c - center) / scale
    # no more clusters than distinct rows (a discrete parent repeats its rows)
    k = int(min(np.clip(len(z) // 100, 2, 64), len(np.unique(z, axis=0))))
    km = KMeans(n_clusters=k, n_init=1, random_state=seed % 2**32).fit(z)
    distance = np.linalg.norm(z - km.cluster_centers_[km.labels_], axis=1)
    centroids, radius = [], []
    for j in range(k):
        members = distance[km.labels_ == j]
        if len(members) >= MIN_MEMBERS:
            centroids.append(km.cluster_centers_[j])
            # a cluster of identical rows (a discrete parent) gets a small positive radius
            radius.append(max(float(np.quantile(members, 0.99)), 1e-3))
    if not centroids:
        return None
    return ParentSupport(center, scale, np.stack(centroids), np.asarray(radius))


def fit_supports(contexts: Mapping[str, torch.Tensor], rows: torch.Tensor, seed: int = 0) -> dict[str, ParentSupport]:
    """:func:`fit_support` of every node's context on the training ``rows`` (at most
    :data:`MAX_ROWS` of them, evenly spaced: a random subsample of shuffled rows); nodes
    without a summary are left out."""
    rows = rows[even_rows(len(rows), MAX_ROWS, rows.device)]
    out = {}
    for node, ctx in contexts.items():
        support = fit_support(ctx[rows], seed)
        if support is not None:
            out[node] = support
    return out
