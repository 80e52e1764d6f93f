"""The flow bank's tanh layers: ``2·sigmoid(2x) − 1`` with tanh's backward (``deepscm.bank._Tanh``)
against ``torch.tanh``, in one process.

Two measurements, one torch thread:

- the kernels on a ``[2, 512, 64]`` tensor (two nodes, a 512-row batch, 64 hidden units): the
  microseconds of ``torch.tanh`` and of ``_Tanh``'s forward, and their largest difference;
- a bank step (forward and backward of :meth:`deepscm.bank.FlowBank.nll`, 512 rows, default
  flows with random weights) for 2, 4 and 8 nodes, with the bank's activation as shipped and
  with ``torch.tanh`` in its place, in 8 interleaved rounds of 200 steps (medians).

Writes ``benchmarks/results/bank_tanh.{json,md}``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bank_tanh.py
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from deepscm import bank  # noqa: E402
from deepscm.mechanisms import ConditionalFlow  # noqa: E402
from deepscm.mechanisms.base import MechanismSpec  # noqa: E402
from deepscm.studies.report import write_json  # noqa: E402
from machine import machine_info, report_header  # noqa: E402

NODES = (2, 4, 8)
ROWS, ROUNDS, STEPS = 512, 8, 200
SHIPPED = bank._Tanh


class _TorchTanh:
    """The activation the bank used before: ``torch.tanh`` with autograd's own backward."""

    apply = staticmethod(torch.tanh)


def _microseconds(f: Callable[[], object], n: int) -> float:
    for _ in range(20):
        f()
    start = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - start) / n * 1e6


def kernels() -> dict:
    x = torch.randn(2, ROWS, 64, generator=torch.Generator().manual_seed(0))
    diff = float((SHIPPED.apply(x) - torch.tanh(x)).abs().max())
    return {"shape": list(x.shape), "torch_tanh_us": _microseconds(lambda: torch.tanh(x), 2000),
            "bank_tanh_us": _microseconds(lambda: SHIPPED.apply(x), 2000), "max_abs_difference": diff}


def random_bank(nodes: int, rows: int = ROWS) -> tuple[bank.FlowBank, torch.Tensor, torch.Tensor]:
    """A bank of ``nodes`` default scalar flows with two parents, its weights drawn from
    N(0, 0.3²) (seed 0), and random contexts ``[nodes, rows, 2]`` and values ``[nodes, rows]``."""
    torch.manual_seed(0)
    mechs = []
    for _ in range(nodes):
        mech = ConditionalFlow()
        mech.build(MechanismSpec(x_dim=1, context_dim=2))
        mechs.append(mech)
    flows = bank.FlowBank(mechs)
    with torch.no_grad():
        for p in flows.parameters():
            p.normal_(0.0, 0.3)
    return flows, torch.randn(nodes, rows, 2), torch.randn(nodes, rows)


def step(nodes: int) -> dict:
    flows, ctx, x = random_bank(nodes)
    params = list(flows.parameters())

    def forward_backward() -> None:
        torch.autograd.grad(flows.nll(ctx, x).sum(), params)

    times: dict[str, list[float]] = {"bank_tanh": [], "torch_tanh": []}
    try:
        for _ in range(ROUNDS):
            for name, activation in (("bank_tanh", SHIPPED), ("torch_tanh", _TorchTanh)):
                bank._Tanh = activation
                times[name].append(_microseconds(forward_backward, STEPS) / 1e3)
    finally:
        bank._Tanh = SHIPPED
    medians = {k: statistics.median(v) for k, v in times.items()}
    return {"nodes": nodes, "ms": medians, "speedup": medians["torch_tanh"] / medians["bank_tanh"]}


def main() -> int:
    torch.set_num_threads(1)
    started = time.perf_counter()
    kern = kernels()
    steps = [step(n) for n in NODES]
    out = {"machine": machine_info(), "kernels": kern, "steps": steps, "rows": ROWS, "rounds": ROUNDS,
           "steps_per_round": STEPS, "runtime_s": time.perf_counter() - started}
    results = ROOT / "results"
    write_json(results / "bank_tanh.json", out)
    lines = [
        "# Flow bank: tanh layers as 2·sigmoid(2x) − 1 against torch.tanh", "",
        *report_header("OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bank_tanh.py", out["machine"],
                       out["runtime_s"], versions=("torch",)), "",
        f"Kernels on {kern['shape']}: `torch.tanh` {kern['torch_tanh_us']:.0f} µs, the bank's "
        f"{kern['bank_tanh_us']:.0f} µs; largest difference {kern['max_abs_difference']:.1e}.", "",
        f"Bank step (forward and backward of `FlowBank.nll`, {ROWS} rows; medians of {ROUNDS} interleaved "
        f"rounds of {STEPS} steps):", "",
        "| nodes | bank's tanh (ms) | torch.tanh (ms) | speed-up |",
        "|---:|---:|---:|---:|",
    ]
    lines += [f"| {s['nodes']} | {s['ms']['bank_tanh']:.2f} | {s['ms']['torch_tanh']:.2f} | {s['speedup']:.2f}× |"
              for s in steps]
    (results / "bank_tanh.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
