"""Per-operation costs behind the flow bank's step and the residual density's score.

Kernels timed on this machine, one thread, each the fastest of 7 rounds:

- an element-wise operation on a 512-row vector with a Python number (``v * 2.0``, which
  first converts the number to a tensor) against a 0-dim tensor of the vector's dtype
  (``deepscm.bank_grad.constants``);
- ``torch.exp`` of 1,000,000 arguments in [-50, 0] against [-1000, 0] (below about -88 the
  float32 result underflows, by a slow path on some CPUs), and the residual kernel density's
  ``log_prob`` on 500 rows against 2,000 residuals, which floors its small terms at e^-80;
- ``torch.tanh`` against ``2·sigmoid(2x) − 1`` on ``[2, 512, 64]`` (the bank's hidden layers)
  and which of them the bank chose on this machine (``deepscm.bank_grad.tanh``).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bank_constants.py

Writes ``benchmarks/results/bank_constants.{json,md}``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from deepscm import bank_grad  # noqa: E402
from deepscm.mechanisms.residual_density import ResidualDensity  # noqa: E402
from deepscm.studies.report import write_json  # noqa: E402

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from machine import machine_info  # noqa: E402


def microseconds(f: Callable[[], object], calls: int) -> float:
    """The fastest of 7 rounds of ``calls`` calls, per call."""
    f()
    best = float("inf")
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(calls):
            f()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


def main() -> int:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    v, w = torch.randn(1, 512, generator=g), torch.randn(1, 512, generator=g)
    c = bank_grad.constants(v)
    scalar = {
        "v * 2.0": microseconds(lambda: v * 2.0, 5000),
        "v * two (0-dim tensor)": microseconds(lambda: v * c.two, 5000),
        "1.0 - v": microseconds(lambda: 1.0 - v, 5000),
        "one - v (0-dim tensor)": microseconds(lambda: c.one - v, 5000),
        "v * w (two vectors)": microseconds(lambda: v * w, 5000),
    }
    mild, deep = -50 * torch.rand(1000, 1000, generator=g), -1000 * torch.rand(1000, 1000, generator=g)
    density = ResidualDensity(1, 2000)
    density.fit(torch.randn(4500, 1, generator=g) ** 3)
    u = 2 * torch.randn(500, 1, generator=g)
    underflow = {
        "exp, arguments in [-50, 0]": microseconds(lambda: mild.exp(), 20),
        "exp, arguments in [-1000, 0]": microseconds(lambda: deep.exp(), 20),
        "ResidualDensity.log_prob, 500 rows × 2,000 residuals": microseconds(lambda: density.log_prob(u), 20),
    }
    x = torch.randn(2, 512, 64, generator=g)
    kernels = {
        "torch.tanh [2, 512, 64]": microseconds(lambda: torch.tanh(x), 2000),
        "2·sigmoid(2x) − 1 [2, 512, 64]": microseconds(lambda: bank_grad.tanh_by_sigmoid(x), 2000),
    }
    chosen = "torch.tanh" if bank_grad.cpu_tanh() is torch.tanh else "2·sigmoid(2x) − 1"
    meta = {"command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bank_constants.py",
            "machine": machine_info(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    result = {"meta": meta, "scalar_us": scalar, "underflow_us": underflow, "tanh_us": kernels, "tanh_chosen": chosen}
    write_json(ROOT / "results" / "bank_constants.json", result)
    lines = [
        "# Per-operation costs behind the flow bank's step and the residual density's score", "",
        f"Command: `{meta['command']}`  ",
        f"Date: {meta['machine']['date']}; torch {meta['machine']['torch']} (CPU capability "
        f"{meta['cpu_capability']}); 1 thread; fastest of 7 rounds.", "",
        "| kernel | µs per call |", "|---|---:|",
        *(f"| {k} | {t:.2f} |" for part in (scalar, underflow, kernels) for k, t in part.items()),
        "", f"The bank's tanh on this machine: {chosen}.",
    ]
    text = "\n".join(lines) + "\n"
    (ROOT / "results" / "bank_constants.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
