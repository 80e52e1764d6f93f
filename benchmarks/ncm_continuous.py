"""GAN-NCM and continuous-treatment bounds on the continuous SCMs with hidden confounders.

For each SCM of ``deepscm.datasets.confounded_continuous`` × seed: ``--rows`` observational
rows; a GAN-NCM fitted by WGAN-GP with one joint critic and, where the graph has more than one
training group, with one critic per group (``modular=True``, Rahman & Kocaoglu 2024); their
ATE ``E[y | do(x=1)] − E[y | do(x=0)]`` and average treatment derivative against the exact
values (Gauss–Hermite quadrature); on ``--bounds`` SCMs the Sinkhorn-constrained bounds on the
ATD (Balazadeh et al. 2022) against the truth. Writes ``results/ncm_continuous.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from deepscm.datasets.confounded_continuous import list_confounded_continuous, load_confounded_continuous  # noqa: E402
from deepscm.identification import HedgeError, identify  # noqa: E402
from deepscm.ncm.continuous_bounds import continuous_bounds  # noqa: E402
from deepscm.ncm.gan import GANNCM, training_groups  # noqa: E402
from machine import machine_info  # noqa: E402


def identifiable(graph) -> bool:
    try:
        identify(graph, "p(y | do(x))")
        return True
    except HedgeError:
        return False


def run_one(name: str, seed: int, args: argparse.Namespace) -> dict:
    scm = load_confounded_continuous(name)
    data = scm.sample(args.rows, seed=1000 + seed)
    truth_ate, truth_atd = scm.ate(), scm.atd()
    row = {"scm": name, "seed": seed, "identifiable": identifiable(scm.graph), "truth_ate": truth_ate,
           "truth_atd": truth_atd, "groups": len(training_groups(scm.graph))}
    modes = [False] + ([True] if row["groups"] > 1 else [])
    for modular in modes:
        key = "modular" if modular else "joint"
        ncm = GANNCM(scm.graph, seed=seed, modular=modular, hidden=(32, 32)).fit(
            data, steps=args.steps, n_critic=args.n_critic, lr=args.lr, batch_size=args.batch_size)
        ate, atd = ncm.ate(seed=seed), ncm.atd(x=data["x"], seed=seed)
        y_model = ncm.sample(len(data), seed=seed)["y"].to_numpy()
        w1 = float(abs(torch.sort(torch.tensor(y_model)).values - torch.sort(torch.tensor(data["y"].to_numpy())).values).mean())
        row[key] = {"ate": ate, "ate_error": abs(ate - truth_ate), "atd": atd, "atd_error": abs(atd - truth_atd),
                    "w1_y": w1, "seconds": ncm.fit_seconds}
    if name in args.bounds:
        b = continuous_bounds(scm.graph, data, "atd(x, y)", seed=seed, fit_steps=args.bound_fit_steps,
                              search_steps=args.bound_search_steps, hidden=(32, 32), lr=args.lr)
        row["bounds"] = {"lower": b.lower, "upper": b.upper, "estimate": b.estimate, "alpha": b.alpha,
                         "fit_divergence": b.fit_divergence, "floor": b.floor, "contains": b.contains(truth_atd),
                         "width": b.width, "seconds": b.seconds}
    return row


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# GAN-NCM and continuous-treatment bounds (hidden confounders, continuous data)",
        "",
        f"`{results['command']}` — {m['date']}, {results['seconds']:.0f} s, {m['cpu_count']} CPUs (shared, "
        f"load {m.get('load_average_start')}), torch threads {m['torch_threads']}",
        "",
        f"{results['rows_per_fit']} rows; GAN-NCM: WGAN-GP, {results['steps']} generator steps × n_critic "
        f"{results['n_critic']}, λ_GP = 10, hidden (32, 32), u_dim 2; ATE = E[y|do(x=1)] − E[y|do(x=0)] "
        "(20k draws, shared noise); ATD = E_X[∂E[y|do(x=a)]/∂a at a = X] pathwise over the data's x; "
        "truth by Gauss–Hermite quadrature. W1(y) = 1-D Wasserstein distance of the model's y marginal "
        "to the data's. Modular = one critic per training group (run only where there is more than "
        f"one group). Bounds on the ATD: Sinkhorn fit ({results['bound_steps'][0]} steps), then min/max "
        f"({results['bound_steps'][1]} steps each) s.t. S_ε ≤ α = S_fit + 2·sd(S_ε between two data samples).",
        "",
        "| SCM | ID | seed | groups | truth ATE | joint ATE err | modular ATE err | truth ATD | joint ATD err "
        "| modular ATD err | W1(y) joint / modular | ATD bounds | contains | width | s/fit (joint, modular, bounds) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---:|---|",
    ]
    for r in results["rows"]:
        j, mo, b = r["joint"], r.get("modular"), r.get("bounds")

        def mod(key: str, mo: dict | None = mo) -> str:
            return f"{mo[key]:.3f}" if mo else "= joint"

        interval = f"[{b['lower']:.3f}, {b['upper']:.3f}]" if b else ""
        contains = {True: "yes", False: "**no**"}[b["contains"]] if b else ""
        width = f"{b['width']:.3f}" if b else ""
        secs = f"{j['seconds']:.0f}, " + (f"{mo['seconds']:.0f}" if mo else "–") + ", " + (f"{b['seconds']:.0f}" if b else "–")
        lines.append(
            f"| {r['scm']} | {'yes' if r['identifiable'] else 'no'} | {r['seed']} | {r['groups']} | "
            f"{r['truth_ate']:.3f} | {j['ate_error']:.3f} | {mod('ate_error')} | "
            f"{r['truth_atd']:.3f} | {j['atd_error']:.3f} | {mod('atd_error')} | "
            f"{j['w1_y']:.3f} / {mod('w1_y') if mo else '–'} | {interval} | {contains} | {width} | {secs} |"
        )
    lines += ["", "## Summary", ""] + [f"- {s}" for s in results["summary"]]
    return "\n".join(lines) + "\n"


def summary(rows: list[dict]) -> list[str]:
    out = []
    ident = [r for r in rows if r["identifiable"]]
    if ident:
        errs = [r["joint"]["ate_error"] for r in ident]
        out.append(f"identifiable SCMs, joint GAN-NCM |ATE error|: mean {sum(errs) / len(errs):.3f}, max {max(errs):.3f} "
                   f"({len(errs)} fits)")
    mod = [r for r in rows if "modular" in r]
    for name in sorted({r["scm"] for r in mod}):
        rs = [r for r in mod if r["scm"] == name]
        j = sum(r["joint"]["ate_error"] for r in rs) / len(rs)
        m = sum(r["modular"]["ate_error"] for r in rs) / len(rs)
        jw = sum(r["joint"]["w1_y"] for r in rs) / len(rs)
        mw = sum(r["modular"]["w1_y"] for r in rs) / len(rs)
        out.append(f"{name}: mean |ATE error| joint {j:.3f} vs modular {m:.3f}; mean W1(y) joint {jw:.3f} vs "
                   f"modular {mw:.3f} ({len(rs)} seeds)")
    bd = [r for r in rows if "bounds" in r]
    for name in sorted({r["scm"] for r in bd}):
        rs = [r for r in bd if r["scm"] == name]
        c = sum(r["bounds"]["contains"] for r in rs)
        w = sum(r["bounds"]["width"] for r in rs) / len(rs)
        out.append(f"{name} ATD bounds contain the truth {c}/{len(rs)}, mean width {w:.3f}")
    return out


def write(rows: list[dict], args: argparse.Namespace, command: str, machine: dict, seconds: float) -> str:
    """Write ``results/ncm_continuous.{json,md}`` for the rows so far; returns the markdown."""
    results = {
        "command": command, "machine": machine, "seconds": seconds, "rows_per_fit": args.rows,
        "steps": args.steps, "n_critic": args.n_critic, "bound_steps": [args.bound_fit_steps, args.bound_search_steps],
        "seeds": args.seeds, "rows": rows, "summary": summary(rows),
    }
    out = ROOT / "results"
    out.mkdir(exist_ok=True)
    (out / "ncm_continuous.json").write_text(json.dumps(results, indent=2))
    md = markdown(results)
    (out / "ncm_continuous.md").write_text(md)
    return md


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--n-critic", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--bound-fit-steps", type=int, default=300)
    parser.add_argument("--bound-search-steps", type=int, default=200)
    parser.add_argument("--scms", nargs="*", default=list_confounded_continuous())
    parser.add_argument("--bounds", nargs="*", default=["iv", "backdoor_observed"])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    rows = []
    command = "python benchmarks/ncm_continuous.py " + " ".join(sys.argv[1:] if argv is None else argv)
    machine = machine_info()
    for seed in range(args.seeds):
        for name in args.scms:
            row = run_one(name, seed, args)
            rows.append(row)
            print(json.dumps(row, default=float), flush=True)
            md = write(rows, args, command, machine, time.perf_counter() - start)  # partial results survive
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
