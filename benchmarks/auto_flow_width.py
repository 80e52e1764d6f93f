"""The hidden widths of automatic selection's spline-flow candidate
(``deepscm.mechanisms.registry.AUTO_FLOW_HIDDEN``): fit time and accuracy of default fits.

For each SCM × data seed (11, 21, 31; 5,000 rows unless ``--rows``) the default ``DeepSCM(graph).fit(data,
seed=0)`` runs once per width, the widths interleaved (reversed on the middle seed) so that
a drift of the shared machine's load falls on both. Scored: fit seconds, the mean held-out
log-likelihood of 2,000 fresh rows, and the counterfactual MSE in units of each descendant's
variance (500 units with their true noise; interventions at the 10 %, 50 % and 90 %
quantiles of every intervention node), averaged over interventions
(``fit_scaling.held_out_scores``, the scores of its fit-option study). One thread.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/auto_flow_width.py
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/auto_flow_width.py --scms dcm_triangle_nonlinear --widths 64x64,32x32
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/auto_flow_width.py --rows 50000 --data-seeds 11 \
        --scms dcm_triangle_nonlinear,vaca_triangle_nonadditive,realistic_clinical --name auto_flow_width_50k

Writes ``benchmarks/results/auto_flow_width.{json,md}`` (or ``--name``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import deepscm as ds  # noqa: E402
from deepscm.datasets import load_scm  # noqa: E402
from deepscm.mechanisms import registry  # noqa: E402
from deepscm.studies.report import write_json  # noqa: E402
from fit_scaling import held_out_scores, paired_summary  # noqa: E402
from machine import machine_info  # noqa: E402

ROOT = Path(__file__).resolve().parent
SCMS = ["dcm_triangle_nonlinear", "dcm_chain_nonlinear", "dcm_diamond_nonlinear", "dcm_y_nonlinear",
        "basic_collider_nonadditive", "vaca_triangle_nonadditive", "realistic_clinical",
        "realistic_environment", "realistic_pharmacokinetic", "realistic_economics", "dcm_ladder_nonlinear"]
DATA_SEEDS = (11, 21, 31)


def fit_and_score(name: str, data_seed: int, width: tuple[int, ...], rows: int = 5000) -> dict:
    """One default fit with the candidate's widths set to ``width``, scored (module docstring)."""
    registry.AUTO_FLOW_HIDDEN = width
    gt = load_scm(name)
    data = gt.sample(rows, seed=data_seed)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ds.ExtrapolationWarning)
        model = ds.DeepSCM(gt.graph).fit(data, seed=0, progress=False)
        seconds = time.perf_counter() - started
        loglik, cf_mse = held_out_scores(gt, data, model)
    return {"scm": name, "data_seed": data_seed, "rows": rows, "width": list(width), "fit_s": seconds,
            "epochs_run": model.fit_info["epochs_run"], "test_loglik": loglik,
            "cf_mse": cf_mse,
            "chosen": {n: s["chosen"] for n, s in model.fit_info["selection"].items()}}


def markdown(meta: dict, rows: list[dict], widths: list[tuple[int, ...]], seeds: list[int]) -> str:
    label = ["×".join(map(str, w)) for w in widths]
    cell = {(r["scm"], r["data_seed"], "×".join(map(str, r["width"]))): r for r in rows}
    scms = list(dict.fromkeys(r["scm"] for r in rows))
    head = " / ".join(label)
    lines = [
        "# Automatic selection: the spline-flow candidate's hidden widths", "",
        f"Command: `{meta['command']}`  ",
        f"Date: {meta['machine']['date']}; torch {meta['machine']['torch']}; 1 thread; run time "
        f"{meta['runtime_s']:.0f} s; load average at the start {meta['machine'].get('load_average_start')}.", "",
        f"Default fits (`DeepSCM(graph).fit(data, seed=0)`, {rows[0]['rows']:,} rows) with the candidate's widths "
        f"{head}, interleaved. Test log-lik: mean over 2,000 fresh rows (higher is better); CF "
        "MSE: counterfactuals of 500 units at the 10/50/90 % quantiles of each intervention "
        "node, in units of each descendant's variance. Means over data seeds "
        f"{', '.join(map(str, seeds))}; per-seed rows in the JSON.", "",
        f"| SCM | fit s ({head}) | test log-lik | CF MSE |", "|---|---:|---:|---:|",
    ]
    for name in scms:
        per = [[cell[(name, s, w)] for s in seeds if (name, s, w) in cell] for w in label]
        lines.append(
            f"| {name} | " + " / ".join(f"{np.mean([r['fit_s'] for r in rs]):.2f}" for rs in per)
            + " | " + " / ".join(f"{np.mean([r['test_loglik'] for r in rs]):.4f}" for rs in per)
            + " | " + " / ".join(f"{np.mean([r['cf_mse'] for r in rs]):.5f}" for rs in per) + " |"
        )
    if len(label) == 2:
        pairs = [(cell[k[:2] + (label[0],)], cell[k]) for k in cell if k[2] == label[1] and k[:2] + (label[0],) in cell]
        lines += ["", f"{label[1]} against {label[0]} over {len(pairs)} paired fits: {paired_summary(pairs)}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scms", default=",".join(SCMS))
    p.add_argument("--widths", default="64x64,32x32", help="comma-separated, e.g. 64x64,32x32")
    p.add_argument("--rows", type=int, default=5000)
    p.add_argument("--data-seeds", default=",".join(map(str, DATA_SEEDS)))
    p.add_argument("--name", default="auto_flow_width", help="results/<name>.{json,md}")
    p.add_argument("--out", default=str(ROOT / "results"))
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.data_seeds.split(",")]
    torch.set_num_threads(1)
    widths = [tuple(int(x) for x in w.split("x")) for w in args.widths.split(",")]
    default = registry.AUTO_FLOW_HIDDEN
    machine = machine_info()
    started = time.perf_counter()
    rows = []
    try:
        for name in args.scms.split(","):
            for i, seed in enumerate(seeds):
                for width in (widths[::-1] if i == 1 else widths):
                    rows.append(fit_and_score(name, seed, width, args.rows))
                    r = rows[-1]
                    print(f"{name} seed {seed} {width}: {r['fit_s']:.2f} s, CF MSE {r['cf_mse']:.5f}", flush=True)
    finally:
        registry.AUTO_FLOW_HIDDEN = default
    meta = {"command": " ".join(["OMP_NUM_THREADS=1 .venv/bin/python benchmarks/auto_flow_width.py",
                                 *(argv if argv is not None else sys.argv[1:])]),
            "machine": machine, "runtime_s": time.perf_counter() - started}
    out = Path(args.out)
    write_json(out / f"{args.name}.json", {"meta": meta, "rows": rows})
    text = markdown(meta, rows, widths, seeds)
    (out / f"{args.name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
