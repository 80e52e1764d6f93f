"""Overlap (positivity) diagnostics, trimming and balancing weights for a propensity ``e(x)``.

- :func:`overlap_report`: propensity range and histogram by arm, Kish effective sample sizes of
  the ATE weights, the share of rows outside ``[ε, 1 − ε]`` and the Crump et al. threshold.
- :func:`crump_threshold`: the optimal trimming bound α of Crump, Hotz, Imbens & Mitnik (2009),
  "Dealing with limited overlap in estimation of average treatment effects", Biometrika 96(1),
  §3: keep the rows with ``α ≤ e(x) ≤ 1 − α``, where, with ``g = 1 / (e(1 − e))``, ``α = 0`` if
  ``sup g ≤ 2 E[g]`` and otherwise ``γ = 1/(α(1 − α))`` solves ``γ = 2 E[g | g ≤ γ]``.
- :func:`balancing_weights`: the weights of the ATE (``t/e``, ``(1−t)/(1−e)``), the ATT
  (``t``, ``(1−t)·e/(1−e)``) and the overlap population (Li, Morgan & Zaslavsky 2018, JASA
  113(521), "Balancing covariates via propensity score weighting": ``t·(1−e)``, ``(1−t)·e``;
  their estimand is the ATO, the effect averaged with density ∝ ``e(1 − e)``).

:class:`OverlapWarning` (a :class:`UserWarning`) is issued by every estimator's ``fit`` when
:meth:`OverlapReport.problems` finds one; filter it with
``warnings.filterwarnings("ignore", category=OverlapWarning)``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import DataError, DeepSCMWarning

__all__ = [
    "EPSILON",
    "MIN_OVERLAP_ARM",
    "OverlapReport",
    "OverlapWarning",
    "Trim",
    "balancing_weights",
    "crump_threshold",
    "effective_sample_size",
    "overlap_report",
    "trim_mask",
    "warn_if_poor",
]

#: ε of the reported share of rows with ``e ∉ [ε, 1 − ε]``.
EPSILON = 0.01
#: Fewer rows than this in an arm is reported as poor overlap.
MIN_OVERLAP_ARM = 20
#: Largest tolerated share of rows with ``e ∉ [ε, 1 − ε]``.
MAX_EXTREME_SHARE = 0.05
#: Smallest tolerated ratio of an arm's effective to its actual size under ATE weights.
MIN_ESS_RATIO = 0.1

#: A trimming rule: ``None`` (keep all), ``"crump"`` or a bound ε (keep ``ε ≤ e ≤ 1 − ε``).
Trim = str | float | None


class OverlapWarning(DeepSCMWarning):
    """Treated and control covariates overlap poorly: ATE weights are extreme or an arm is small."""


def effective_sample_size(w: np.ndarray) -> float:
    """Kish's effective sample size ``(Σ w)² / Σ w²`` of non-negative weights."""
    w = np.asarray(w, float)
    s2 = float((w**2).sum())
    return float(w.sum() ** 2 / s2) if s2 > 0 else 0.0


def crump_threshold(e: np.ndarray) -> float:
    """The Crump et al. (2009, §3, eq. 3.2) trimming bound α for propensities ``e``."""
    e = np.clip(np.asarray(e, float), 1e-12, 1 - 1e-12)
    g = np.sort(1.0 / (e * (1 - e)))
    if g[-1] <= 2 * g.mean():
        return 0.0
    running = np.cumsum(g) / np.arange(1, len(g) + 1)
    k = int(np.flatnonzero(g <= 2 * running)[-1])
    gamma = 2 * running[k]
    return float(0.5 - np.sqrt(max(0.25 - 1 / gamma, 0.0)))


def trim_mask(e: np.ndarray, trim: Trim) -> np.ndarray:
    """Rows kept by ``trim``: all (``None``), ``α ≤ e ≤ 1 − α`` with Crump's α (``"crump"``) or
    with the given ``ε`` (a float in ``[0, 0.5)``)."""
    e = np.asarray(e, float)
    if trim is None:
        return np.ones(len(e), bool)
    if isinstance(trim, str):
        if trim != "crump":
            raise ValueError(f"trim must be None, 'crump' or a float in [0, 0.5), got {trim!r}")
        eps = crump_threshold(e)
    else:
        eps = float(trim)
        if not 0 <= eps < 0.5:
            raise ValueError(f"trim must be None, 'crump' or a float in [0, 0.5), got {trim!r}")
    return (e >= eps) & (e <= 1 - eps)


def balancing_weights(e: np.ndarray, t: np.ndarray, estimand: str) -> tuple[np.ndarray, np.ndarray]:
    """``(w1, w0)``: the weights of the treated and control rows for ``estimand`` (``"ate"``,
    ``"att"`` or ``"overlap"``); each arm's weighted mean estimates that population's mean
    potential outcome once normalised by the arm's weight sum."""
    e, t = np.asarray(e, float), np.asarray(t, float)
    if estimand == "ate":
        return t / e, (1 - t) / (1 - e)
    if estimand == "att":
        return t, (1 - t) * e / (1 - e)
    if estimand == "overlap":
        return t * (1 - e), (1 - t) * e
    raise ValueError(f"estimand must be 'ate', 'att' or 'overlap', got {estimand!r}")


@dataclass(frozen=True)
class OverlapReport:
    """Overlap of the propensity between the arms (see :func:`overlap_report`)."""

    n_treated: int
    n_control: int
    #: ``(min, max)`` of the propensity among the treated / the controls.
    range_treated: tuple[float, float]
    range_control: tuple[float, float]
    #: Counts per arm in the 10 bins ``[0, 0.1), …, [0.9, 1]``.
    histogram_treated: tuple[int, ...]
    histogram_control: tuple[int, ...]
    #: Kish effective sample sizes of the ATE weights ``1/e`` (treated), ``1/(1−e)`` (controls).
    ess_treated: float
    ess_control: float
    #: ESS of the controls under the ATT weights ``e/(1−e)``.
    ess_control_att: float
    epsilon: float
    #: Share of all rows with ``e ∉ [ε, 1 − ε]``.
    share_outside: float
    #: Crump et al. (2009) bound α and the share of rows that rule drops.
    crump_alpha: float
    crump_share_dropped: float

    def problems(self) -> list[str]:
        """Human-readable reasons for poor overlap (empty when overlap is adequate)."""
        out = []
        small = min(self.n_treated, self.n_control)
        if small < MIN_OVERLAP_ARM:
            out.append(
                f"only {self.n_treated} treated and {self.n_control} control rows "
                f"(fewer than {MIN_OVERLAP_ARM} in an arm)"
            )
        if self.share_outside > MAX_EXTREME_SHARE:
            out.append(
                f"{self.share_outside:.1%} of rows have a propensity outside "
                f"[{self.epsilon:g}, {1 - self.epsilon:g}]"
            )
        for arm, ess, n in (
            ("treated", self.ess_treated, self.n_treated),
            ("control", self.ess_control, self.n_control),
        ):
            if ess < MIN_ESS_RATIO * n:
                out.append(f"the {arm} arm's ATE-weighted effective size is {ess:.0f} of {n}")
        return out

    def __str__(self) -> str:
        lines = [
            f"treated {self.n_treated}: e in [{self.range_treated[0]:.3g}, "
            f"{self.range_treated[1]:.3g}], ATE-weight ESS {self.ess_treated:.0f}",
            f"control {self.n_control}: e in [{self.range_control[0]:.3g}, "
            f"{self.range_control[1]:.3g}], ATE-weight ESS {self.ess_control:.0f}, "
            f"ATT-weight ESS {self.ess_control_att:.0f}",
            f"outside [{self.epsilon:g}, {1 - self.epsilon:g}]: {self.share_outside:.1%}; "
            f"Crump α = {self.crump_alpha:.3f} drops {self.crump_share_dropped:.1%}",
            "histogram (10 bins of e): treated "
            f"{list(self.histogram_treated)}, control {list(self.histogram_control)}",
        ]
        return "\n".join(lines)


def overlap_report(e: np.ndarray, t: np.ndarray, epsilon: float = EPSILON) -> OverlapReport:
    """Diagnostics of the propensities ``e`` of rows with treatment ``t`` (0/1)."""
    e, t = np.asarray(e, float), np.asarray(t, float)
    if e.shape != t.shape or not np.isfinite(e).all() or ((e < 0) | (e > 1)).any():
        raise DataError("propensities must be finite values in [0, 1], one per row of T")
    ec = np.clip(e, 1e-12, 1 - 1e-12)
    treated, control = ec[t == 1], ec[t == 0]
    bins = np.linspace(0, 1, 11)

    def span(v: np.ndarray) -> tuple[float, float]:
        return (float(v.min()), float(v.max())) if len(v) else (float("nan"), float("nan"))

    alpha = crump_threshold(ec)
    return OverlapReport(
        n_treated=len(treated),
        n_control=len(control),
        range_treated=span(e[t == 1]),
        range_control=span(e[t == 0]),
        histogram_treated=tuple(int(c) for c in np.histogram(treated, bins)[0]),
        histogram_control=tuple(int(c) for c in np.histogram(control, bins)[0]),
        ess_treated=effective_sample_size(1 / treated),
        ess_control=effective_sample_size(1 / (1 - control)),
        ess_control_att=effective_sample_size(control / (1 - control)),
        epsilon=float(epsilon),
        share_outside=float(np.mean((e < epsilon) | (e > 1 - epsilon))),
        crump_alpha=alpha,
        crump_share_dropped=float(1 - trim_mask(ec, alpha).mean()),
    )


def warn_if_poor(report: OverlapReport, who: str, stacklevel: int = 3) -> None:
    """Issue an :class:`OverlapWarning` naming the problems and the remedies."""
    problems = report.problems()
    if problems:
        warnings.warn(
            f"{who}: poor overlap between treated and controls: {'; '.join(problems)}. "
            "ATE estimates extrapolate; prefer att(), or IPW/AIPW with trim='crump' or "
            "weights='overlap' (a re-defined estimand); see the estimator's overlap_.",
            OverlapWarning,
            stacklevel=stacklevel,
        )
