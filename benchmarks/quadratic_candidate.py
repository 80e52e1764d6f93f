"""Should the quadratic response surface (``mechanisms.Quadratic``) be a candidate of automatic
selection? Per node whose non-linear candidates are fitted, the default fit against the same
fit with that node set to ``"quadratic"``: the held-out likelihood gap to the spline-flow
candidate (what selection would see) and the counterfactual MSE (what a user gets).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/quadratic_candidate.py

Writes ``results/quadratic_candidate.{json,md}``. The SCMs mix nodes whose effect is exactly
quadratic with nodes where it is only nearly so; the question is whether held-out likelihood
tells the two apart.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

import deepscm as ds  # noqa: E402
from deepscm.datasets import load_scm  # noqa: E402
from deepscm.scm.model import AUTO_TOLERANCE  # noqa: E402
from deepscm.studies.report import write_json  # noqa: E402
from fit_scaling import held_out_scores  # noqa: E402
from machine import machine_info  # noqa: E402

#: SCMs with exactly quadratic nodes (vaca_mgraph_nonlinear's x3–x5, the DCM triangle's and
#: diamond's x2, vaca_loan's x4, vaca_triangle_nonlinear's x3) and nearly quadratic ones (a
#: cubic over a short range, a kink, softplus; the equations are in src/deepscm/datasets)
SCMS = [
    "vaca_mgraph_nonlinear", "dcm_triangle_nonlinear", "dcm_diamond_nonlinear", "vaca_loan",
    "causal_nf_chain_nonlinear", "vaca_triangle_nonlinear", "basic_chain5_student_t",
]
DATA_SEEDS = [11, 21]


def study(scms: list[str], seeds: list[int], rows: int) -> list[dict]:
    out = []
    for name in scms:
        gt = load_scm(name)
        for seed in seeds:
            data = gt.sample(rows, seed=seed)
            default = ds.DeepSCM(gt.graph).fit(data, seed=0, progress=False)
            _, cf_default = held_out_scores(gt, data, default)
            for node, sel in default.fit_info["selection"].items():
                if "spline flow" not in sel["scores"]:
                    continue  # the linear noise was independent: no non-linear candidate
                quad = ds.DeepSCM(gt.graph, mechanisms={node: "quadratic"}).fit(data, seed=0, progress=False)
                _, cf_quad = held_out_scores(gt, data, quad)
                q_score = quad.fit_info["validation"][node]["score"]
                best = min(min(sel["scores"].values()), q_score)
                row = {
                    "scm": name, "data_seed": seed, "node": node,
                    "chosen": sel["chosen"],
                    "gap_to_flow": q_score - sel["scores"]["spline flow"],
                    # after the linear candidates, before the flow: taken when no linear one
                    # was and it is within the tolerance of the best
                    "would_be_chosen": not sel["chosen"].startswith("linear") and q_score <= best + AUTO_TOLERANCE,
                    "cf_mse_default": cf_default, "cf_mse_quadratic": cf_quad,
                }
                out.append(row)
                print(f"{name} seed {seed} {node}: gap {row['gap_to_flow']:+.4f} nats, CF MSE "
                      f"{cf_default:.5f} (default, {sel['chosen']}) / {cf_quad:.5f} (quadratic)", flush=True)
    return out


def render(rows: list[dict], meta: dict) -> str:
    lines = [
        "# Quadratic response surface as an automatic candidate?", "",
        f"Command: `{meta['command']}`  ",
        f"Date: {meta['machine']['date']}; torch {meta['machine']['torch']}; "
        f"{meta['machine']['torch_threads']} thread(s); run time {meta['seconds']:.0f} s; load average at "
        f"the start {meta['machine'].get('load_average_start')}.", "",
        "Per node whose non-linear candidates are fitted (5,000 rows, `fit(seed=0)`): the held-out "
        "negative log-likelihood of `Quadratic` minus that of the spline-flow candidate (negative: "
        "the quadratic fits better), whether the quadratic would be chosen if it came after the linear "
        f"candidates and before the flow (no linear one chosen, and within {AUTO_TOLERANCE} nats of "
        "the best), and the counterfactual MSE of the whole "
        "model (500 units at the 10/50/90 % quantiles of each intervention node, in units of each "
        "descendant's variance) with the default choice and with this node set to `\"quadratic\"`.",
        "",
        "| SCM | data seed | node | default choice | gap to flow (nats) | would be chosen | CF MSE default | CF MSE quadratic | ratio |",
        "|---|---:|---|---|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scm']} | {r['data_seed']} | {r['node']} | {r['chosen']} | {r['gap_to_flow']:+.4f} | "
            f"{'yes' if r['would_be_chosen'] else 'no'} | {r['cf_mse_default']:.5f} | "
            f"{r['cf_mse_quadratic']:.5f} | {r['cf_mse_quadratic'] / r['cf_mse_default']:.2f} |")
    chosen = [r for r in rows if r["would_be_chosen"]]
    ratio = np.array([r["cf_mse_quadratic"] / r["cf_mse_default"] for r in chosen])
    if len(ratio):
        lines += ["", f"Nodes where the quadratic would be chosen: {len(chosen)} of {len(rows)}; its CF MSE "
                  f"against the default's: lower in {int((ratio < 1).sum())}, geometric-mean ratio "
                  f"{np.exp(np.log(ratio).mean()):.2f}, range {ratio.min():.2f}–{ratio.max():.2f}; gaps to the "
                  f"flow of those nodes {min(r['gap_to_flow'] for r in chosen):+.4f} to "
                  f"{max(r['gap_to_flow'] for r in chosen):+.4f} nats."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scms", default=",".join(SCMS))
    p.add_argument("--data-seeds", default=",".join(map(str, DATA_SEEDS)))
    p.add_argument("--rows", type=int, default=5000)
    p.add_argument("--out", default=str(ROOT / "results"))
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    warnings.filterwarnings("ignore")
    machine = machine_info()
    started = time.perf_counter()
    rows = study(args.scms.split(","), [int(s) for s in args.data_seeds.split(",")], args.rows)
    meta = {"command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/quadratic_candidate.py"
                       + "".join(" " + a for a in (sys.argv[1:] if argv is None else argv)),
            "machine": machine, "seconds": time.perf_counter() - started}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "quadratic_candidate.json", {"meta": meta, "rows": rows})
    (out / "quadratic_candidate.md").write_text(render(rows, meta))
    print(render(rows, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
