"""The boosted-trees candidate with and without scikit-learn's early stopping.

For each suite SCM with non-root continuous nodes, ``DeepSCM(graph, mechanisms="boosted")`` is
fitted on 5,000 rows (seed 0) twice in the same process: with ``BoostedAdditive``'s default
(``early_stopping=True``: boosting stops once the squared error on 10 % of the training rows
has not improved for 10 iterations) and with all ``max_iter = 100`` trees. Reported per node:
trees kept and the held-out negative log-likelihood (standardised units, lower is better); per
SCM, the seconds spent fitting the trees. Writes
``benchmarks/results/boosted_early_stopping.{json,md}``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/boosted_early_stopping.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

import deepscm as ds  # noqa: E402
from deepscm.datasets import load_scm  # noqa: E402
from deepscm.mechanisms import BoostedAdditive  # noqa: E402
from deepscm.studies.report import write_json  # noqa: E402
from machine import machine_info, report_header  # noqa: E402

SCMS = [
    "vaca_triangle_nonadditive", "basic_collider_nonadditive", "dcm_triangle_nonlinear",
    "dcm_chain_nonlinear", "dcm_diamond_nonlinear", "dcm_y_nonlinear", "realistic_economics",
    "realistic_environment", "realistic_clinical", "realistic_pharmacokinetic",
]
ROWS = 5_000


def fit(name: str, early_stopping: bool) -> dict:
    gt = load_scm(name)
    data = gt.sample(ROWS, seed=0)
    nodes = [n for n in gt.parents if gt.parents[n] and n not in gt.categorical]
    choice = {n: BoostedAdditive(early_stopping=early_stopping) for n in nodes}
    spent = [0.0]
    after_fit = BoostedAdditive.after_fit

    def timed(self, x, context):
        t0 = time.perf_counter()
        after_fit(self, x, context)
        spent[0] += time.perf_counter() - t0

    BoostedAdditive.after_fit = timed
    try:
        model = ds.DeepSCM(gt.graph, mechanisms=choice).fit(data, seed=0, progress=False)
    finally:
        BoostedAdditive.after_fit = after_fit
    scores = model.fit_info["validation"]
    return {
        "seconds": spent[0],
        "nodes": {n: {"trees": int(model.mechanisms[n].feature.shape[1]), "nll": scores[n]["score"]} for n in nodes},
    }


def main() -> int:
    torch.set_num_threads(1)
    started = time.perf_counter()
    rows = []
    for name in SCMS:
        on, off = fit(name, True), fit(name, False)
        rows.append({"scm": name, "early_stopping": on, "all_trees": off})
        print(f"{name:28s} {on['seconds']:5.2f} s vs {off['seconds']:5.2f} s", flush=True)
    nodes = [(r["early_stopping"]["nodes"][n], r["all_trees"]["nodes"][n]) for r in rows for n in r["all_trees"]["nodes"]]
    better = sum(a["nll"] < b["nll"] for a, b in nodes)
    seconds = [sum(r[k]["seconds"] for r in rows) for k in ("early_stopping", "all_trees")]
    trees = [a["trees"] for a, _ in nodes]
    summary = {"nodes": len(nodes), "better_with_early_stopping": better, "seconds": seconds,
               "trees_min": min(trees), "trees_max": max(trees)}
    out = {"machine": machine_info("scikit-learn"), "rows": ROWS, "results": rows, "summary": summary,
           "runtime_s": time.perf_counter() - started}
    results = ROOT / "results"
    write_json(results / "boosted_early_stopping.json", out)
    lines = [
        "# Boosted-trees candidate: scikit-learn's early stopping against all 100 trees", "",
        *report_header("OMP_NUM_THREADS=1 .venv/bin/python benchmarks/boosted_early_stopping.py",
                       out["machine"], out["runtime_s"]), "",
        f"`DeepSCM(graph, mechanisms=BoostedAdditive(...))` on {ROWS:,} rows (seed 0) of each SCM; held-out NLL "
        "per node in standardised units (lower is better); seconds: the trees' fits per SCM.", "",
        "| SCM | node | trees (early stopping) | NLL (early stopping) | NLL (100 trees) |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        for n, a in r["early_stopping"]["nodes"].items():
            b = r["all_trees"]["nodes"][n]
            lines.append(f"| {r['scm']} | {n} | {a['trees']} | {a['nll']:.4f} | {b['nll']:.4f} |")
    lines += ["", "| SCM | seconds (early stopping) | seconds (100 trees) |", "|---|---:|---:|"]
    lines += [f"| {r['scm']} | {r['early_stopping']['seconds']:.2f} | {r['all_trees']['seconds']:.2f} |" for r in rows]
    lines += ["", f"- held-out NLL better with early stopping on {better} of {len(nodes)} nodes; "
              f"{min(trees)}–{max(trees)} trees kept",
              f"- seconds fitting trees, all SCMs: {seconds[0]:.1f} with early stopping, {seconds[1]:.1f} with 100 trees"]
    (results / "boosted_early_stopping.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-2:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
