r"""Bounds on continuous-treatment effects over data-fitting generators (Balazadeh, Syrgkanis &
Krishnan 2022, "Partial identification of treatment effects with implicit generative models").

For a query ``θ(G)`` of a generative causal model ``G`` — the average treatment derivative
``ATD = E_X[∂/∂a E_G[y | do(x = a)]|_{a = X}]``, an ATE ``E_G[y | do(x=1)] − E_G[y | do(x=0)]``
or a mean ``E_G[y | do(x = a)]`` — the bounds are

    [min θ(G), max θ(G)]  over GAN-NCM generators G  s.t.  S_ε(P_G, P_n) ≤ α,

``S_ε`` the debiased Sinkhorn divergence (Genevay, Peyré & Cuturi 2018; Feydy et al. 2019)
between the model's and the data's joint (standardised continuous nodes, one-hot discrete
ones). The generators are those of :class:`deepscm.ncm.GANNCM` (a shared latent per
C²-component, an independent noise per node), so ``G`` respects the graph.

Steps (:func:`continuous_bounds`):

1. *Fit.* Minimise ``S_ε`` on minibatches (``fit_steps`` Adam steps, from scratch or from a
   given fitted :class:`GANNCM`). ``S_fit`` is the divergence on a fixed evaluation set
   (``eval_rows`` data rows against as many model draws with fixed noise, so it is a
   deterministic function of the weights).
2. *Budget.* ``α = S_fit + slack·sd_floor``: ``sd_floor`` is the standard deviation, over
   :data:`FLOOR_SPLITS` random splits, of ``S_ε`` between two disjoint data samples of the
   evaluation size, i.e. how much the divergence moves by sampling alone; a model within
   ``slack`` such spreads of the best fit is not distinguishable from it at this ``n``.
3. *Push, subject to the fit.* From the fit, minimise ``∓θ̂ + w·S_ε(batch)/α`` with the
   Lagrangian weight ``w = λ + ρ·max(0, c)``, ``c = (S_eval − α)/α``, and the multiplier step
   ``λ ← max(0, λ + η·c)`` every ``eval_every`` steps (augmented Lagrangian, as in
   :mod:`deepscm.ncm.identify`). Only evaluations with ``S_eval ≤ α`` count: each end is the
   query of a model that fits the data, so the interval is an inner approximation of the
   constrained optimum.

For an identified query every fitting ``G`` agrees and the interval is narrow; for a
non-identified one (an instrument with a hidden confounder) it is the partial-identification
interval of the generator class at this fit level. The ``θ̂`` are Monte-Carlo estimates with
the evaluation noise fixed (``eval_rows`` draws); sampling uncertainty of the data enters only
through ``α``.

Example:
    >>> from deepscm.datasets.confounded_continuous import load_confounded_continuous
    >>> scm = load_confounded_continuous("iv")
    >>> b = continuous_bounds(scm.graph, scm.sample(400, seed=1), "atd(x, y)", fit_steps=5,
    ...                       search_steps=5, eval_every=5, eval_rows=100, hidden=(8,))
    >>> b.lower <= b.upper
    True
"""

from __future__ import annotations

import copy
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..errors import ConfigError, TrainingError
from ..graph import CausalGraph
from ..identification.query import QueryError
from .gan import GANNCM, _check_frame
from .queries import as_graph

__all__ = ["FLOOR_SPLITS", "ContinuousBounds", "ContinuousQuery", "continuous_bounds", "parse_continuous_query", "sinkhorn_divergence"]

_PAIR_RE = re.compile(r"^\s*(atd|ate)\s*\(\s*([^,()]+?)\s*,\s*([^,()]+?)\s*\)\s*$", re.IGNORECASE)
_MEAN_RE = re.compile(
    r"^\s*e\s*\[\s*([^|\[\]]+?)\s*\|\s*do\s*\(\s*([^=()]+?)\s*=\s*([-+0-9.eE]+)\s*\)\s*\]\s*$", re.IGNORECASE
)
FLOOR_SPLITS = 5
"""Random splits of the data that estimate the sampling spread of the Sinkhorn divergence."""
_EXAMPLE = "write it like 'atd(x, y)', 'ate(x, y)' or 'E[y | do(x=0.5)]'"


# --------------------------------------------------------------------------- Sinkhorn
def _ot(x: torch.Tensor, y: torch.Tensor | None, eps: float, iterations: int) -> torch.Tensor:
    """Entropic OT ``OT_ε(x, y)`` with cost ``½‖x − y‖²`` and uniform weights, by log-domain
    Sinkhorn iterations on the dual potentials (no gradient), then one differentiable
    iteration: at the fixed point ``∇OT_ε`` is the gradient with the potentials held fixed
    (envelope theorem), and ``OT_ε = mean f + mean g`` there. ``y=None`` is ``OT_ε(x, x)``
    by the symmetric, averaged update ``f ← ½(f + T(f))`` (Feydy et al. 2019, §3.1)."""
    sym = y is None
    y = x if sym else y
    cost = 0.5 * (x[:, None, :] - y[None, :, :]).square().sum(-1)
    la, lb = -math.log(len(x)), -math.log(len(y))
    with torch.no_grad():
        c = cost.detach()
        f = torch.zeros(len(x))
        g = torch.zeros(len(y))
        for _ in range(iterations):
            if sym:
                f = 0.5 * (f - eps * torch.logsumexp(la + (f[None, :] - c) / eps, dim=1))
                g = f
            else:
                f = -eps * torch.logsumexp(lb + (g[None, :] - c) / eps, dim=1)
                g = -eps * torch.logsumexp(la + (f[:, None] - c) / eps, dim=0)
    f = -eps * torch.logsumexp(lb + (g[None, :] - cost) / eps, dim=1)
    g = f if sym else -eps * torch.logsumexp(la + (f.detach()[:, None] - cost) / eps, dim=0)
    return f.mean() + g.mean()


def sinkhorn_divergence(
    x: torch.Tensor, y: torch.Tensor, *, blur: float = 0.5, iterations: int = 20
) -> torch.Tensor:
    """Debiased Sinkhorn divergence ``S_ε = OT_ε(x, y) − ½OT_ε(x, x) − ½OT_ε(y, y)``,
    ``ε = blur²``, cost ``½‖·‖²`` (Feydy et al. 2019, eq. 3): ≥ 0, 0 iff the samples'
    distributions agree, differentiable in both samples (rows are points). On standardised
    data ``blur = 0.5`` converges in about 20 iterations (1e-5 of the 200-iteration value)."""
    _check_samples(x, y)
    eps = blur**2
    return _ot(x, y, eps, iterations) - 0.5 * _ot(x, None, eps, iterations) - 0.5 * _ot(y, None, eps, iterations)


def _sinkhorn_loss(x: torch.Tensor, y: torch.Tensor, blur: float, iterations: int) -> torch.Tensor:
    """``S_ε(x, y) + ½OT_ε(y, y)``: the same gradient in ``x`` without the target's self-term."""
    eps = blur**2
    return _ot(x, y, eps, iterations) - 0.5 * _ot(x, None, eps, iterations)


def _check_samples(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ConfigError(f"sinkhorn_divergence needs (n, d) and (m, d) samples, got {tuple(x.shape)}, {tuple(y.shape)}")


# --------------------------------------------------------------------------- queries
@dataclass(frozen=True)
class ContinuousQuery:
    """``kind`` is ``"atd"``, ``"ate"`` (``do(x=1)`` vs ``do(x=0)``) or ``"mean"``
    (``E[outcome | do(treatment = value)]``)."""

    kind: str
    treatment: str
    outcome: str
    value: float = 0.0

    def __str__(self) -> str:
        if self.kind == "mean":
            return f"E[{self.outcome} | do({self.treatment}={self.value:g})]"
        return f"{self.kind.upper()}({self.treatment} -> {self.outcome})"


def parse_continuous_query(query: str | ContinuousQuery) -> ContinuousQuery:
    """Parse ``"atd(x, y)"``, ``"ate(x, y)"`` or ``"E[y | do(x=a)]"``.

    Raises:
        QueryError: any other text.
    """
    if isinstance(query, ContinuousQuery):
        return query
    if not isinstance(query, str):
        raise QueryError(f"a query must be a string, got {type(query).__name__}; {_EXAMPLE}")
    pair = _PAIR_RE.match(query)
    if pair:
        if pair.group(2) == pair.group(3):
            raise QueryError(f"{query!r}: treatment and outcome must be different nodes")
        return ContinuousQuery(pair.group(1).lower(), pair.group(2), pair.group(3))
    mean = _MEAN_RE.match(query)
    if mean:
        try:
            value = float(mean.group(3))
        except ValueError as exc:
            raise QueryError(f"{query!r}: {mean.group(3)!r} is not a number; {_EXAMPLE}") from exc
        return ContinuousQuery("mean", mean.group(2), mean.group(1), value)
    raise QueryError(f"cannot read the query {query!r}; {_EXAMPLE}")


def _query_tensor(model: GANNCM, q: ContinuousQuery, x: torch.Tensor, noise: Mapping[str, Any]) -> torch.Tensor:
    """``θ̂`` for ``model`` with the given noise (and treatment values ``x`` for the ATD)."""
    if q.kind == "atd":
        return model._atd_tensor(x, noise, q.treatment, q.outcome)
    n = len(x)
    arms = [q.value] if q.kind == "mean" else [1.0, 0.0]
    means = []
    for a in arms:
        fixed = {q.treatment: model._encode(q.treatment, np.full(n, a))}
        y = model._forward(noise, fixed)[q.outcome][:, 0]
        means.append(y.mean() * model.scale[q.outcome] + model.loc[q.outcome])
    return means[0] if q.kind == "mean" else means[0] - means[1]


# --------------------------------------------------------------------------- result
@dataclass
class ContinuousBounds:
    """The outcome of :func:`continuous_bounds`.

    Attributes:
        query: the query, readable.
        lower, upper: the smallest and largest query among evaluated models with
            ``S_eval ≤ alpha``.
        estimate: the fitted model's query (step 1).
        alpha: the Sinkhorn budget ``S_fit + slack·sd_floor``.
        fit_divergence: ``S_fit``; floor, floor_sd: mean and standard deviation of ``S_ε``
            between two disjoint data samples of the evaluation size (sampling noise alone).
        lower_divergence, upper_divergence: ``S_eval`` of the models that attain the ends.
        seconds: wall time.
        history: per direction, ``(step, S_eval, θ̂, λ)`` at each evaluation.
    """

    query: str
    lower: float
    upper: float
    estimate: float
    alpha: float
    fit_divergence: float
    floor: float
    floor_sd: float
    lower_divergence: float
    upper_divergence: float
    seconds: float
    history: dict[str, list[tuple[int, float, float, float]]] = field(default_factory=dict)

    @property
    def width(self) -> float:
        return self.upper - self.lower

    def contains(self, value: float) -> bool:
        return self.lower <= value <= self.upper

    def __str__(self) -> str:
        return (f"{self.query} ∈ [{self.lower:.4f}, {self.upper:.4f}] (fit {self.estimate:.4f}; "
                f"S ≤ α = {self.alpha:.4g}, S_fit {self.fit_divergence:.4g}, floor {self.floor:.4g} ± {self.floor_sd:.2g})")


# --------------------------------------------------------------------------- the search
def continuous_bounds(
    graph: CausalGraph | str,
    data: pd.DataFrame,
    query: str | ContinuousQuery = "atd(x, y)",
    *,
    model: GANNCM | None = None,
    fit_steps: int = 800,
    search_steps: int = 400,
    batch_size: int = 256,
    eval_rows: int = 1000,
    eval_every: int = 20,
    blur: float = 0.5,
    iterations: int = 20,
    slack: float = 2.0,
    lr: float = 1e-3,
    rho: float = 10.0,
    eta: float = 1.0,
    seed: int = 0,
    progress: bool = False,
    **gan_options: Any,
) -> ContinuousBounds:
    """Min and max of a continuous-treatment query over generators that fit ``data`` within
    a Sinkhorn budget (module docstring).

    Args:
        graph, data: the causal graph (with ``<->``) and the observed rows (every node a column).
        query: ``"atd(x, y)"``, ``"ate(x, y)"`` or ``"E[y | do(x=a)]"`` (continuous x and y).
        model: a :class:`GANNCM` to start from (e.g. WGAN-GP fitted); copied, not changed.
        fit_steps: Sinkhorn fit steps before the search (0 with a given ``model``: none).
        search_steps: Lagrangian steps per direction.
        batch_size, eval_rows, eval_every: minibatch, evaluation-set size, steps between
            evaluations (the multiplier is updated and the feasible ends recorded there).
        blur, iterations: ``√ε`` of the Sinkhorn divergence (standardised units) and its
            Sinkhorn iterations (a smaller blur needs more).
        slack: the budget ``α = S_fit + slack·sd_floor``.
        lr, rho, eta: Adam step, penalty weight, multiplier step.
        seed: seeds the weights, batches and draws; same seed, same interval.
        progress: a tqdm bar.
        gan_options: passed to :class:`GANNCM` when ``model`` is None (``hidden``, ``u_dim`` ...).

    Raises:
        QueryError: an unreadable query; GraphError: nodes the graph lacks;
        DataError: bad data; ConfigError: bad sizes or a discrete treatment/outcome.
    """
    start = time.perf_counter()
    graph = as_graph(graph)
    q = parse_continuous_query(query)
    graph.check_nodes({q.treatment, q.outcome}, "query")
    _check_frame(graph, data)
    for name, value in (("search_steps", search_steps), ("batch_size", batch_size), ("eval_rows", eval_rows),
                        ("eval_every", eval_every), ("iterations", iterations)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name}={value!r} must be a positive int")
    if isinstance(fit_steps, bool) or not isinstance(fit_steps, int) or fit_steps < 0:
        raise ConfigError(f"fit_steps={fit_steps!r} must be an int ≥ 0")
    if not (blur > 0 and slack >= 0 and lr > 0 and rho >= 0 and eta >= 0):
        raise ConfigError("blur and lr must be > 0; slack, rho and eta ≥ 0")
    if model is None:
        base = GANNCM(graph, seed=seed, **gan_options)
        base._setup(data)
    else:
        if model.graph != graph:
            raise ConfigError("the given model was built for another graph")
        model._check_fitted()
        base = copy.deepcopy(model)
    base._continuous_pair(q.treatment, q.outcome)
    nodes = base.nodes
    real = torch.cat([base._encode(n, data[n].to_numpy()) for n in nodes], -1)
    x_real = torch.tensor(data[q.treatment].to_numpy(dtype=float), dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed + 11)
    rows = len(data)
    m = min(eval_rows, rows // 2)
    if m < 20:
        raise ConfigError(f"continuous_bounds needs at least 40 rows (got {rows})")
    eval_idx = torch.randperm(rows, generator=gen)[:m]
    eval_real, eval_x = real[eval_idx], x_real[eval_idx]
    eval_noise = base._draw(m, gen)
    with torch.no_grad():
        splits = [torch.randperm(rows, generator=gen)[: 2 * m] for _ in range(FLOOR_SPLITS)]
        noise_level = np.array([
            float(sinkhorn_divergence(real[p[:m]], real[p[m:]], blur=blur, iterations=iterations)) for p in splits
        ])
    floor, floor_sd = float(noise_level.mean()), float(noise_level.std(ddof=1))

    def divergence(g: GANNCM, noise: Mapping[str, Any], target: torch.Tensor, loss: bool = False) -> torch.Tensor:
        fake = g._forward(noise, tau=0.5)
        fake = torch.cat([fake[n] for n in nodes], -1)
        if loss:
            return _sinkhorn_loss(fake, target, blur, iterations)
        return sinkhorn_divergence(fake, target, blur=blur, iterations=iterations)

    def evaluate(g: GANNCM) -> tuple[float, float]:
        with torch.no_grad():
            s = float(divergence(g, eval_noise, eval_real))
        theta = float(_query_tensor(g, q, eval_x, eval_noise).detach())
        return s, theta

    b = min(batch_size, rows)
    params = list(base.generators.parameters())
    if fit_steps:
        opt = torch.optim.Adam(params, lr=lr, betas=(0.5, 0.9))
        for _ in tqdm(range(fit_steps), disable=not progress, desc="Sinkhorn fit", leave=False):
            idx = torch.randint(rows, (b,), generator=gen)
            loss = divergence(base, base._draw(b, gen), real[idx], loss=True)
            if not torch.isfinite(loss):
                raise TrainingError(f"the Sinkhorn divergence became {float(loss)}; lower lr={lr} or raise blur")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    base.fitted = True
    s_fit, estimate = evaluate(base)
    alpha = s_fit + slack * floor_sd
    ends: dict[str, tuple[float, float]] = {}
    history: dict[str, list[tuple[int, float, float, float]]] = {}
    for direction, sign in (("upper", 1.0), ("lower", -1.0)):
        g = copy.deepcopy(base)
        opt = torch.optim.Adam(g.generators.parameters(), lr=lr, betas=(0.5, 0.9))
        lam, weight = 1.0, 1.0
        best = (estimate, s_fit)
        history[direction] = [(0, s_fit, estimate, lam)]
        bar = tqdm(range(1, search_steps + 1), disable=not progress, desc=f"bound ({direction})", leave=False)
        for t in bar:
            idx = torch.randint(rows, (b,), generator=gen)
            noise = g._draw(b, gen)
            theta = _query_tensor(g, q, x_real[idx], noise)
            s = divergence(g, noise, real[idx], loss=True)
            loss = -sign * theta + weight * s / alpha
            if not torch.isfinite(loss):
                raise TrainingError(f"the bound search loss became {float(loss)} at step {t}; lower lr={lr}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if t % eval_every == 0 or t == search_steps:
                s_eval, th = evaluate(g)
                c = (s_eval - alpha) / alpha
                lam = max(0.0, lam + eta * c)
                weight = lam + rho * max(0.0, c)
                history[direction].append((t, s_eval, th, lam))
                if s_eval <= alpha and sign * th > sign * best[0]:
                    best = (th, s_eval)
        ends[direction] = best
    return ContinuousBounds(
        query=str(q), lower=ends["lower"][0], upper=ends["upper"][0], estimate=estimate, alpha=alpha,
        fit_divergence=s_fit, floor=floor, floor_sd=floor_sd, lower_divergence=ends["lower"][1],
        upper_divergence=ends["upper"][1], seconds=time.perf_counter() - start, history=history,
    )
