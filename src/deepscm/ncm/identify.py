r"""Neural identification and bounds (Xia, Lee, Kersting & Bareinboim 2021, Alg. 1 "NeuralID").

A query is identifiable from ``P(V)`` and ``G`` iff every NCM that fits ``P(V)`` and respects
``G`` gives it the same value (Xia et al. 2021, Thm. 4). :func:`neural_identify` searches for
the two extremes by a **staged, constrained search** instead of the penalty
``L = NLL ∓ λ·Q̂`` with a λ schedule (which trades data fit against the push):

1. *Fit.* ``restarts`` NCMs are fitted by maximum likelihood; ``NLL* = min_r NLL_r`` is the
   best fit. With the exact (discrete-latent) likelihood no Monte-Carlo noise enters.
2. *Push, subject to the fit.* From each fit (from the best one, for a restart whose NLL
   exceeds ``NLL* + ε/4``), maximise and minimise ``Q̂(θ)`` subject to
   ``NLL(θ) ≤ NLL* + ε``. ``ε = χ²_{1, level} / (2n)`` makes ``{Q̂(θ) : NLL(θ) ≤ NLL* + ε}`` the
   profile-likelihood confidence interval of the query (Wilks; Venzon & Moolgavkar 1988): for
   an identifiable query it is ``q̂ ± z·s.e.`` with ``z = √χ²_{1, level}``, for a
   non-identifiable one the sample's identified set widened by about ``z·s.e.`` at each end.
   The constraint is enforced by an augmented Lagrangian on the normalised violation
   ``c = (NLL − NLL* − ε_t)/ε_t``, minimising ``∓Q̂ + λ·c + (ρ/2)·max(0, c)²`` with the
   multiplier step ``λ ← max(0, λ + η·c)``, while ``ε_t`` shrinks geometrically from
   ``eps_start`` to ``ε`` over the first 60% of the steps (a continuation: the loose start
   lets the model travel along the flat directions of the likelihood, the tight end restores
   the fit; the learning rate decays from ``lr`` to ``lr/10``). Only iterates with
   ``NLL ≤ NLL* + ε`` count, so every reported end is the query of a model that fits the data.
3. *Tighten.* The search continues at ``ε/4`` (``z/2``).

**Robustness.** Three checks keep a failed optimisation from reading as a verdict:

- *Poor fit.* A fit's deviance ``G² = 2n·KL(P_n ‖ P̂)`` (:func:`deepscm.ncm.model.deviance`)
  is at most ``χ²_{2^{|V|}−1}`` when the graph is right and the optimiser found the MLE; a fit
  above its 0.999 quantile is a local optimum and is refitted (fresh seed, twice the steps;
  ``refits``), the best kept.
- *Search that left the basin.* A loose budget can carry the model into another local optimum
  of the likelihood, from which it never returns within ``ε``; a search whose last iterate is
  outside the budget is rerun with ``eps_start`` ten times smaller (``search_retries``).
  A search that stayed feasible but stalled short of the end of a flat direction is continued
  from its most extreme data-fitting iterate (``extend`` rounds, default 2: on the 8 NCM-paper
  graphs × 5 seeds, at 300 search and 100 tighten steps, the ends within 0.05 of the sharp
  LP bound rose from 8/15 without it to 13/15, at up to twice the search time;
  ``benchmarks/results/ncm.extend0.md``, ``ncm.steps300.md``; at the default steps 15/15,
  ``ncm.no_slow.md``).
- *Slow multiplier.* With the multiplier step ``η`` the multiplier ``λ`` can catch up with the
  shrinking budget before the query has travelled along the flat direction, and the search
  settles near the fit (iv seed 0 of the benchmark: its first lower search ends at 0.046, the
  LP bound is −0.058; with ``η/10`` it reaches −0.066). With ``slow_multiplier`` each search
  is run a second time from its start with the step ``η·slow_multiplier``: ``λ`` rises that
  many times slower, the query is pushed further before the budget binds, and only the
  iterates within the budget count, so the two runs together reach at least as far as the
  first alone; the continuation rounds start from the most extreme data-fitting iterate of
  either run. The default ``"auto"`` runs it (at :data:`AUTO_SLOW_MULTIPLIER`) exactly when
  the ID algorithm proves the query not identifiable: there the answer is an interval, and
  the search's inner approximation of it is worth a second search. On the 8 NCM-paper graphs
  × 5 seeds at the default steps it widened bad_m's intervals on 3 of 5 seeds (ends moved by
  up to 0.34 toward the LP's outer bound) and left the clique graphs' ends within 0.05 of the
  sharp bound on 15/15 (as without it), at 1.14× the benchmark's time
  (``benchmarks/results/ncm.md`` against ``ncm.no_slow.md``). For an identifiable query it
  only widened the profile interval (frontdoor seed 4 past the tolerance at 300 search
  steps, ``ncm.slow.md``), so it does not run there. The symbolic verdict so decides how
  hard the search pushes, never the neural verdict itself: every reported end is still the
  query of a model that fits the data.
- *Unconverged fit.* A search that finds ``NLL < NLL* − ε/4`` shows stage 1 had not converged
  (the budget was then measured from the wrong ``NLL*``): every search's lowest iterate below
  that is polished by MLE, the best becomes the fit, and the searches rerun (``passes``), each
  restart from its own polished iterate while that fits within ``ε/4`` of the new ``NLL*``
  (else from the best). Restarting them all from the one best model would make every restart
  the same search: on bad_m seed 0 of the benchmark both then stalled at [0.016, 0.079] and
  the query was called identifiable; from their own iterates one reaches [−0.096, 0.264].

A result whose best fit still fails the deviance check, or whose last pass still found a better
fit, has ``fit_ok`` / ``converged`` false and warns (:class:`DeepSCMWarning`): its verdict is
not to be trusted. The estimate averages only the fits within ``ε/4`` of ``NLL*``.

**Verdict.** For an identifiable query the interval width scales as ``√ε`` (``w(ε) = 2z·s.e.``),
for a non-identifiable one ``w(ε) ≈ W + 2z·s.e.`` with ``W > 0`` the identified set's width.
So per restart ``W₀ = 2·w(ε/4) − w(ε)`` extrapolates the width to an exact fit, and
``s.e. = w(ε/4)/z`` estimates the plug-in standard error. The query is declared identifiable
when ``mean(W₀) + 1.65·s.e.(W₀) < τ`` (the restart-spread rule of
``CausalAILab/NCMCounterfactuals``) with ``τ = s.e.``: the identified set, extrapolated to
an exact fit, is narrower than one standard error of the estimate at this ``n``. (Under
non-identifiability the estimated s.e. includes ``W/z``, so the rule detects sets wider
than about ``s.e./(1 − 1/z) ≈ 2·s.e.``.) The estimate is then the mean of the good fits' query
(above). ``[lower, upper]`` is the envelope over restarts at level ``ε``: each end
is the value of a data-fitting NCM, so it is an inner approximation of the profile interval
(the search can stop short), which in turn covers the population's identified set.

Example:
    >>> from deepscm.datasets.confounded import load_confounded
    >>> scm = load_confounded("bow", seed=0)
    >>> res = neural_identify(scm.graph, scm.sample(5000, seed=1), "ate(x, y)", fit_steps=150,
    ...                       search_steps=150, tighten_steps=50)
    >>> res.identifiable
    False
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from scipy.stats import chi2
from tqdm.auto import tqdm

from ..errors import ConfigError, DeepSCMWarning, NotIdentifiableError, TrainingError
from ..graph import CausalGraph
from ..identification import identify
from .model import NeuralCausalModel, deviance
from .queries import BinaryQuery, as_graph, binary_table, parse_binary_query

__all__ = ["AUTO_SLOW_MULTIPLIER", "NeuralIDResult", "neural_identify"]

#: ``slow_multiplier="auto"``'s factor on the multiplier step for a query the ID algorithm
#: proves not identifiable (measured in ``benchmarks/results/ncm.md`` and ``ncm.slow.md``).
AUTO_SLOW_MULTIPLIER = 0.1


@dataclass
class NeuralIDResult:
    """The outcome of :func:`neural_identify`.

    Attributes:
        query: the query, readable.
        lower, upper: the envelope over restarts of the minimised and maximised query at the
            NLL budget ``eps`` (the profile-likelihood interval at ``level``).
        identifiable: ``gap + 1.65 · gap_se < se`` (module docstring).
        estimate: the mean over restarts of the MLE fits' query when identifiable, else ``None``.
        gap, gap_se: mean and standard error over restarts of the extrapolated width
            ``W₀ = 2·w(ε/4) − w(ε)``.
        se: the estimated standard error of the plug-in query, ``mean w(ε/4) / z``; it is the
            decision's tolerance.
        id_verdict: ``"identifiable"``, ``"not identifiable"`` (the ID algorithm, Shpitser &
            Pearl 2006) or ``"not checked"`` (a counterfactual query, beyond ID).
        id_estimand: the ID formula when it exists.
        restarts: one dict per restart (``seed``, ``nll_fit``, ``nll_search_min``, ``tv_fit`` (total variation
            between the fitted NCM's ``P̂(v)`` and the data), ``estimate``, ``lower``,
            ``upper``, ``lower_tight``, ``upper_tight`` (at ``ε/4``), ``start``, ``seconds``,
            ``deviance`` (its fit's ``G²``), ``refits``, ``good_fit`` (within ``ε/4`` of the final
            ``NLL*``), ``search_retries``, ``search_extensions``, ``nll_start`` (the NLL of the
            model its last pass searched from)).
        message: how the neural verdict relates to the ID algorithm's.
        level, eps: the confidence level and the NLL budget ``χ²_{1,level}/(2n)`` (nats/row).
        nll_fit: the best fitted NLL ``NLL*`` (lowered when a search found a better fit).
        fit_ok: the best fit's deviance ``G²`` is within ``χ²_{2^{|V|}−1, 0.999}``
            (:func:`deepscm.ncm.model.deviance`); when ``False`` the verdict is unreliable (a
            :class:`DeepSCMWarning` says so).
        converged: no search found a model more than ``ε/4`` below ``NLL*`` in the last pass.
        passes: search passes run (a pass reruns the searches from a refined, better fit).
        deviance: ``G²`` of the best fit.
        slow_multiplier: the multiplier factor of the second search (``None``: none ran).
    """

    query: str
    lower: float
    upper: float
    identifiable: bool
    estimate: float | None
    gap: float
    gap_se: float
    se: float
    id_verdict: str
    id_estimand: str | None
    restarts: list[dict] = field(default_factory=list)
    message: str = ""
    level: float = 0.95
    eps: float = 0.0
    nll_fit: float = float("nan")
    fit_ok: bool = True
    converged: bool = True
    passes: int = 1
    deviance: float = float("nan")
    slow_multiplier: float | None = None

    @property
    def tolerance(self) -> float:
        """The decision threshold τ (= :attr:`se`)."""
        return self.se

    @property
    def tight(self) -> tuple[float, float]:
        """The envelope ``(lower, upper)`` at the budget ``ε/4``."""
        return (float(min(r["lower_tight"] for r in self.restarts)),
                float(max(r["upper_tight"] for r in self.restarts)))

    @property
    def spread(self) -> tuple[float, float]:
        """Standard deviations of the lower and upper ends over the restarts."""
        lo = [r["lower"] for r in self.restarts]
        hi = [r["upper"] for r in self.restarts]
        return float(np.std(lo)), float(np.std(hi))

    def summary(self) -> str:
        verdict = "identifiable" if self.identifiable else "not identifiable"
        tv = max(r["tv_fit"] for r in self.restarts)
        lines = [
            f"Neural identification of {self.query}: {verdict} "
            f"(extrapolated width {self.gap:.4f} + 1.65·s.e. {self.gap_se:.4f} vs tolerance = s.e. {self.se:.4f})",
            f"  {self.level:.0%} profile-likelihood interval [{self.lower:.4f}, {self.upper:.4f}] over "
            f"{len(self.restarts)} restart(s) (NLL budget {self.eps:.2g} nats/row), spread (sd) lower "
            f"{self.spread[0]:.4f}, upper {self.spread[1]:.4f}; fit: NLL {self.nll_fit:.4f}, max TV {tv:.4f}",
        ]
        if self.estimate is not None:
            lines.append(f"  estimate {self.estimate:.4f} ± {self.se:.4f}")
        lines.append(f"  ID algorithm: {self.id_verdict}" + (f": {self.id_estimand}" if self.id_estimand else ""))
        if self.message:
            lines.append(f"  {self.message}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        est = f", estimate={self.estimate:.4f}" if self.estimate is not None else ""
        return (
            f"NeuralIDResult({self.query}: [{self.lower:.4f}, {self.upper:.4f}], "
            f"identifiable={self.identifiable}{est}, ID: {self.id_verdict})"
        )


def neural_identify(
    graph: CausalGraph | str,
    data: pd.DataFrame,
    query: str | BinaryQuery,
    *,
    restarts: int = 2,
    fit_steps: int = 400,
    search_steps: int = 400,
    tighten_steps: int = 150,
    lr: float = 3e-2,
    level: float = 0.95,
    eps_start: float = 0.05,
    penalty: tuple[float, float] = (0.01, 0.01),
    latent: str = "discrete",
    u_dim: int | None = None,
    hidden: tuple[int, ...] = (32, 32),
    mc: int = 256,
    eval_mc: int = 10_000,
    seed: int = 0,
    progress: bool = False,
    refits: int = 2,
    search_retries: int = 2,
    passes: int = 3,
    extend: int = 2,
    extend_tol: float = 0.005,
    slow_multiplier: float | str | None = "auto",
) -> NeuralIDResult:
    """Decide identifiability of a binary ``query`` and bound it by the staged search (module docstring).

    Args:
        graph: the causal graph (``<->`` for hidden confounders).
        data: binary (0/1) data with a column per node; ``n = len(data)`` sets ``ε``.
        query: ``"p(y | do(x))"`` (``P(y=1 | do(x=1))``), ``"p(y | do(x=0))"``,
            ``"ate(x, y)"`` or ``"ett(x, y)"``.
        restarts: independent fits, each pushed up and down; their spread enters the decision.
        fit_steps, search_steps, tighten_steps: Adam steps of stage 1, 2 (level ``ε``) and 3
            (``ε/4``, at ``lr/3``).
        lr: Adam learning rate of stages 1 and 2.
        level: confidence level of the profile-likelihood interval, ``ε = χ²_{1,level}/(2n)``.
        eps_start: the loose NLL budget (nats) the continuation starts from.
        penalty: ``(ρ, η)`` of the augmented Lagrangian.
        latent, u_dim, hidden: the NCM (:class:`NeuralCausalModel`).
        mc: Monte-Carlo draws per step for ``latent="uniform"``; ``eval_mc`` for its reported
            values (the discrete latent is exact and ignores both).
        seed: restart ``r`` fits an NCM seeded ``seed + r``.
        progress: a progress bar over the restarts.
        refits: a fit whose deviance ``G²`` exceeds ``χ²_{df, 0.999}`` (:func:`deviance`) is
            refitted from a fresh seed with twice the steps, at most this many times.
        search_retries: a search that ends outside the NLL budget (it left the basin of the
            fit) is rerun from the same start with ``eps_start`` ten times smaller, at most
            this many times.
        passes: when a search finds a model with NLL below ``NLL* − ε/4`` (stage 1 had not
            converged), the searches' lowest iterates are polished, the best becomes the fit,
            and the searches rerun from them; at most this many passes in all.
        extend, extend_tol: after a search, up to ``extend`` continuation rounds, each started
            from the most extreme data-fitting iterate so far with the loose budget again, while
            a round moves the end by more than ``extend_tol`` (a search that stalled short of the
            end of a flat direction goes on; each round costs one search).
        slow_multiplier: each search also runs once from its start with the multiplier step
            ``η · slow_multiplier`` (module docstring, *slow multiplier*; costs one search per
            direction); ``None`` turns it off; ``"auto"`` (default) uses
            :data:`AUTO_SLOW_MULTIPLIER` when the ID algorithm proves the query not
            identifiable and ``None`` otherwise. The value used is the result's
            ``slow_multiplier``.

    Raises:
        GraphError: a query naming unknown nodes, or a cyclic graph.
        DataError: a node missing from the data, or non-binary data.
        ConfigError: ``restarts < 1``, ``level`` outside (0, 1) or non-positive steps.
    """
    if extend < 0 or extend_tol < 0 or not (
            slow_multiplier is None or slow_multiplier == "auto"
            or (isinstance(slow_multiplier, (int, float)) and slow_multiplier > 0)):
        raise ConfigError(f"extend={extend} and extend_tol={extend_tol} must be >= 0, "
                          f"slow_multiplier={slow_multiplier!r} > 0, 'auto' or None")
    if (restarts < 1 or not 0 < level < 1 or min(fit_steps, search_steps, tighten_steps, passes) < 1
            or eps_start <= 0 or min(refits, search_retries) < 0):
        raise ConfigError(
            f"restarts={restarts}, passes={passes} and the step counts must be >= 1, level={level} in (0, 1), "
            f"eps_start > 0, refits={refits} and search_retries={search_retries} >= 0"
        )
    g = as_graph(graph)
    q = parse_binary_query(query).check(g)
    binary_table(g, data)  # fail early on missing or non-binary columns
    id_verdict, id_estimand = _id_verdict(g, q)
    if slow_multiplier == "auto":
        slow_multiplier = AUTO_SLOW_MULTIPLIER if id_verdict == "not identifiable" else None
    n = len(data)
    z = math.sqrt(chi2.ppf(level, 1))
    eps = z**2 / (2 * n)
    fits = []
    for r in tqdm(range(restarts), disable=not progress, desc="NCM fits", leave=False):
        t0 = time.perf_counter()
        best: tuple[NeuralCausalModel, float, float] | None = None
        for attempt in range(refits + 1):
            ncm = NeuralCausalModel(g, latent=latent, u_dim=u_dim, hidden=hidden, seed=seed + r + 1000 * attempt)
            ncm.fit(data, steps=fit_steps * (1 + min(attempt, 1)), lr=lr, mc=mc, final_lr=lr / 10)
            g2, df = deviance(ncm, data, mc=eval_mc)
            if best is None or g2 < best[1]:
                best = (ncm, g2, attempt)
            if g2 <= chi2.ppf(0.999, df):
                break
        ncm, g2, attempt = best
        fits.append({"model": ncm, "nll": ncm.nll(data, mc=eval_mc), "g2": g2, "df": df, "refits": attempt,
                     "seconds": time.perf_counter() - t0})
    rows, w = fits[0]["model"]._tensors(data, None)
    nll_best = min(f["nll"] for f in fits)
    best_model = min(fits, key=lambda f: f["nll"])["model"]
    traces: list[dict[str, list[np.ndarray]]] = [{"upper": [], "lower": []} for _ in fits]
    retries = [0] * len(fits)
    extensions = [0] * len(fits)
    search_seconds = [0.0] * len(fits)
    n_passes = 0
    # each restart's start: its own fit, or (after a pass that found better fits) the polished
    # lowest iterate of its own search, used while it fits within ε/4 of the best; else the best
    starts: list[tuple[NeuralCausalModel, float]] = [(f["model"], f["nll"]) for f in fits]
    for n_passes in range(1, passes + 1):
        cache: dict[int, tuple[dict[str, np.ndarray], list | None, float, int, int, float]] = {}
        used: list[NeuralCausalModel] = []
        for r, fit in enumerate(tqdm(fits, disable=not progress, desc="NCM search", leave=False)):
            own, own_nll = starts[r]
            start = own if own_nll <= nll_best + eps / 4 else best_model  # fits at both budgets
            used.append(start)
            fit["nll_start"] = own_nll if start is own else nll_best
            fit["start"] = ("own fit" if start is fit["model"] else "best fit" if n_passes == 1 else "refined fit")
            computed_here = id(start) not in cache
            if computed_here:
                t0 = time.perf_counter()
                found: dict[str, np.ndarray] = {}
                low_state, low_nll, k, ext = None, float("inf"), 0, 0
                for direction, sign in (("upper", 1.0), ("lower", -1.0)):
                    found[direction], state, state_nll, n_retry, n_ext = _push(
                        start, rows, w, q, sign, nll_best, eps, eps_start, (search_steps, tighten_steps), lr,
                        penalty, mc, search_retries, extend, extend_tol, slow_multiplier,
                    )
                    k += n_retry
                    ext += n_ext
                    if state_nll < low_nll:
                        low_state, low_nll = state, state_nll
                cache[id(start)] = (found, low_state, low_nll, k, ext, time.perf_counter() - t0)
            found, _, _, k, ext, secs = cache[id(start)]
            for direction in ("upper", "lower"):
                traces[r][direction].append(found[direction])
            retries[r] += k
            extensions[r] += ext
            search_seconds[r] += secs if computed_here else 0.0
        if min(c[2] for c in cache.values()) >= nll_best - eps / 4 or n_passes == passes:
            break
        # stage 1 had not converged: polish every search's lowest iterate that beats the fit by
        # MLE; the best becomes the fit, and each restart searches again from its own polished
        # iterate while it fits (the restarts stay distinct: one shared start would give every
        # restart the same, possibly stalled, search)
        polished = {key: _polish(best_model, c[1], data, fit_steps, lr, mc, eval_mc)
                    for key, c in cache.items() if c[2] < nll_best - eps / 4}
        best_model, refined_nll = min(polished.values(), key=lambda m: m[1])
        nll_best = min(nll_best, refined_nll)
        for r, start in enumerate(used):
            if id(start) in polished:
                starts[r] = polished[id(start)]
    nll_search_min = min(float(t[0].min()) for tr in traces for d in ("upper", "lower") for t in tr[d])
    converged = nll_search_min >= nll_best - eps / 4
    g2_best, df = deviance(best_model, data, mc=eval_mc)
    fit_ok = g2_best <= chi2.ppf(0.999, df)
    runs = []
    for r, fit in enumerate(fits):
        ncm = fit["model"]
        good = fit["nll"] <= nll_best + eps / 4
        run: dict = {
            "seed": seed + r, "nll_fit": fit["nll"], "tv_fit": ncm.tv_distance(data, mc=eval_mc),
            "deviance": fit["g2"], "refits": fit["refits"], "estimate": ncm.query(q, mc=eval_mc),
            "good_fit": bool(good), "start": fit["start"], "search_retries": retries[r],
            "search_extensions": extensions[r], "nll_start": fit["nll_start"],
            "nll_search_min": min(float(t[0].min()) for d in ("upper", "lower") for t in traces[r][d]),
            "seconds": fit["seconds"] + search_seconds[r],
        }
        for direction, sign in (("upper", 1.0), ("lower", -1.0)):
            nlls, values = np.concatenate(traces[r][direction], axis=1)
            for key, limit in ((direction, eps), (f"{direction}_tight", eps / 4)):
                ok = nlls <= nll_best + limit
                run[key] = float(sign * (sign * values[ok]).max()) if ok.any() else float("nan")
        runs.append(run)
    if any(math.isnan(run[k]) for run in runs for k in ("upper", "lower", "upper_tight", "lower_tight")):
        raise TrainingError(
            "a constrained search never came within the NLL budget of the best fit; raise fit_steps "
            "(the fits disagree) or search_steps"
        )
    w1 = np.array([run["upper"] - run["lower"] for run in runs])
    w2 = np.array([run["upper_tight"] - run["lower_tight"] for run in runs])
    w0 = 2 * w2 - w1
    gap = float(w0.mean())
    gap_se = float(w0.std(ddof=1) / math.sqrt(len(w0))) if len(w0) > 1 else 0.0
    se = float(w2.mean() / z)
    identifiable = gap + 1.65 * gap_se < se
    lower = float(min(run["lower"] for run in runs))
    upper = float(max(run["upper"] for run in runs))
    # the point comes from the models that fit: the good restarts, or the refined fit
    points = [run["estimate"] for run in runs if run["good_fit"]] or [best_model.query(q, mc=eval_mc)]
    estimate = float(np.mean(points)) if identifiable else None
    message = _message(identifiable, id_verdict)
    if not fit_ok:
        message = (f"The best NCM fits the data poorly (deviance G² = {g2_best:.1f} > χ²_{{{df}, 0.999}} = "
                   f"{chi2.ppf(0.999, df):.1f} after {refits} refit(s)): the graph may be wrong or the fit failed; "
                   "the verdict and the interval are unreliable. " + message).strip()
    elif not converged:
        message = ("The searches kept finding better fits than stage 1 after "
                   f"{passes} pass(es): raise fit_steps or passes; the verdict is unreliable. " + message).strip()
    if not (fit_ok and converged):
        warnings.warn(message, DeepSCMWarning, stacklevel=2)
    return NeuralIDResult(
        str(q), lower, upper, identifiable, estimate, gap, gap_se, se, id_verdict, id_estimand, runs, message,
        level=level, eps=eps, nll_fit=nll_best, fit_ok=bool(fit_ok), converged=bool(converged), passes=n_passes,
        deviance=float(g2_best), slow_multiplier=slow_multiplier,
    )


def _polish(
    template: NeuralCausalModel, state: list[torch.Tensor], data: pd.DataFrame, fit_steps: int, lr: float,
    mc: int, eval_mc: int,
) -> tuple[NeuralCausalModel, float]:
    """A copy of ``template`` at the parameters ``state``, refined by ``fit_steps // 4`` MLE steps
    at ``lr/10`` (kept at ``state`` itself when the polish moves away), and its NLL."""
    refined = _with_parameters(copy.deepcopy(template), state)
    start_nll = refined.nll(data, mc=eval_mc)
    refined.fit(data, steps=max(1, fit_steps // 4), lr=lr / 10, mc=mc, final_lr=lr / 100)
    refined_nll = refined.nll(data, mc=eval_mc)
    if refined_nll > start_nll:  # the polish moved away: keep the iterate itself
        return _with_parameters(refined, state), start_nll
    return refined, refined_nll


def _with_parameters(model: NeuralCausalModel, state: list[torch.Tensor]) -> NeuralCausalModel:
    """``model`` with its parameters overwritten in place by ``state`` (in ``parameters()`` order)."""
    with torch.no_grad():
        for p, v in zip(model.parameters(), state):
            p.copy_(v)
    return model


def _push(
    start: NeuralCausalModel,
    rows: dict[str, torch.Tensor],
    w: torch.Tensor,
    q: BinaryQuery,
    sign: float,
    nll_ref: float,
    eps: float,
    eps_start: float,
    steps: tuple[int, int],
    lr: float,
    penalty: tuple[float, float],
    mc: int,
    retries: int,
    extend: int,
    extend_tol: float,
    slow: float | None = None,
) -> tuple[np.ndarray, list[torch.Tensor] | None, float, int, int]:
    """One direction of the search from ``start``: :func:`_constrained`, rerun from the start
    with a 10× tighter loose budget while it ends outside ``nll_ref + eps`` (at most
    ``retries`` times); with ``slow``, once more from the start with the multiplier step
    ``η · slow``; then up to ``extend`` rounds restarted from the most extreme feasible
    iterate so far while a round gains more than ``extend_tol``. Returns the joint trace
    (2, T), the lowest-NLL parameters and NLL, and the numbers of retries and rounds."""
    parts: list[np.ndarray] = []
    low_state, low_nll = None, math.inf
    top, top_value = None, -math.inf
    n_retry = n_ext = 0
    es = eps_start
    origin: list[torch.Tensor] | None = None
    pen = penalty
    slow_pending = slow is not None
    while True:
        model = copy.deepcopy(start)
        if origin is not None:
            _with_parameters(model, origin)
        nlls, values, state, state_nll, extreme, extreme_value = _constrained(
            model, rows, w, q, sign, nll_ref, eps, es, steps, lr, pen, mc, keep_lowest=True,
        )
        parts.append(np.stack([nlls, values]))
        if state_nll < low_nll:
            low_state, low_nll = state, state_nll
        gain = -math.inf if extreme is None else sign * extreme_value - top_value
        if gain > 0:
            top, top_value = extreme, sign * extreme_value
        if (origin is None and pen is penalty and nlls[-1] > nll_ref + eps and es > 2 * eps
                and n_retry < retries):
            n_retry += 1  # it left the basin of the fit: again from the start, less loose
            es = max(2 * eps, es / 10)
            continue
        if slow_pending:  # once more from the start, the multiplier slower: the query travels further
            slow_pending, pen = False, (penalty[0], penalty[1] * slow)
            continue
        pen = penalty
        if n_ext >= extend or top is None or (origin is not None and gain <= extend_tol):
            break
        n_ext += 1
        origin = top
    return np.concatenate(parts, axis=1), low_state, low_nll, n_retry, n_ext


def _constrained(
    model: NeuralCausalModel,
    rows: dict[str, torch.Tensor],
    w: torch.Tensor,
    q: BinaryQuery,
    sign: float,
    nll_ref: float,
    eps: float,
    eps_start: float,
    steps: tuple[int, int],
    lr: float,
    penalty: tuple[float, float],
    mc: int,
    keep_lowest: bool = False,
) -> tuple:
    """``max_θ sign·Q̂(θ)`` s.t. ``NLL(θ) ≤ nll_ref + eps`` (stage 2, ``steps[0]`` Adam steps)
    and then s.t. ``NLL(θ) ≤ nll_ref + eps/4`` (stage 3, ``steps[1]``), by the augmented
    Lagrangian of the module docstring.

    In stage 2 the budget shrinks geometrically from ``eps_start`` to ``eps`` over the first
    60% of the steps; the learning rate decays log-linearly from ``lr`` to ``lr/10`` over stage 2
    and stays there in stage 3 (holding a budget of ~1e-4 nats needs small steps). Returns the
    trace of ``(NLL, Q̂)`` over the iterates (the caller keeps the feasible ones; the start is
    a fit); with ``keep_lowest`` also the parameters of the lowest-NLL iterate and its NLL
    (a check that the start was a converged fit), and of the most extreme iterate within
    ``nll_ref + eps`` and its query value (``None, ∓inf`` when none).
    """
    rho, eta = penalty
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    anneal = max(1, int(0.6 * steps[0]))
    trace = np.empty((2, steps[0] + steps[1]))
    lam = 0.0
    lowest: list[torch.Tensor] | None = None
    lowest_nll = float("inf")
    extreme: list[torch.Tensor] | None = None
    extreme_value = -math.inf
    for t in range(steps[0] + steps[1]):
        if t < steps[0]:
            budget = eps * (eps_start / eps) ** max(0.0, 1 - t / anneal) if eps_start > eps else eps
            rate = lr * 0.1 ** (t / max(1, steps[0] - 1))
        else:
            budget, rate = eps / 4, lr / 10
        for group in opt.param_groups:
            group["lr"] = rate
        opt.zero_grad()
        nll = model._nll(rows, w, mc)
        value = model._query_tensor(q, mc)
        trace[:, t] = float(nll.detach()), float(value.detach())
        if keep_lowest and trace[0, t] < lowest_nll:
            lowest_nll = trace[0, t]
            lowest = [p.detach().clone() for p in model.parameters()]
        if keep_lowest and trace[0, t] <= nll_ref + eps and sign * trace[1, t] > extreme_value:
            extreme_value = sign * trace[1, t]
            extreme = [p.detach().clone() for p in model.parameters()]
        c = (nll - nll_ref - budget) / budget
        loss = -sign * value + lam * c + 0.5 * rho * torch.relu(c) ** 2
        if not torch.isfinite(loss):
            raise TrainingError(f"the constrained NCM search diverged at step {t}; lower lr={lr}")
        loss.backward()
        opt.step()
        lam = max(0.0, lam + eta * float(c.detach()))
    if keep_lowest:
        return trace[0], trace[1], lowest, lowest_nll, extreme, sign * extreme_value
    return trace[0], trace[1]


def _id_verdict(g: CausalGraph, q: BinaryQuery) -> tuple[str, str | None]:
    if q.id_text is None:
        return "not checked", None
    try:
        return "identifiable", str(identify(g, q.id_text))
    except NotIdentifiableError:
        return "not identifiable", None


def _message(identifiable: bool, id_verdict: str) -> str:
    if id_verdict == "not identifiable":
        head = "The ID algorithm proves the query not identifiable; the neural bounds ran anyway"
        if identifiable:
            return head + ", but their gap fell below the tolerance: the data may barely constrain the confounding, or the search stopped short; do not trust the point."
        return head + ": [lower, upper] is the partial-identification interval."
    if id_verdict == "identifiable" and not identifiable:
        return ("The ID algorithm says identifiable but the min/max NCMs disagree beyond the tolerance: "
                "raise fit_steps/search_steps or restarts so the search converges.")
    if id_verdict == "not checked":
        return "A counterfactual query: the ID algorithm does not apply, the neural verdict stands alone."
    return ""
