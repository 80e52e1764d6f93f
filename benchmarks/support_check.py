"""The joint-support check (``deepscm.scm.support``) on the SCM suite: how often it flags
held-out observational rows, and how much of the counterfactual error sits in the rows it flags.

For each SCM and seed, issue 11's protocol (``scm_suite.py``: 5,000 training rows, the
default ``DeepSCM(graph).fit(data, seed=seed)``, 100 test units, interventions at 20 values
between the 10 % and 90 % quantiles of each intervention node): every counterfactual pair
(unit, value) of every node that the intervention changes through its parents and that has
a support summary (a parent context of two or more columns) is scored by
``scm.outside_support(cf)``, and its squared error against the true counterfactual is taken
in units of the node's training variance. Reported per SCM: the share of 5,000 fresh
observational rows flagged (false alarms), the share of counterfactual pairs flagged, the
share of the squared error they carry and the mean squared error inside against outside, and
the seconds the summaries add to a fit.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/support_check.py            # 12 SCMs × 3 seeds
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/support_check.py --quick    # 2 SCMs × 1 seed
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/support_check.py --scms dcm_triangle_nonlinear,dcm_diamond_nonlinear \
        --models flow,diffusion --name support_check_models   # the same split for other families

Writes ``benchmarks/results/support_check.{json,md}`` (or ``--name``). The summaries depend
on the data and the seed only, so every model of one SCM and seed is scored on the same flags.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

import scm_suite as suite  # noqa: E402
from deepscm import ExtrapolationWarning  # noqa: E402
from deepscm.scm import engine  # noqa: E402
from deepscm.scm.support import FACTOR, fit_support  # noqa: E402
from deepscm.studies.report import write_json  # noqa: E402
from machine import machine_info  # noqa: E402

SCMS = ["textbook", "dcm_triangle_nonlinear", "dcm_chain_nonlinear", "dcm_diamond_nonlinear",
        "dcm_y_nonlinear", "realistic_clinical", "realistic_environment", "realistic_pharmacokinetic",
        "realistic_economics", "basic_collider_nonadditive", "vaca_triangle_nonadditive",
        "dcm_ladder_nonlinear"]
FRESH_ROWS = 5000


def reference_support(gt, data, seed: int):
    """A closed-form model whose support summaries are those of every model fitted on
    ``data`` with ``seed`` (they depend on the data and the seed only): it flags the true
    counterfactual parents, so every model, DoWhy-gcm included, is scored on the same pairs."""
    return suite.ds.DeepSCM(gt.graph, mechanisms="linear").fit(data, seed=seed, progress=False)


def true_frame(truth: dict, q: dict):
    """The true counterfactual of every test unit under ``q`` as a frame of every node:
    the intervened node at its value, its descendants from the SCM, the rest factual."""
    frame = truth["units"].copy()
    frame[q["node"]] = q["value"]
    for j, node in enumerate(q["desc"]):
        frame[node] = q["cf_true"][:, j]
    return frame


def _split(sq: np.ndarray, off: np.ndarray) -> dict:
    """Sums and counts of squared errors inside and outside the support."""
    return {"sq_in": float(sq[~off].sum()), "sq_out": float(sq[off].sum()),
            "n_in": int((~off).sum()), "n_out": int(off.sum())}


def _shares(parts: list[dict], prefix: str = "") -> dict:
    sq_in, sq_out = sum(p["sq_in"] for p in parts), sum(p["sq_out"] for p in parts)
    n_in, n_out = sum(p["n_in"] for p in parts), sum(p["n_out"] for p in parts)
    total = n_in + n_out
    return {
        prefix + "pairs": total, prefix + "flagged_share": n_out / total if total else 0.0,
        prefix + "error_share_flagged": sq_out / (sq_in + sq_out) if sq_in + sq_out else 0.0,
        prefix + "mse_inside": sq_in / n_in if n_in else None,
        prefix + "mse_outside": sq_out / n_out if n_out else None,
    }


def run_one(name: str, seed: int, kinds: list[str]) -> list[dict]:
    """Every model of ``kinds`` on one SCM and seed. Counterfactual pairs are split twice:
    by the model's own counterfactual parents (what ``outside_support`` tells a user; deep
    models only) and by the true counterfactual parents (the same pairs for every model)."""
    gt = suite.load_scm(name)
    idx = suite._seed_index(name)
    truth = suite.truth_for(gt, idx, seed)
    reference = reference_support(gt, truth["data"], seed)
    checked = sorted(reference.support, key=reference.graph.nodes.index)
    if not checked:
        return [{"scm": name, "model": kind, "seed": seed, "nodes_checked": []} for kind in kinds]
    variance = {c: float(truth["data"][c].var()) for c in checked}
    true_flags = [reference.outside_support(true_frame(truth, q)) for q in truth["queries"]]
    # what the summaries cost (fitted again on the same encoded contexts, timed) and how often
    # they flag fresh observational rows: the same for every model, so measured once
    values = engine.encode(reference, truth["data"])
    started = time.perf_counter()
    for node in checked:
        fit_support(engine.context(reference, node, values, len(truth["data"])), seed)
    support_fit_s = time.perf_counter() - started
    fresh = gt.sample(FRESH_ROWS, seed=suite._seed(idx, seed, 99))
    false_flag_share = float(reference.outside_support(fresh).to_numpy().mean())
    rows = []
    for kind in kinds:
        model = suite.make_model(kind)
        model.fit(gt, truth["data"], seed)
        scm = model.model if kind != "gcm" else None
        out = {"scm": name, "model": kind, "seed": seed, "nodes_checked": checked}
        if scm is not None:
            out.update({"support_fit_s": support_fit_s, "fit_s": scm.fit_info["seconds"],
                        "false_flag_share": false_flag_share})
        own, by_truth, warned = [], [], 0
        for q, truth_flags in zip(truth["queries"], true_flags):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ExtrapolationWarning)
                cf = model.counterfactual(truth["units"], q["node"], q["value"])
            warned += any("combination of its parents" in str(w.message) for w in caught)
            flags = scm.outside_support(cf) if scm is not None else None
            for j, node in enumerate(q["desc"]):
                if node not in variance or node == q["node"]:
                    continue
                sq = (cf[node].to_numpy(float) - q["cf_true"][:, j]) ** 2 / variance[node]
                by_truth.append(_split(sq, truth_flags[node].to_numpy()))
                if flags is not None:
                    own.append(_split(sq, flags[node].to_numpy()))
        if scm is not None:
            out.update(_shares(own))
            out.update({"queries_warned": warned, "queries": len(truth["queries"])})
        out.update(_shares(by_truth, "true_"))
        rows.append(out)
    return rows


def _fmt(x: float | None, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def _mean(rs: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rs if r.get(key) is not None]
    return float(np.mean(vals)) if vals else None


def markdown(meta: dict, rows: list[dict]) -> str:
    lines = [
        "# The joint-support check on the SCM suite", "",
        f"Command: `{meta['command']}`  ",
        f"Date: {meta['machine']['date']}; torch {meta['machine'].get('torch')}, "
        f"1 thread; run time {meta['runtime_s']:.0f} s.", "",
        "Issue 11's protocol (5,000 rows; 100 units × 20 values per intervention node). A row "
        f"is flagged when its parents' scaled distance to every cluster exceeds {FACTOR} "
        "(`deepscm.scm.support`). Squared counterfactual errors are in units of each node's "
        "variance, over the pairs (unit, value) of the nodes checked. Means over seeds; "
        "per-seed rows in the JSON.", "",
        "## What a user is told: flags from the model's own counterfactual parents", "",
        f"*False flags*: share of {FRESH_ROWS:,} fresh observational rows flagged. *Flagged "
        "pairs*: pairs that the model's own counterfactual parents put outside the support "
        "(what `scm.outside_support(cf)` returns); *their error*: their share of the squared "
        "counterfactual error; MSE inside / outside; *warned*: queries that raised the "
        "warning (> 2 % of rows).", "",
        "| SCM | model | nodes checked | false flags | flagged pairs | their error | MSE inside | MSE outside | warned | summaries s (fit s) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_scm: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        by_scm.setdefault((r["scm"], r.get("model", "default")), []).append(r)
    for (name, kind), rs in by_scm.items():
        if not rs[0]["nodes_checked"]:
            if kind == next(k for (n, k) in by_scm if n == name):
                lines.append(f"| {name} | all | none (no node has two parent columns) | | | | | | | |")
            continue
        if "queries" not in rs[0]:  # DoWhy-gcm: no support summaries of its own
            continue
        warned = sum(r["queries_warned"] for r in rs)
        queries = sum(r["queries"] for r in rs)
        lines.append(
            f"| {name} | {kind} | {', '.join(rs[0]['nodes_checked'])} | {_mean(rs, 'false_flag_share'):.2%} | "
            f"{_mean(rs, 'flagged_share'):.1%} | {_mean(rs, 'error_share_flagged'):.1%} | "
            f"{_fmt(_mean(rs, 'mse_inside'), '.4f')} | {_fmt(_mean(rs, 'mse_outside'), '.4f')} | "
            f"{warned}/{queries} | {_mean(rs, 'support_fit_s'):.2f} ({_mean(rs, 'fit_s'):.1f}) |"
        )
    if any("true_pairs" in r for r in rows):
        lines += [
            "", "## Every model on the same pairs: flags from the true counterfactual parents", "",
            "The pairs whose *true* counterfactual parents lie outside the support of the "
            "training data (the summaries of a closed-form fit on the same rows and seed, "
            "identical to every model's), so models without summaries of their own (DoWhy-gcm) "
            "are split the same way. *Flagged pairs*: their share; *their error*: their share "
            "of the model's squared error.", "",
            "| SCM | model | flagged pairs | their error | MSE inside | MSE outside |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for (name, kind), rs in by_scm.items():
            if "true_pairs" not in rs[0]:
                continue
            lines.append(
                f"| {name} | {kind} | {_mean(rs, 'true_flagged_share'):.1%} | "
                f"{_mean(rs, 'true_error_share_flagged'):.1%} | {_fmt(_mean(rs, 'true_mse_inside'), '.4f')} | "
                f"{_fmt(_mean(rs, 'true_mse_outside'), '.4f')} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scms", default=",".join(SCMS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--models", default="default",
                   help="comma-separated: default, flow, diffusion (scm_suite's DeepModel kinds), gcm (DoWhy)")
    p.add_argument("--name", default=None, help="results/<name>.{json,md} (default support_check)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--render", action="store_true", help="only rewrite the markdown from the JSON")
    p.add_argument("--out", default=str(ROOT / "results"))
    args = p.parse_args(argv)
    if args.render:
        name = args.name or "support_check"
        saved = json.loads((Path(args.out) / f"{name}.json").read_text())
        (Path(args.out) / f"{name}.md").write_text(markdown(saved["meta"], saved["rows"]))
        return 0
    torch.set_num_threads(1)
    scms = ["dcm_triangle_nonlinear", "realistic_clinical"] if args.quick else args.scms.split(",")
    seeds = [0] if args.quick else list(range(args.seeds))
    started = time.perf_counter()
    rows = []
    for name in scms:
        for seed in seeds:
            for r in run_one(name, seed, args.models.split(",")):
                rows.append(r)
                if r["nodes_checked"]:
                    print(f"{name} {r['model']} seed {seed}: true-parent flags {r['true_flagged_share']:.1%} "
                          f"carry {r['true_error_share_flagged']:.1%} of the error", flush=True)
    meta = {"command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/support_check.py " + " ".join(
                argv if argv is not None else sys.argv[1:]),
            "machine": machine_info(), "runtime_s": time.perf_counter() - started}
    name = args.name or ("support_check_quick" if args.quick else "support_check")
    out = Path(args.out)
    write_json(out / f"{name}.json", {"meta": meta, "rows": rows})
    (out / f"{name}.md").write_text(markdown(meta, rows))
    print(markdown(meta, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
