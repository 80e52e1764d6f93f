"""Cost and accuracy of ``Diffusion(inference_steps=S)`` on a 1-D monotone SCM.

``x1 ~ N(0, 1)``, ``x2 := x1 + softplus(x1)·u`` (DCM's identifiability case), 2,000 training
rows, ``Diffusion`` at its defaults for ``x2`` (an ``AdditiveNoise`` root), ``fit`` at its
defaults. The fitted network is evaluated on the DDIM grid of every ``S`` (same weights:
``inference_steps`` only chooses the levels visited): the seconds for 3 × 1,000
counterfactuals (``do(x1 := −1, 0, 1)``), their mean |cf − truth| (truth ``v + softplus(v)·u``
from the units' true noise), the largest round-trip error ``|Dec(Enc(x, pa), pa) − x|`` on
the units (standardised units) and the sd of 3,000 draws of ``x2 | do(x1 := 1)`` (truth
``softplus(1) = 1.313``). Writes ``results/diffusion_steps.{json,md}``.

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/diffusion_steps.py      # ~1 min
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

import deepscm as ds  # noqa: E402
from deepscm.datasets.base import softplus  # noqa: E402
from deepscm.io import to_jsonable  # noqa: E402
from deepscm.mechanisms import AdditiveNoise, Diffusion  # noqa: E402
from deepscm.scm import engine  # noqa: E402
from machine import machine_info, report_header  # noqa: E402

torch.set_num_threads(1)
VALUES = (-1.0, 0.0, 1.0)


def monotone(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x1, u = rng.normal(size=n), rng.normal(size=n)
    return pd.DataFrame({"x1": x1, "x2": x1 + softplus(x1) * u}), u


def evaluate(scm: ds.DeepSCM, units: pd.DataFrame, u: np.ndarray) -> dict[str, float]:
    """One grid's counterfactual time and error, round trip and interventional sd."""
    started = time.perf_counter()
    errors = []
    for value in VALUES:
        cf = scm.counterfactual(units, do={"x1": value}, seed=0)
        errors.append(np.abs(cf["x2"].to_numpy() - (value + softplus(value) * u)))
    seconds = time.perf_counter() - started
    mech = scm.mechanisms["x2"]
    values = engine.encode(scm, units)
    x, ctx = values["x2"], engine.context(scm, "x2", values, len(units))
    with torch.no_grad():
        round_trip = float((mech.decode(mech.encode(x, ctx), ctx) - x).abs().max())
    sd = float(scm.sample(3000, do={"x1": 1.0}, seed=2)["x2"].std())
    return {"cf_seconds": seconds, "cf_mae": float(np.concatenate(errors).mean()),
            "round_trip_max": round_trip, "do_sd": sd}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 50, 20, 10, 5])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "results" / "diffusion_steps.json"))
    args = parser.parse_args(argv)

    started = time.perf_counter()
    info = machine_info()
    data, _ = monotone(args.rows, args.seed)
    units, u = monotone(1000, args.seed + 1)
    scm = ds.DeepSCM("x1 -> x2", mechanisms={"x1": AdditiveNoise(), "x2": Diffusion()})
    t0 = time.perf_counter()
    scm.fit(data, seed=args.seed, progress=False)
    fit_s = time.perf_counter() - t0
    mech = scm.mechanisms["x2"]
    rows = []
    for steps in args.steps:
        mech.hparams["inference_steps"] = None if steps == mech.hparams["steps"] else steps
        rows.append({"inference_steps": steps, **evaluate(scm, units, u)})
        r = rows[-1]
        print(f"S={steps}: {r['cf_seconds']:.2f} s, CF MAE {r['cf_mae']:.3f}, round trip "
              f"{r['round_trip_max']:.1e}, sd {r['do_sd']:.3f}", flush=True)
    runtime = time.perf_counter() - started
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"machine": info, "args": vars(args), "fit_s": fit_s,
              "epochs_run": scm.fit_info.get("epochs_run"), "rows": rows, "runtime_s": runtime}
    out.write_text(json.dumps(to_jsonable(result), indent=1) + "\n")
    command = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/diffusion_steps.py"
    if argv or sys.argv[1:]:
        command += " " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = ["# `Diffusion(inference_steps=S)`: cost and accuracy on a 1-D monotone SCM", "",
             *report_header(command, info, runtime), "",
             f"`x2 := x1 + softplus(x1)·u`, {args.rows} training rows, all defaults (fit "
             f"{fit_s:.1f} s, {result['epochs_run']} epochs); 1,000 units; the truth of the "
             "interventional sd is 1.313.", "",
             "| S | 3 × 1,000 counterfactuals (s) | mean abs(cf − truth) | round trip max | sd of x2 given do(x1 := 1) |",
             "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['inference_steps']} | {r['cf_seconds']:.2f} | {r['cf_mae']:.3f} | "
              f"{r['round_trip_max']:.1e} | {r['do_sd']:.3f} |" for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
