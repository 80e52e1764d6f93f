"""Ground-truth benchmark of deepscm against DoWhy-gcm on the SCM suite (issue 2, item 8).

Follows the DCM paper's protocol (Chao et al. 2023, arXiv:2302.00860, ``all_exp.py``; see
``shared/reference/benchmark-scms.md`` §1.1), on every selected SCM x every model x every seed:

- 5,000 training rows from the true SCM;
- intervened nodes: ``scm.intervention_nodes`` (every node with descendants; ladder x01, x04);
  20 values ``linspace(q10, q90, 20)`` from 5,000 true observational samples;
- **Int MMD**: ``mmd_dcm`` (biased V-statistic, gamma = 1/median) between 100 model
  do-samples and 100 true do-samples, on the intervened node's descendants; mean over the 20
  values, then over the intervened nodes;
- **CF MSE**: over 100 true factual units (with their true noise), on every strict descendant
  of the intervened node; truth = the SCM's counterfactual from the true noise; mean over
  values, then nodes;
- **Obs MMD**: ``mmd_dcm`` on the non-root nodes, 1,000 model vs 1,000 true samples;
- **floor**: the same metric with the model replaced by fresh true samples (CF floor = 0);
- reported x100, mean ± std over seeds, with fit time and query (sampling) time.

Models: ``flow`` (``ConditionalFlow`` defaults), ``additive`` (``AdditiveNoise``) and ``gcm``
(DoWhy's ``InvertibleStructuralCausalModel`` with ``auto.assign_causal_mechanisms`` at default
quality — the DCM paper's "ANM" baseline), each DoWhy model on its own fresh graph copy.

Everything runs in one process on one thread (torch, OpenMP/BLAS and DoWhy's joblib), so
timings compare like with like on a shared machine.

Usage:
    python benchmarks/scm_suite.py                 # the full default study (make bench)
    python benchmarks/scm_suite.py --quick         # 1 seed, 2 SCMs, a short scaling section
    python benchmarks/scm_suite.py --scms dcm --seeds 5 --models flow,gcm --no-scaling
    python benchmarks/scm_suite.py --scms all      # every continuous SCM of the suite
"""

from __future__ import annotations

import os

# One thread everywhere, set before numpy / torch / sklearn load their thread pools.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import logging
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import deepscm as ds
from deepscm.datasets import KINDS, list_scms, load_scm
from deepscm.evaluation import mmd_dcm
from deepscm.io import to_jsonable
from machine import machine_info
from deepscm.mechanisms import AdditiveNoise, ConditionalFlow

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent
DEFAULT_OUT = ROOT / "results" / "scm_suite.json"

#: The DCM paper's SCMs: the headline table.
HEADLINE = [
    "dcm_triangle_nonlinear", "dcm_triangle_nonadditive",
    "dcm_chain_nonlinear", "dcm_chain_nonadditive",
    "dcm_diamond_nonlinear", "dcm_diamond_nonadditive",
    "dcm_y_nonlinear", "dcm_y_nonadditive",
]
#: The default study: headline + ladder + a few SCMs of the other published suites.
DEFAULT_SCMS = HEADLINE + [
    "dcm_ladder_nonlinear", "dcm_ladder_nonadditive",
    "causal_nf_large_backdoor_nonlinear",
    "causal_nf_simpson_nonlinear",
    "vaca_triangle_nonadditive",
]
QUICK_SCMS = ["dcm_triangle_nonlinear", "dcm_triangle_nonadditive"]
MODELS = ("flow", "auto", "additive", "diffusion", "gcm")

N_TRAIN = 5000
N_QUANTILE = 5000
N_VALUES = 20
N_INT = 100
N_UNITS = 100
N_OBS = 1000
SCALE = 100.0

# Scaling section
SCALING_SCM = "dcm_triangle_nonlinear"
SCALING_ROWS = (1_000, 10_000, 100_000)
SCALING_EPOCHS = 20
SAMPLING_N = 1_000_000
SAMPLING_TARGET_S = 10.0

log = print


# =========================================================================== helpers
def _seed(*parts: int) -> int:
    """A deterministic seed from small integers (SCM index, seed, purpose, ...)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def _mean_std(xs: list[float]) -> tuple[float, float]:
    a = np.asarray([x for x in xs if x is not None and np.isfinite(x)], dtype=float)
    if not len(a):
        return float("nan"), float("nan")
    return float(a.mean()), float(a.std(ddof=0))


def _fmt(mean: float, std: float | None = None, digits: int = 2) -> str:
    if mean is None or not np.isfinite(mean):
        return "—"
    if std is None or not np.isfinite(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _gcm():
    """Import DoWhy-gcm quietly, single-job, without progress bars."""
    warnings.filterwarnings("ignore")
    from dowhy import gcm

    gcm.config.disable_progress_bars()
    gcm.config.set_default_n_jobs(1)
    for name in ("dowhy", "dowhy.gcm"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return gcm


# =========================================================================== models
class DeepModel:
    """deepscm's DeepSCM with one mechanism for every node."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.model: ds.DeepSCM | None = None

    def fit(self, gt, data: pd.DataFrame, seed: int) -> dict:
        mech = {"flow": ConditionalFlow(), "auto": "auto", "additive": AdditiveNoise(),
                "diffusion": "diffusion"}[self.kind]
        self.model = ds.DeepSCM(gt.graph, mechanisms=mech).fit(data, seed=seed, progress=False)
        return {"epochs_run": self.model.fit_info.get("epochs_run")}

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        return self.model.sample(n, seed=seed)

    def do_sample(self, node: str, value: float, n: int, seed: int) -> pd.DataFrame:
        return self.model.sample(n, do={node: value}, seed=seed)

    def counterfactual(self, units: pd.DataFrame, node: str, value: float) -> pd.DataFrame:
        return self.model.counterfactual(units, do={node: value})


class GcmModel:
    """DoWhy-gcm's invertible SCM with auto-assigned mechanisms (default quality)."""

    kind = "gcm"

    def __init__(self) -> None:
        self.gcm = _gcm()
        self.model = None

    def fit(self, gt, data: pd.DataFrame, seed: int) -> dict:
        import networkx as nx

        np.random.seed(seed % 2**32)  # DoWhy draws from numpy's global RNG
        graph = nx.DiGraph()  # a fresh graph per model: DoWhy stores mechanisms on it
        graph.add_nodes_from(gt.nodes)
        graph.add_edges_from((p, v) for v in gt.nodes for p in gt.parents[v])
        self.model = self.gcm.InvertibleStructuralCausalModel(graph)
        summary = self.gcm.auto.assign_causal_mechanisms(self.model, data)
        self.gcm.fit(self.model, data)
        chosen = {}
        for v in gt.nodes:
            mech = self.model.causal_mechanism(v)
            name = type(mech).__name__
            inner = getattr(mech, "prediction_model", None)
            if inner is not None:
                inner = getattr(inner, "sklearn_model", inner)
                name += f"({type(inner).__name__})"
            chosen[v] = name
        del summary
        return {"mechanisms": chosen}

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        np.random.seed(seed % 2**32)
        return self.gcm.draw_samples(self.model, num_samples=n)

    def do_sample(self, node: str, value: float, n: int, seed: int) -> pd.DataFrame:
        np.random.seed(seed % 2**32)
        return self.gcm.interventional_samples(
            self.model, {node: lambda x, v=value: v},
            num_samples_to_draw=n,
        )

    def counterfactual(self, units: pd.DataFrame, node: str, value: float) -> pd.DataFrame:
        return self.gcm.counterfactual_samples(
            self.model, {node: lambda x, v=value: v},
            observed_data=units,
        )


def make_model(kind: str):
    return GcmModel() if kind == "gcm" else DeepModel(kind)


# =========================================================================== one SCM, one seed
def _cols(frame: pd.DataFrame, cols: list[str]) -> np.ndarray:
    return frame[cols].to_numpy(dtype=float)


def truth_for(gt, scm_idx: int, seed: int) -> dict:
    """Everything the true SCM provides for one seed: data, queries, truths and floors."""
    data = gt.sample(N_TRAIN, seed=_seed(scm_idx, seed, 0))
    ref = gt.sample(N_QUANTILE, seed=_seed(scm_idx, seed, 1))
    units, noise = gt.sample(N_UNITS, seed=_seed(scm_idx, seed, 2), return_noise=True)
    non_roots = [v for v in gt.nodes if gt.parents[v]]
    obs_true = gt.sample(N_OBS, seed=_seed(scm_idx, seed, 3))
    obs_fresh = gt.sample(N_OBS, seed=_seed(scm_idx, seed, 4))
    queries = []
    for j, node in enumerate(gt.intervention_nodes):
        desc = gt.descendants(node)
        q10, q90 = np.quantile(ref[node].to_numpy(dtype=float), [0.1, 0.9])
        for k, value in enumerate(np.linspace(q10, q90, N_VALUES)):
            value = float(value)
            do = {node: value}
            true_do = gt.sample(N_INT, seed=_seed(scm_idx, seed, 5, j, k), do=do)
            fresh_do = gt.sample(N_INT, seed=_seed(scm_idx, seed, 6, j, k), do=do)
            cf_true = gt.counterfactual(units, do=do, noise=noise)
            queries.append({
                "node": node, "value": value, "desc": desc, "k": k,
                "true_do": _cols(true_do, desc), "cf_true": _cols(cf_true, desc),
                "floor_int": mmd_dcm(_cols(fresh_do, desc), _cols(true_do, desc)),
            })
    floor_obs = mmd_dcm(_cols(obs_fresh, non_roots), _cols(obs_true, non_roots))
    return {
        "data": data, "units": units, "non_roots": non_roots, "obs_true": obs_true,
        "queries": queries, "floor_obs": floor_obs,
    }


def _by_node(queries: list[dict], values: list[float]) -> dict[str, float]:
    out: dict[str, list[float]] = {}
    for q, x in zip(queries, values):
        out.setdefault(q["node"], []).append(x)
    return {n: float(np.mean(v)) for n, v in out.items()}


def floors(truth: dict) -> dict:
    per_node = _by_node(truth["queries"], [q["floor_int"] for q in truth["queries"]])
    return {
        "obs_mmd": truth["floor_obs"],
        "int_mmd": float(np.mean(list(per_node.values()))),
        "int_mmd_by_node": per_node,
        "cf_mse": 0.0,
    }


def evaluate(kind: str, gt, truth: dict, scm_idx: int, seed: int) -> dict:
    """Fit one model on the seed's training data and score it on every query."""
    model = make_model(kind)
    started = time.perf_counter()
    info = model.fit(gt, truth["data"], seed=seed)
    fit_s = time.perf_counter() - started

    started = time.perf_counter()
    obs = model.sample(N_OBS, seed=_seed(scm_idx, seed, 7))
    obs_mmd = mmd_dcm(_cols(obs, truth["non_roots"]), _cols(truth["obs_true"], truth["non_roots"]))
    int_mmd, cf_mse = [], []
    int_s = cf_s = 0.0
    units = truth["units"]
    for i, q in enumerate(truth["queries"]):
        t0 = time.perf_counter()
        do_samples = model.do_sample(q["node"], q["value"], N_INT, seed=_seed(scm_idx, seed, 8, i))
        t1 = time.perf_counter()
        cf = model.counterfactual(units, q["node"], q["value"])
        t2 = time.perf_counter()
        int_s += t1 - t0
        cf_s += t2 - t1
        int_mmd.append(mmd_dcm(_cols(do_samples, q["desc"]), q["true_do"]))
        pred = _cols(cf.reset_index(drop=True), q["desc"])
        cf_mse.append(float(np.mean((pred - q["cf_true"]) ** 2)))
    query_s = time.perf_counter() - started
    int_by_node = _by_node(truth["queries"], int_mmd)
    cf_by_node = _by_node(truth["queries"], cf_mse)
    return {
        "obs_mmd": obs_mmd,
        "int_mmd": float(np.mean(list(int_by_node.values()))),
        "cf_mse": float(np.mean(list(cf_by_node.values()))),
        "int_mmd_by_node": int_by_node,
        "cf_mse_by_node": cf_by_node,
        "fit_s": fit_s,
        "query_s": query_s,
        "int_sample_s": int_s,
        "cf_s": cf_s,
        "n_queries": len(truth["queries"]),
        **info,
    }


# =========================================================================== the study
def run_study(scms: list[str], seeds: list[int], models: list[str]) -> dict:
    raw: dict = {}
    skipped: dict = {}
    for name in scms:
        gt = load_scm(name)
        if gt.categorical:
            skipped[name] = ("has categorical nodes; the DCM protocol (quantile interventions, "
                             "MMD, MSE) is for continuous nodes")
            log(f"[skip] {name}: {skipped[name]}")
            continue
        raw[name] = {"family": gt.family, "additive": gt.additive, "nodes": len(gt.nodes),
                     "intervention_nodes": gt.intervention_nodes, "floor": [], "models": {}}
        for seed in seeds:
            started = time.perf_counter()
            truth = truth_for(gt, _seed_index(name), seed)
            raw[name]["floor"].append({"seed": seed, **floors(truth)})
            line = [f"{name} seed={seed}"]
            for kind in models:
                try:
                    res = evaluate(kind, gt, truth, _seed_index(name), seed)
                except Exception as err:  # noqa: BLE001 - record it; one failure must not sink the run
                    res = {"error": f"{type(err).__name__}: {err}",
                           "traceback": traceback.format_exc(limit=4)}
                    line.append(f"{kind}: ERROR {res['error'][:120]}")
                else:
                    line.append(
                        f"{kind}: obs {SCALE * res['obs_mmd']:.2f} int {SCALE * res['int_mmd']:.2f}"
                        f" cf {SCALE * res['cf_mse']:.2f} fit {res['fit_s']:.1f}s"
                        f" query {res['query_s']:.1f}s"
                    )
                raw[name]["models"].setdefault(kind, []).append({"seed": seed, **res})
            line.append(f"({time.perf_counter() - started:.0f}s)")
            log(" | ".join(line), flush=True)
    return {"raw": raw, "skipped": skipped}


def _seed_index(name: str) -> int:
    """A stable per-SCM seed component (its registry position), whatever the selection."""
    return list_scms("all").index(name)


def summarise(raw: dict, models: list[str]) -> dict:
    summary = {}
    for name, entry in raw.items():
        row = {"family": entry["family"], "additive": entry["additive"], "models": {}, "floor": {}}
        for metric in ("obs_mmd", "int_mmd", "cf_mse"):
            m, s = _mean_std([f[metric] for f in entry["floor"]])
            row["floor"][metric] = {"mean": SCALE * m, "std": SCALE * s}
        for kind in models:
            runs = [r for r in entry["models"].get(kind, []) if "error" not in r]
            errors = [r["error"] for r in entry["models"].get(kind, []) if "error" in r]
            cell = {"n_seeds": len(runs), "errors": errors}
            for metric in ("obs_mmd", "int_mmd", "cf_mse"):
                m, s = _mean_std([r[metric] for r in runs])
                cell[metric] = {"mean": SCALE * m, "std": SCALE * s}
            for t in ("fit_s", "query_s"):
                m, s = _mean_std([r[t] for r in runs])
                cell[t] = {"mean": m, "std": s}
            row["models"][kind] = cell
        summary[name] = row
    return summary


def evaluate_targets(summary: dict) -> list[dict]:
    """The issue's targets, per SCM, on the means over seeds."""
    out = []
    for name, row in summary.items():
        flow, peer = row["models"].get("flow"), row["models"].get("gcm")
        if not flow or not peer or not flow["n_seeds"] or not peer["n_seeds"]:
            continue
        factor = 1.1 if row["additive"] else 0.5
        kind = "additive" if row["additive"] else "non-additive"
        checks = [
            ("cf_mse", f"flow CF MSE <= {factor}x gcm ({kind} SCMs)",
             flow["cf_mse"]["mean"], factor * peer["cf_mse"]["mean"], peer["cf_mse"]["mean"]),
            ("int_mmd", "flow Int MMD <= gcm", flow["int_mmd"]["mean"], peer["int_mmd"]["mean"],
             peer["int_mmd"]["mean"]),
            ("fit_time", "flow fit time <= 3x gcm assignment+fit", flow["fit_s"]["mean"],
             3.0 * peer["fit_s"]["mean"], peer["fit_s"]["mean"]),
        ]
        for key, label, value, bound, peer_value in checks:
            ok = bool(np.isfinite(value) and np.isfinite(bound) and value <= bound)
            out.append({"scm": name, "target": key, "label": label, "flow": value,
                        "gcm": peer_value, "bound": bound, "pass": ok,
                        "ratio": value / peer_value if peer_value else float("inf")})
    return out


# =========================================================================== scaling
def _ladder10():
    """The first 10 nodes of the DCM ladder (x01..x10): an ancestrally closed, 10-node SCM.

    Returns the ladder SCM, the 10 node names and the subgraph's edge string; the ladder's
    samples restricted to these columns come from the sub-SCM's exact distribution.
    """
    gt = load_scm("dcm_ladder_nonlinear")
    nodes = [f"x{i:02d}" for i in range(1, 11)]
    assert all(p in nodes for v in nodes for p in gt.parents[v]), "not ancestrally closed"
    edges = [f"{p} -> {v}" for v in nodes for p in gt.parents[v]]
    return gt, nodes, "; ".join(edges)


def run_scaling(quick: bool, include_gcm: bool) -> dict:
    out: dict = {"fixed_epochs": SCALING_EPOCHS, "rows": [], "ladder": None, "sampling": None}
    gt = load_scm(SCALING_SCM)
    rows_list = SCALING_ROWS[:2] if quick else SCALING_ROWS
    for n in rows_list:
        data = gt.sample(n, seed=_seed(99, n))
        entry = {"scm": SCALING_SCM, "nodes": len(gt.nodes), "rows": n, "epochs": SCALING_EPOCHS}
        t0 = time.perf_counter()
        model = ds.DeepSCM(gt.graph, mechanisms=ConditionalFlow()).fit(
            data, epochs=SCALING_EPOCHS, patience=SCALING_EPOCHS, seed=0, progress=False)
        entry["flow_fit_s"] = time.perf_counter() - t0
        entry["epochs_run"] = model.fit_info["epochs_run"]
        entry["flow_s_per_epoch"] = entry["flow_fit_s"] / max(1, entry["epochs_run"])
        if include_gcm:
            t0 = time.perf_counter()
            GcmModel().fit(gt, data, seed=0)
            entry["gcm_fit_s"] = time.perf_counter() - t0
        out["rows"].append(entry)
        log(f"[scaling] {SCALING_SCM} rows={n}: flow {entry['flow_fit_s']:.1f}s "
            f"({entry['epochs_run']} epochs)"
            + (f", gcm {entry['gcm_fit_s']:.1f}s" if include_gcm else ""), flush=True)

    if not quick:
        lad = load_scm("dcm_ladder_nonlinear")
        data = lad.sample(N_TRAIN, seed=_seed(98))
        t0 = time.perf_counter()
        model = ds.DeepSCM(lad.graph, mechanisms=ConditionalFlow()).fit(
            data, epochs=SCALING_EPOCHS, patience=SCALING_EPOCHS, seed=0, progress=False)
        fit_s = time.perf_counter() - t0
        out["ladder"] = {"scm": "dcm_ladder_nonlinear", "nodes": len(lad.nodes), "rows": N_TRAIN,
                         "epochs": model.fit_info["epochs_run"], "flow_fit_s": fit_s,
                         "flow_s_per_epoch": fit_s / max(1, model.fit_info["epochs_run"])}
        # (gcm's ladder fit time is in the main table when the ladder is selected)
        log(f"[scaling] 30-node ladder, {N_TRAIN} rows, {SCALING_EPOCHS} epochs: flow "
            f"{fit_s:.1f}s", flush=True)

    lad, nodes, graph = _ladder10()
    data = lad.sample(N_TRAIN, seed=_seed(97))[nodes]
    model = ds.DeepSCM(graph, mechanisms=ConditionalFlow()).fit(
        data, epochs=SCALING_EPOCHS, patience=SCALING_EPOCHS, seed=0, progress=False)
    value = float(data["x01"].median())
    model.sample(1000, do={"x01": value}, seed=0)  # warm-up
    times = []
    for rep in range(1 if quick else 2):
        t0 = time.perf_counter()
        frame = model.sample(SAMPLING_N, do={"x01": value}, seed=rep)
        times.append(time.perf_counter() - t0)
    assert len(frame) == SAMPLING_N
    best = min(times)
    out["sampling"] = {
        "graph": graph, "nodes": len(nodes), "n_samples": SAMPLING_N, "do": {"x01": value},
        "seconds": times, "best_s": best, "target_s": SAMPLING_TARGET_S,
        "pass": best < SAMPLING_TARGET_S, "torch_threads": torch.get_num_threads(),
    }
    out["sampling"]["scm"] = (f"dcm_ladder_nonlinear restricted to x01..x10 (ancestrally closed, "
                              f"{len(nodes)} nodes, {graph.count('->')} edges)")
    log(f"[scaling] {SAMPLING_N:,} interventional samples, 10-node SCM: best {best:.2f}s "
        f"of {len(times)} ({'PASS' if best < SAMPLING_TARGET_S else 'MISS'} "
        f"< {SAMPLING_TARGET_S:.0f}s)",
        flush=True)
    return out


# =========================================================================== reporting
def tables(summary: dict, models: list[str], targets: list[dict], scaling: dict | None) -> str:
    lines: list[str] = []
    names = list(summary)
    metric_titles = {
        "obs_mmd": "Observational MMD ×100 (non-root nodes, 1,000 samples)",
        "int_mmd": "Interventional MMD ×100 (descendants, 100 samples, mean over values × nodes)",
        "cf_mse": "Counterfactual MSE ×100 (all descendants, 100 units, mean over values × nodes)",
    }
    for metric, title in metric_titles.items():
        lines += [f"### {title}", ""]
        head = ["SCM", "family"] + models + ["floor"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(models) + 1)) + "|")
        for name in names:
            row = summary[name]
            cells = [name, row["family"]]
            best = min((row["models"][k][metric]["mean"] for k in models
                        if np.isfinite(row["models"][k][metric]["mean"])), default=None)
            for k in models:
                c = row["models"][k][metric]
                text = _fmt(c["mean"], c["std"])
                if best is not None and c["mean"] == best and len(models) > 1:
                    text = f"**{text}**"
                if row["models"][k]["errors"]:
                    text += f" ({len(row['models'][k]['errors'])} failed)"
                cells.append(text)
            f = row["floor"][metric]
            cells.append(_fmt(f["mean"], f["std"]) if metric != "cf_mse" else "0")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += [("### Time (s): fit (gcm: auto-assignment + fit) and queries "
               "(1,000 obs + 20 × nodes × (100 do-samples + 100 counterfactuals))"), ""]
    head = ["SCM"] + [f"{k} fit" for k in models] + [f"{k} query" for k in models]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (2 * len(models))) + "|")
    for name in names:
        row = summary[name]
        cells = [name]
        cells += [_fmt(row["models"][k]["fit_s"]["mean"], row["models"][k]["fit_s"]["std"], 1)
                  for k in models]
        cells += [_fmt(row["models"][k]["query_s"]["mean"], None, 1) for k in models]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if targets:
        lines += ["### Targets (flow vs gcm, means over seeds)", "", "```"]
        for t in targets:
            lines.append(f"{'PASS' if t['pass'] else 'MISS'}  {t['scm']:<36} {t['label']:<52} "
                         f"flow {t['flow']:.2f} vs bound {t['bound']:.2f} (gcm {t['gcm']:.2f}, "
                         f"ratio {t['ratio']:.2f})")
        by_target: dict[str, list[bool]] = {}
        for t in targets:
            by_target.setdefault(t["label"], []).append(t["pass"])
        lines.append("")
        for label, oks in by_target.items():
            lines.append(f"{sum(oks)}/{len(oks)} SCMs pass: {label}")
        lines += ["```", ""]
    if scaling and "error" in scaling:
        lines += ["### Scaling", "", f"failed: {scaling['error']}", ""]
    elif scaling:
        lines += [(f"### Scaling (flow, fixed {scaling['fixed_epochs']} epochs, "
                   "no early stopping: time per data size)"), ""]
        lines.append("| SCM | nodes | rows | epochs | flow fit s | s / epoch | gcm fit s |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
        for e in scaling["rows"]:
            lines.append(f"| {e['scm']} | {e['nodes']} | {e['rows']:,} | {e['epochs_run']} | "
                         f"{e['flow_fit_s']:.1f} | {e['flow_s_per_epoch']:.2f} | "
                         f"{_fmt(e.get('gcm_fit_s', float('nan')), None, 1)} |")
        lad = scaling.get("ladder")
        if lad:
            lines.append(f"| {lad['scm']} | {lad['nodes']} | {lad['rows']:,} | {lad['epochs']} | "
                         f"{lad['flow_fit_s']:.1f} | {lad['flow_s_per_epoch']:.2f} | "
                         f"{_fmt(lad.get('gcm_fit_s', float('nan')), None, 1)} |")
        smp = scaling.get("sampling")
        if smp:
            verdict = "PASS" if smp["pass"] else "MISS"
            lines += ["", (f"{smp['n_samples']:,} interventional samples (do(x01 = median)) "
                           f"from {smp['scm']}: best {smp['best_s']:.2f} s of "
                           f"{len(smp['seconds'])} on {smp['torch_threads']} torch thread(s) — "
                           f"{verdict} (target < {smp['target_s']:.0f} s)")]
        lines.append("")
    return "\n".join(lines)


# =========================================================================== CLI
def _resolve_scms(spec: str) -> list[str]:
    out: list[str] = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        if part == "default":
            out += DEFAULT_SCMS
        elif part == "headline":
            out += HEADLINE
        elif part in KINDS:
            out += list_scms(part)
        else:
            load_scm(part)  # raises ValueError listing valid names
            out.append(part)
    return list(dict.fromkeys(out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"1 seed, SCMs {QUICK_SCMS}, short scaling section (a smoke run)")
    parser.add_argument("--scms", default=None,
                        help="comma-separated SCM names, kinds (" + ", ".join(KINDS) + "), "
                             "'headline' (DCM set) or 'default'; default: 'default' = "
                             + ", ".join(DEFAULT_SCMS))
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3)")
    parser.add_argument("--models", default=",".join(MODELS),
                        help="comma-separated subset of " + ",".join(MODELS))
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling section")
    parser.add_argument("--out", default=None,
                        help=f"JSON output (default {DEFAULT_OUT.relative_to(ROOT.parent)}; "
                             "--quick: results/scm_suite_quick.json); "
                             "a .md table is written beside it")
    args = parser.parse_args(argv)

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in MODELS]
    if bad or not models:
        parser.error(f"unknown models {bad}; choose from {','.join(MODELS)}")
    try:
        default = QUICK_SCMS if args.quick else DEFAULT_SCMS
        scms = _resolve_scms(args.scms) if args.scms else default
    except ValueError as err:
        parser.error(str(err))
    n_seeds = args.seeds if args.seeds is not None else (1 if args.quick else 3)
    if n_seeds < 1:
        parser.error("--seeds must be >= 1")
    seeds = list(range(n_seeds))
    if args.out:
        out = Path(args.out)
    else:
        out = DEFAULT_OUT.with_name("scm_suite_quick.json") if args.quick else DEFAULT_OUT
    if "gcm" in models:
        _gcm()

    started = time.perf_counter()
    info = machine_info("dowhy", "zuko", "scikit-learn")
    log(f"deepscm SCM benchmark: {len(scms)} SCMs x {models} x seeds {seeds}; "
        f"{info['cpu_count']} CPUs, torch {info['torch']} ({info['torch_threads']} thread), "
        f"dowhy {info.get('dowhy')}", flush=True)
    study = run_study(scms, seeds, models)
    summary = summarise(study["raw"], models)
    targets = evaluate_targets(summary)
    scaling = None
    if not args.no_scaling:
        try:
            scaling = run_scaling(args.quick, "gcm" in models)
        except Exception as err:  # noqa: BLE001 - keep the study's results whatever happens
            scaling = {"error": f"{type(err).__name__}: {err}",
                       "traceback": traceback.format_exc(limit=6)}
            log(f"[scaling] ERROR {scaling['error']}")
    total = time.perf_counter() - started
    try:
        info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        pass

    text = tables(summary, models, targets, scaling)
    log("\n" + text)
    log(f"total runtime {total / 60:.1f} min")
    config = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "quick": args.quick, "scms": scms, "headline": [s for s in scms if s in HEADLINE],
        "seeds": seeds, "models": models,
        "protocol": {
            "n_train": N_TRAIN, "n_quantile": N_QUANTILE, "n_values": N_VALUES,
            "value_range": "linspace(q10, q90)", "n_int_samples": N_INT, "n_units": N_UNITS,
            "n_obs_samples": N_OBS, "mmd": "mmd_dcm: biased V-statistic, gamma = 1/median",
            "int_mmd_columns": "descendants of the intervened node",
            "cf_mse_columns": "all strict descendants of the intervened node",
            "obs_mmd_columns": "non-root nodes", "scale": SCALE,
            "aggregation": "mean over 20 values, then over intervened nodes; mean ± std "
                           "(population std) over seeds",
            "floor": "metric with the model replaced by fresh true samples (CF floor = 0)",
        },
        "model_settings": {
            "flow": "DeepSCM(mechanisms=ConditionalFlow()) with fit defaults (epochs=300, "
                    "batch_size=512, lr=5e-3, patience=20, val_fraction=0.1)",
            "additive": "DeepSCM(mechanisms=AdditiveNoise()) with the same fit defaults",
            "gcm": "dowhy.gcm.InvertibleStructuralCausalModel + auto.assign_causal_mechanisms "
                   "(default quality) + gcm.fit; n_jobs=1; timed together",
        },
        "threads": "torch.set_num_threads(1), OMP/BLAS 1 thread, DoWhy n_jobs=1",
    }
    result = {
        "config": config, "machine": info, "runtime_s": total,
        "summary": summary, "targets": targets, "scaling": scaling,
        "skipped": study["skipped"], "raw": study["raw"],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(to_jsonable(result), indent=1) + "\n")
    md = out.with_suffix(".md")
    md.write_text(f"# deepscm SCM benchmark\n\n`{config['command']}` — {info['date']}, "
                  f"{info['cpu_count']} CPUs, torch {info['torch']}, dowhy {info.get('dowhy')}, "
                  f"seeds {seeds}, total {total / 60:.1f} min\n\n{text}\n")
    log(f"wrote {out} and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
