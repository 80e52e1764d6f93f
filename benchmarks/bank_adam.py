"""The flow bank's optimiser: Adam on flat moments (``deepscm.bank._MaskedAdam``) against the
same Adam over the list of stacked weights (the bank's optimiser before), in one process.

A full bank step (forward, backward and the optimiser step of :meth:`deepscm.bank.FlowBank.nll`,
512 rows, default flows with random weights, per-node clipping at 10) for 1, 2, 4 and 8 nodes,
each optimiser in 8 interleaved rounds of 100 steps (medians), one torch thread; and the
largest weight difference between the two after one step from the same weights and batch, in
float32 and float64 (the updates are the same up to the clipping norm's summation order; over
many steps from these random weights the training is chaotic, and round-off grows by an order
of magnitude a step either way).

Writes ``benchmarks/results/bank_adam.{json,md}``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bank_adam.py
"""

from __future__ import annotations

import copy
import math
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from bank_tanh import random_bank  # noqa: E402
from deepscm import bank  # noqa: E402
from deepscm.mechanisms.base import MAX_GRAD_NORM  # noqa: E402
from deepscm.studies.report import write_json  # noqa: E402
from machine import machine_info, report_header  # noqa: E402

NODES = (1, 2, 4, 8)
ROWS, ROUNDS, STEPS, LR = 512, 8, 100, 5e-3


class _ListAdam:
    """The bank's Adam before: moments per stacked weight, the per-node clipping norm and every
    moment update as one operation per weight (``torch._foreach_*``)."""

    def __init__(self, params: list[torch.nn.Parameter], lr: float, max_grad_norm: float) -> None:
        self.params, self.lr, self.max_norm = params, lr, max_grad_norm
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor]) -> None:
        norms = torch.stack([g.square().flatten(1).sum(1) for g in grads]).sum(0).sqrt()
        coef = (self.max_norm / (norms + 1e-6)).clamp(max=1.0)
        grads = [g * coef.reshape(-1, *[1] * (g.dim() - 1)) for g in grads]
        b1, b2 = 0.9, 0.999
        self.t += 1
        torch._foreach_lerp_(self.m, grads, 1 - b1)
        torch._foreach_mul_(self.v, b2)
        torch._foreach_addcmul_(self.v, grads, grads, 1 - b2)
        denom = torch._foreach_sqrt(self.v)
        torch._foreach_div_(denom, math.sqrt(1 - b2**self.t))
        torch._foreach_add_(denom, 1e-8)
        torch._foreach_addcdiv_(self.params, self.m, denom, -self.lr / (1 - b1**self.t))


def _optimiser(kind: str, params: list[torch.nn.Parameter]):
    if kind == "flat":
        return bank._MaskedAdam(params, LR, 0.0, MAX_GRAD_NORM)
    return _ListAdam(params, LR, MAX_GRAD_NORM)


def _train(flows: bank.FlowBank, ctx: torch.Tensor, x: torch.Tensor, kind: str, steps: int) -> float:
    """Seconds per step of ``steps`` full steps (after 10 warm-up steps)."""
    params = list(flows.parameters())
    opt = _optimiser(kind, params)

    def one() -> None:
        opt.step(list(torch.autograd.grad(flows.nll(ctx, x).sum(), params)))

    for _ in range(10):
        one()
    start = time.perf_counter()
    for _ in range(steps):
        one()
    return (time.perf_counter() - start) / steps


def step(nodes: int) -> dict:
    flows, ctx, x = random_bank(nodes, ROWS)
    times: dict[str, list[float]] = {"flat": [], "list": []}
    for _ in range(ROUNDS):
        for kind in times:
            times[kind].append(_train(copy.deepcopy(flows), ctx, x, kind, STEPS) * 1e3)
    medians = {k: statistics.median(v) for k, v in times.items()}
    return {"nodes": nodes, "ms": medians, "speedup": medians["list"] / medians["flat"],
            "max_weight_difference": {str(d).removeprefix("torch."): _one_step_difference(flows, ctx, x, d)
                                      for d in (torch.float32, torch.float64)}}


def _one_step_difference(flows: bank.FlowBank, ctx: torch.Tensor, x: torch.Tensor, dtype: torch.dtype) -> float:
    """The largest weight difference between the two optimisers after one step."""
    after = {}
    for kind in ("flat", "list"):
        model = copy.deepcopy(flows).to(dtype)
        params = list(model.parameters())
        _optimiser(kind, params).step(list(torch.autograd.grad(model.nll(ctx.to(dtype), x.to(dtype)).sum(), params)))
        after[kind] = params
    return max(float((a - b).detach().abs().max()) for a, b in zip(after["flat"], after["list"]))


def main() -> int:
    torch.set_num_threads(1)
    started = time.perf_counter()
    steps = [step(n) for n in NODES]
    out = {"machine": machine_info(), "steps": steps, "rows": ROWS, "rounds": ROUNDS, "steps_per_round": STEPS,
           "runtime_s": time.perf_counter() - started}
    results = ROOT / "results"
    write_json(results / "bank_adam.json", out)
    lines = [
        "# Flow bank: Adam on flat moments against Adam over the list of stacked weights", "",
        *report_header("OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bank_adam.py", out["machine"],
                       out["runtime_s"], versions=("torch",)), "",
        f"Full bank step (forward, backward and optimiser step of `FlowBank.nll`, {ROWS} rows, default "
        f"flows; medians of {ROUNDS} interleaved rounds of {STEPS} steps); the largest weight difference "
        "between the two optimisers after one step from the same weights:", "",
        "| nodes | flat moments (ms) | list of weights (ms) | speed-up | weight difference float32 / float64 |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {s['nodes']} | {s['ms']['flat']:.2f} | {s['ms']['list']:.2f} | {s['speedup']:.2f}× | "
              f"{s['max_weight_difference']['float32']:.1e} / {s['max_weight_difference']['float64']:.1e} |"
              for s in steps]
    (results / "bank_adam.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
