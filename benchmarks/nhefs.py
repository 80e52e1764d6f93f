"""NHEFS benchmark: the effect of quitting smoking on weight gain (Hernán & Robins, "Causal
Inference: What If", ch. 12–13), estimated by deepscm's estimators and its deep SCM.

Data: :func:`deepscm.datasets.effects.load_nhefs` — 1,566 uncensored participants, treatment
``qsmk``, outcome ``wt82_71`` (kg), the book's nine confounders.

Estimates of the ATE with 95 % intervals:

- ``IPW`` — the book's propensity model (Program 12.2: logistic regression on the book design
  with squares and dummies), unpenalised (standardised inputs, ``C=inf``), no clipping,
  stabilised weights; Wald interval from the influence function;
- ``AIPW`` — the same propensity model, default cross-fitted gradient-boosting outcome models;
  ``AIPW-linear`` — linear outcome models per arm (a fully interacted linear model); both with
  influence-function intervals;
- ``TARNet``, ``Dragonnet`` (defaults, book design) — percentile bootstrap of ``--bootstrap``
  refits (their ``ate_interval``);
- ``DeepSCM`` — ``DeepSCM`` on the raw covariates with the graph covariate → qsmk,
  covariate → wt82_71, qsmk → wt82_71, fit defaults; ``scm.ate("qsmk", "wt82_71")``; it has
  no interval of its own, so a percentile bootstrap over ``--scm-bootstrap`` refits on
  resampled rows (each with its own seed).

Book values (What If §12.2, §13.3, §14.5): IP weighting 3.44 kg (95 % CI 2.4–4.5),
standardisation 3.52 (2.6–4.5), g-estimation 3.45.

Usage:
    python benchmarks/nhefs.py                # 50 bootstrap refits (neural), 20 (DeepSCM)
    python benchmarks/nhefs.py --quick        # 5 / 3 refits, results/nhefs_quick.json
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from deepscm import DeepSCM
from deepscm.datasets.effects import NHEFS_COVARIATES, EffectData, load_nhefs
from deepscm.estimators import AIPW, IPW, Dragonnet, TARNet
from deepscm.estimators.base import derived_seeds
from deepscm.io import to_jsonable
from machine import machine_info

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent
DEFAULT_OUT = ROOT / "results" / "nhefs.json"
QUICK_OUT = ROOT / "results" / "nhefs_quick.json"
BOOK_IPW = 3.44
BOOK = {
    "IP weighting (book)": (3.44, (2.4, 4.5), "What If §12.2, Program 12.3"),
    "standardisation (book)": (3.52, (2.6, 4.5), "What If §13.3, Program 13.4"),
    "g-estimation (book)": (3.45, None, "What If §14.5, Program 14.2"),
}
NEURAL = ("TARNet", "Dragonnet", "DeepSCM")

log = print


def book_propensity() -> Any:
    """Unpenalised logistic regression (What If Program 12.2's model) on standardised inputs."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=np.inf, max_iter=10_000))


def scm_graph() -> str:
    """Every confounder → qsmk and → wt82_71, and qsmk → wt82_71."""
    edges = [f"{c} -> qsmk; {c} -> wt82_71" for c in NHEFS_COVARIATES]
    return "; ".join(edges + ["qsmk -> wt82_71"])


def scm_ate(frame: pd.DataFrame, seed: int) -> float:
    scm = DeepSCM(scm_graph()).fit(frame, seed=seed, progress=False)
    return scm.ate("qsmk", "wt82_71", treated=1, control=0, seed=seed)


def run_deepscm(raw: EffectData, n_boot: int, seed: int = 0) -> dict:
    """Point estimate from one fit; percentile interval from ``n_boot`` refits on resampled rows."""
    frame = raw.to_frame()
    started = time.perf_counter()
    ate = scm_ate(frame, seed)
    fit_s = time.perf_counter() - started
    seeds = derived_seeds(seed, n_boot + 1)
    rng = np.random.default_rng(seeds[0])
    boots = []
    for s in seeds[1:]:
        rows = rng.integers(0, len(frame), len(frame))
        boots.append(scm_ate(frame.iloc[rows].reset_index(drop=True), s))
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return {"ate": ate, "ci": (float(lo), float(hi)), "fit_s": fit_s, "bootstrap": boots,
            "interval": f"percentile bootstrap, {n_boot} refits"}  # fmt: skip


def run_estimator(name: str, book: EffectData, n_boot: int) -> dict:
    est = {
        "IPW": lambda: IPW(propensity_model=book_propensity(), clip=None, stabilized=True),
        "AIPW": lambda: AIPW(propensity_model=book_propensity(), clip=None),
        "AIPW-linear": lambda: AIPW(outcome_model=LinearRegression(), propensity_model=book_propensity(), clip=None),
        "TARNet": lambda: TARNet(n_bootstrap=n_boot, progress=False),
        "Dragonnet": lambda: Dragonnet(n_bootstrap=n_boot, progress=False),
    }[name]()  # fmt: skip
    started = time.perf_counter()
    est.fit(book.X, book.T, book.Y)
    fit_s = time.perf_counter() - started
    ci = est.ate_interval(alpha=0.05)
    interval = f"percentile bootstrap, {n_boot} refits" if name in NEURAL else "Wald, influence function"
    return {"ate": est.ate(), "ci": ci, "fit_s": fit_s, "interval": interval,
            "params": {k: repr(v) for k, v in est.get_params().items()}}  # fmt: skip


def table(results: dict) -> str:
    lines = [
        "### NHEFS: ATE of quitting smoking (qsmk) on weight change 1971–82 (wt82_71, kg), n = 1566",
        "",
        "| method | ATE | 95 % interval | covers 3.44 | interval from | fit s |",
        "|---|---:|---:|:---:|---|---:|",
    ]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | failed: {r['error']} | | | | |")
            continue
        lo, hi = r["ci"]
        covers = "yes" if lo <= BOOK_IPW <= hi else "**no**"
        lines.append(f"| {name} | {r['ate']:.2f} | {lo:.2f} – {hi:.2f} | {covers} | {r['interval']} | "
                     f"{r['fit_s']:.1f} |")  # fmt: skip
    for name, (v, ci, src) in BOOK.items():
        cell = "—" if ci is None else f"{ci[0]:.1f} – {ci[1]:.1f}"
        lines.append(f"| {name} | {v:.2f} | {cell} | | {src} | |")
    return "\n".join(lines)


def targets(results: dict) -> dict:
    def ate(name: str) -> float:
        return results.get(name, {}).get("ate", float("nan"))

    out: dict[str, Any] = {
        "ipw_ate": ate("IPW"),
        "ipw_reproduces_3.44": bool(abs(ate("IPW") - BOOK_IPW) <= 0.005),
        "aipw_ate": ate("AIPW"),
        "aipw_within_0.1": bool(abs(ate("AIPW") - BOOK_IPW) <= 0.1),
        "aipw_linear_within_0.1": bool(abs(ate("AIPW-linear") - BOOK_IPW) <= 0.1),
    }
    for name in NEURAL:
        ci = results.get(name, {}).get("ci")
        out[f"{name}_covers_3.44"] = bool(ci is not None and ci[0] <= BOOK_IPW <= ci[1])
    return out


def targets_text(t: dict) -> str:
    def mark(ok: bool) -> str:
        return "met" if ok else "**missed**"

    lines = [
        "### Targets",
        "",
        f"- IPW reproduces 3.44: {t['ipw_ate']:.3f} — {mark(t['ipw_reproduces_3.44'])}",
        f"- AIPW within 0.1 of 3.44: {t['aipw_ate']:.3f} — {mark(t['aipw_within_0.1'])} "
        f"(AIPW-linear: {mark(t['aipw_linear_within_0.1'])})",
    ]
    lines += [f"- {n} interval covers 3.44 — {mark(t[f'{n}_covers_3.44'])}" for n in NEURAL]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", type=int, default=50, help="refits for TARNet / Dragonnet intervals")
    parser.add_argument("--scm-bootstrap", type=int, default=20, help="refits for the DeepSCM interval")
    parser.add_argument("--quick", action="store_true", help="5 / 3 refits, written to nhefs_quick.json")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    n_boot, n_scm = (5, 3) if args.quick else (args.bootstrap, args.scm_bootstrap)
    out = args.out or (QUICK_OUT if args.quick else DEFAULT_OUT)
    out.parent.mkdir(parents=True, exist_ok=True)

    info = machine_info("causaldata", "scikit-learn")
    book, raw = load_nhefs("book"), load_nhefs("raw")
    started = time.perf_counter()
    results: dict[str, dict] = {}
    for name in ("IPW", "AIPW", "AIPW-linear", "TARNet", "Dragonnet", "DeepSCM"):
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results[name] = run_deepscm(raw, n_scm) if name == "DeepSCM" else run_estimator(name, book, n_boot)
        except Exception as exc:  # noqa: BLE001 - recorded, the other methods still run
            results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=5)}
        results[name]["total_s"] = time.perf_counter() - t0
        r = results[name]
        log(f"  {name:12s} " + (r["error"] if "error" in r else
            f"ATE {r['ate']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]  ({r['total_s']:.0f}s)"))  # fmt: skip
    tgt = targets(results)
    text = table(results) + "\n\n" + targets_text(tgt)
    log("\n" + text)
    info["total_s"] = time.perf_counter() - started
    info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    result = {
        "benchmark": "nhefs",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "config": {"bootstrap_neural": n_boot, "bootstrap_deepscm": n_scm, "seed": 0,
                   "graph": scm_graph(), "rows": len(book), "book_columns": list(book.X.columns)},  # fmt: skip
        "machine": info,
        "results": results,
        "book": {k: {"ate": v, "ci": ci, "source": s} for k, (v, ci, s) in BOOK.items()},
        "targets": tgt,
    }
    out.write_text(json.dumps(to_jsonable(result), indent=1))
    out.with_suffix(".md").write_text(text + "\n")
    log(f"\nwrote {out} and {out.with_suffix('.md')} ({info['total_s'] / 60:.1f} min)")
    return result


if __name__ == "__main__":
    main()
