"""A Learning-Mindsets-like SCM, fitted to the correlations CCGM reports (Bhat et al., Table I).

The National Study of Learning Mindsets (Yeager et al. 2019; the simulated release used by
Athey & Wager 2019 and by CCGM §IV.B) is not public, so this is a simulated SCM with the
same shape — two confounders, school mindset ``SM`` and success expectation ``SE``, cause a
binary treatment ``D`` and the achievement ``Y`` — and *known* effect:

    (SM, SE) ~ N(0, [[1, ρ], [ρ, 1]])
    D := 1[a SM + b SE + ε_D > q],     ε_D ~ N(0, 1 − Var(a SM + b SE))     (probit)
    Y := τ D + c SM + e SE + ε_Y,      ε_Y ~ N(0, σ²)

The parameters are solved in closed form (:func:`mindsets_parameters`) so that the
population correlations equal Table I exactly (SM–SE −0.054, SM–D −0.046, SM–Y −0.111,
SE–D 0.059, SE–Y 0.439, D–Y 0.221), ``P(D = 1)`` is the study's 3,384 / 10,391 treated and
``Var(Y) = 1``. For a binary probit ``D`` with threshold ``z = Φ⁻¹(1 − p)``,
``Cov(X, D) = φ(z) Cov(X, D*)`` for standard-normal ``D*``; ``Y``'s coefficients are the
population regression ``β = Σ⁻¹ Cov((SM, SE, D), Y)``. The true ATE is ``τ``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from ..errors import ConfigError

__all__ = ["CORRELATIONS", "MindsetsParameters", "N_ROWS", "TREATED_SHARE", "load_mindsets", "mindsets_parameters"]

N_ROWS = 10_391
#: the study's share treated (3,384 of 10,391 students; Athey & Wager 2019).
TREATED_SHARE = 3384 / 10391
#: CCGM Table I: the published correlations among SM, SE, D and Y.
CORRELATIONS = pd.DataFrame(
    [[1.0, -0.054, -0.046, -0.111], [-0.054, 1.0, 0.059, 0.439],
     [-0.046, 0.059, 1.0, 0.221], [-0.111, 0.439, 0.221, 1.0]],
    index=["SM", "SE", "D", "Y"], columns=["SM", "SE", "D", "Y"],
)
GRAPH = "SM -> D; SE -> D; SM -> Y; SE -> Y; D -> Y"


@dataclass(frozen=True)
class MindsetsParameters:
    """Coefficients of the SCM in the module docstring; ``ate`` is the true effect ``τ``."""

    rho: float
    a: float
    b: float
    threshold: float
    noise_d: float
    ate: float
    c: float
    e: float
    noise_y: float


def mindsets_parameters(correlations: pd.DataFrame = CORRELATIONS, treated: float = TREATED_SHARE) -> MindsetsParameters:
    """Solve the SCM's coefficients so that its population matches ``correlations``."""
    r = correlations.loc[["SM", "SE", "D", "Y"], ["SM", "SE", "D", "Y"]].to_numpy(float)
    if not 0 < treated < 1:
        raise ConfigError(f"treated must be a share in (0, 1), got {treated!r}")
    rho = r[0, 1]
    sd_d = np.sqrt(treated * (1 - treated))
    z = norm.ppf(1 - treated)
    # Cov(X, D) = φ(z) Cov(X, D*) with Var(D*) = 1, so Cov(X, D*) = r_XD sd_D / φ(z)
    cov_star = r[:2, 2] * sd_d / norm.pdf(z)
    sigma_x = np.array([[1.0, rho], [rho, 1.0]])
    a, b = np.linalg.solve(sigma_x, cov_star)
    explained = float(np.array([a, b]) @ sigma_x @ np.array([a, b]))
    if explained >= 1:
        raise ConfigError("the correlations of D with SM and SE are too strong for a probit D")
    cov_xd = r[:2, 2] * sd_d
    sigma = np.block([[sigma_x, cov_xd[:, None]], [cov_xd[None, :], np.array([[sd_d**2]])]])
    cov_y = np.array([r[0, 3], r[1, 3], r[2, 3] * sd_d])
    c, e, tau = np.linalg.solve(sigma, cov_y)
    resid = 1.0 - float(np.array([c, e, tau]) @ sigma @ np.array([c, e, tau]))
    if resid <= 0:
        raise ConfigError("the correlations with Y are not attainable (negative residual variance)")
    return MindsetsParameters(float(rho), float(a), float(b), float(z), float(np.sqrt(1 - explained)),
                              float(tau), float(c), float(e), float(np.sqrt(resid)))


def load_mindsets(n: int = N_ROWS, seed: int = 0, potential_outcomes: bool = False) -> pd.DataFrame:
    """``n`` rows of ``SM``, ``SE``, ``D`` (0/1) and ``Y``; with ``potential_outcomes`` also
    ``Y0`` and ``Y1`` (the same noise, ``D`` set to 0 and 1). ``df.attrs["ate"]`` is the true
    ATE and ``df.attrs["graph"]`` the causal graph."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"n must be a positive integer, got {n!r}")
    p = mindsets_parameters()
    rng = np.random.default_rng(seed)
    x = rng.multivariate_normal([0.0, 0.0], [[1.0, p.rho], [p.rho, 1.0]], size=int(n))
    sm, se = x[:, 0], x[:, 1]
    d = (p.a * sm + p.b * se + p.noise_d * rng.standard_normal(n) > p.threshold).astype(float)
    base = p.c * sm + p.e * se + p.noise_y * rng.standard_normal(n)
    out = pd.DataFrame({"SM": sm, "SE": se, "D": d, "Y": base + p.ate * d})
    if potential_outcomes:
        out["Y0"], out["Y1"] = base, base + p.ate
    out.attrs.update(ate=p.ate, graph=GRAPH)
    return out
