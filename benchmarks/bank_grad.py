"""The flow bank's hand-derived gradient (``deepscm.bank_grad``) against autograd, in one process.

1. A full bank step (negative log-likelihood, gradient and the bank's Adam step, 512 rows,
   default flows with random weights) for 1, 2, 4 and 8 nodes, each way in 8 interleaved
   rounds of 100 steps (medians), one torch thread; and the largest gradient difference between
   the two ways on the same weights and batch, in float32 and float64.
2. Whole default fits (``DeepSCM(graph).fit(data, seed=0)``: automatic selection, the bank for
   the spline-flow candidates) of the suite SCMs whose fit time misses issue 11's target, each
   way on the same data (5,000 rows, data seeds 11, 21 and 31), interleaved, and a third way,
   autograd with its gradients perturbed by a relative 10⁻⁶: fit seconds, epochs,
   held-out log-likelihood (2,000 fresh rows) and counterfactual MSE against the true
   counterfactual (``fit_scaling.job_knob``'s protocol). In float64 the two ways train to the
   same weights (``tests/test_bank.py``); in float32 their round-off differs, which moves early
   stopping by a few epochs either way, so compare accuracy as a spread, not digit by digit;
   the perturbed way shows the size of that spread.

Writes ``benchmarks/results/bank_grad.{json,md}``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bank_grad.py
"""

from __future__ import annotations

import copy
import statistics
import sys
import time
from pathlib import Path

import sklearn.ensemble  # noqa: F401  (imported before any fit is timed)
import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from bank_tanh import random_bank  # noqa: E402
from fit_scaling import job_knob  # noqa: E402
from deepscm import bank  # noqa: E402
from deepscm.bank_grad import nll_and_grads  # noqa: E402
from deepscm.mechanisms.base import MAX_GRAD_NORM  # noqa: E402
from deepscm.studies.report import write_json  # noqa: E402
from machine import machine_info, report_header  # noqa: E402

NODES = (1, 2, 4, 8)
ROWS, ROUNDS, STEPS, LR = 512, 8, 100, 5e-3
SCMS = ("dcm_triangle_nonlinear", "dcm_chain_nonlinear", "dcm_diamond_nonlinear", "dcm_y_nonlinear",
        "basic_collider_nonadditive", "vaca_triangle_nonadditive")
DATA_SEEDS = (11, 21, 31)
DEFAULT_KNOB = "default (bs 512, lr 5e-3, patience 20, lr_decay 0.5)"


def autograd_nll_and_grads(flows: bank.FlowBank, ctx: torch.Tensor, x: torch.Tensor,
                           weight: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The bank's step before: ``FlowBank.nll`` and ``torch.autograd.grad``."""
    loss = flows.nll(ctx, x)
    return loss.detach(), list(torch.autograd.grad((loss * weight).sum(), list(flows.parameters())))


_PERTURBATION = torch.Generator().manual_seed(123)


def perturbed_autograd_nll_and_grads(flows: bank.FlowBank, ctx: torch.Tensor, x: torch.Tensor,
                                     weight: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Autograd's gradients times ``1 + 10⁻⁶ ε``, ε ~ N(0, 1) per element: a float32-sized
    perturbation, to show how far round-off alone moves a whole fit (training is chaotic)."""
    loss, grads = autograd_nll_and_grads(flows, ctx, x, weight)
    return loss, [g * (1 + 1e-6 * torch.randn(g.shape, generator=_PERTURBATION)) for g in grads]


WAYS = {"hand-derived": nll_and_grads, "autograd": autograd_nll_and_grads}
#: the fits also run the perturbed autograd, the spread that round-off alone causes
FIT_WAYS = {**WAYS, "perturbed autograd": perturbed_autograd_nll_and_grads}


def _seconds_per_step(flows: bank.FlowBank, ctx: torch.Tensor, x: torch.Tensor, way: str) -> float:
    params = list(flows.parameters())
    opt = bank._MaskedAdam(params, LR, 0.0, MAX_GRAD_NORM)
    weight = torch.ones(flows.nodes)
    grad = WAYS[way]

    def one() -> None:
        opt.step(grad(flows, ctx, x, weight)[1])

    for _ in range(10):
        one()
    start = time.perf_counter()
    for _ in range(STEPS):
        one()
    return (time.perf_counter() - start) / STEPS


def step(nodes: int) -> dict:
    flows, ctx, x = random_bank(nodes, ROWS)
    times: dict[str, list[float]] = {way: [] for way in WAYS}
    for _ in range(ROUNDS):
        for way in times:
            times[way].append(_seconds_per_step(copy.deepcopy(flows), ctx, x, way) * 1e3)
    medians = {k: statistics.median(v) for k, v in times.items()}
    diffs = {}
    for dtype in (torch.float32, torch.float64):
        model = copy.deepcopy(flows).to(dtype)
        weight = torch.ones(nodes, dtype=dtype)
        a, b = (WAYS[way](model, ctx.to(dtype), x.to(dtype), weight)[1] for way in WAYS)
        diffs[str(dtype).removeprefix("torch.")] = max(
            float((p - q).abs().max() / (q.abs().max() + 1e-30)) for p, q in zip(a, b))
    return {"nodes": nodes, "ms": medians, "speedup": medians["autograd"] / medians["hand-derived"],
            "max_relative_gradient_difference": diffs}


def fits() -> list[dict]:
    rows = []
    for scm in SCMS:
        for i, data_seed in enumerate(DATA_SEEDS):
            order = list(FIT_WAYS.items())
            for way, fn in order if i % 2 == 0 else order[::-1]:  # neither way always runs first
                bank.nll_and_grads = fn
                try:
                    out = job_knob(scm, DEFAULT_KNOB, data_seed)
                finally:
                    bank.nll_and_grads = nll_and_grads
                out["way"] = way
                rows.append(out)
                print(f"{scm} seed {data_seed} {way}: {out['seconds']:.2f} s, {out['epochs_run']} epochs, "
                      f"log-lik {out['test_loglik']:.4f}, CF MSE {out['cf_mse_std']:.5f}", flush=True)
    return rows


def _fit_table(rows: list[dict]) -> list[str]:
    ways = list(FIT_WAYS)
    by = {(r["scm"], r["data_seed"], r["way"]): r for r in rows}
    lines = ["Each cell: " + " / ".join(ways) + ".", "",
             "| SCM | data seed | fit s | epochs | test log-lik | CF MSE |", "|---|---:|---:|---:|---:|---:|"]
    for scm in SCMS:
        for seed in DATA_SEEDS:
            cells = [by[(scm, seed, way)] for way in ways]
            lines.append(f"| {scm} | {seed} | " + " | ".join(
                " / ".join(fmt.format(c[key]) for c in cells)
                for key, fmt in (("seconds", "{:.2f}"), ("epochs_run", "{}"), ("test_loglik", "{:.4f}"),
                                 ("cf_mse_std", "{:.5f}"))) + " |")
    lines += ["", "| way | total fit s | mean test log-lik | mean CF MSE |", "|---|---:|---:|---:|"]
    for way in ways:
        mine = [r for r in rows if r["way"] == way]
        lines.append(f"| {way} | {sum(r['seconds'] for r in mine):.1f} | "
                     f"{statistics.mean(r['test_loglik'] for r in mine):.4f} | "
                     f"{statistics.mean(r['cf_mse_std'] for r in mine):.5f} |")
    ratios = [by[(scm, seed, "hand-derived")]["seconds"] / by[(scm, seed, "autograd")]["seconds"]
              for scm in SCMS for seed in DATA_SEEDS]
    lines += ["", f"Fit-time ratio hand-derived / autograd: median {statistics.median(ratios):.2f} "
              f"(range {min(ratios):.2f}–{max(ratios):.2f})."]
    return lines


def main() -> int:
    torch.set_num_threads(1)
    started = time.perf_counter()
    steps = [step(n) for n in NODES]
    fit_rows = fits()
    out = {"machine": machine_info(), "steps": steps, "fits": fit_rows, "rows": ROWS, "rounds": ROUNDS,
           "steps_per_round": STEPS, "runtime_s": time.perf_counter() - started}
    results = ROOT / "results"
    write_json(results / "bank_grad.json", out)
    lines = [
        "# Flow bank: the hand-derived gradient against autograd", "",
        *report_header("OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bank_grad.py", out["machine"],
                       out["runtime_s"], versions=("torch",)), "",
        f"## Bank step ({ROWS} rows, default flows with random weights, the bank's Adam; medians of "
        f"{ROUNDS} interleaved rounds of {STEPS} steps)", "",
        "| nodes | hand-derived (ms) | autograd (ms) | speed-up | largest relative gradient difference float32 / float64 |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {s['nodes']} | {s['ms']['hand-derived']:.2f} | {s['ms']['autograd']:.2f} | {s['speedup']:.2f}× | "
              f"{s['max_relative_gradient_difference']['float32']:.1e} / "
              f"{s['max_relative_gradient_difference']['float64']:.1e} |" for s in steps]
    lines += ["", "## Default fits (5,000 rows; held-out log-lik on 2,000 fresh rows, higher is better; "
              "CF MSE in sd² units against the true counterfactual; the three ways on the same data)", ""]
    lines += _fit_table(fit_rows)
    (results / "bank_grad.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
