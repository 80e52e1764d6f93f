"""Sampling cost: 1,000,000 interventional rows of a 10-node SCM against the arithmetic floor.

The 10-node SCM is the DCM ladder restricted to x01..x10 (ancestrally closed). For each model
(the defaults, and the spline flow on every node) and each thread count, the best of two
``model.sample(1_000_000, do={"x01": median})`` runs is set beside the *arithmetic floor*
measured in the same process: a bare pass of every node's conditioner — the same matrix
products and activations, on the same 1M rows, with the fitted weights, and nothing else (no
splines, no noise, no encoding). The target is sampling ≤ 1.6× that floor.

Usage: ``python benchmarks/sampling.py [--epochs 20] [--threads 1,2]``; writes
``benchmarks/results/sampling.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

import deepscm as ds
from deepscm.datasets import load_scm
from deepscm.mechanisms import ConditionalFlow

N = 1_000_000
TARGET_RATIO = 1.6
RESULTS = Path(__file__).resolve().parent / "results"


def ladder10() -> tuple[str, list[str], object]:
    gt = load_scm("dcm_ladder_nonlinear")
    nodes = [f"x{i:02d}" for i in range(1, 11)]
    edges = "; ".join(f"{p} -> {v}" for v in nodes for p in gt.parents[v])
    return edges, nodes, gt


def floor_seconds(model: ds.DeepSCM, n: int) -> float:
    """One bare pass of every flow node's conditioner over ``n`` rows (the fitted weights)."""
    passes = []
    for node, mech in model.mechanisms.items():
        if isinstance(mech, ConditionalFlow) and mech.spec.context_dim and mech.spec.x_dim == 1:
            passes.append((mech._conditioner(), torch.randn(n, mech.spec.context_dim)))
    with torch.inference_mode():
        for layers, ctx in passes:  # warm-up
            ConditionalFlow._conditioner_params(layers, ctx[:1000])
        t0 = time.perf_counter()
        for layers, ctx in passes:
            for start in range(0, n, 4096):
                ConditionalFlow._conditioner_params(layers, ctx[start:start + 4096])
        return time.perf_counter() - t0


def sample_seconds(model: ds.DeepSCM, value: float) -> float:
    model.sample(1000, do={"x01": value}, seed=0)
    best = float("inf")
    for rep in range(2):
        t0 = time.perf_counter()
        frame = model.sample(N, do={"x01": value}, seed=rep)
        best = min(best, time.perf_counter() - t0)
    assert len(frame) == N
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    graph, nodes, gt = ladder10()
    data = gt.sample(5000, seed=97)[nodes]
    value = float(data["x01"].median())
    models = {
        "default": ds.DeepSCM(graph),
        "flow": ds.DeepSCM(graph, mechanisms=ConditionalFlow()),
    }
    for model in models.values():
        model.fit(data, epochs=args.epochs, seed=0, progress=False)
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for name, model in models.items():
            floor = floor_seconds(model, N)
            seconds = sample_seconds(model, value)
            ratio = seconds / floor if floor > 0 else float("nan")
            rows.append({"model": name, "threads": threads, "sample_s": seconds, "floor_s": floor,
                         "ratio": ratio, "pass": ratio <= TARGET_RATIO,
                         "mechanisms": {n: type(m).__name__ for n, m in model.mechanisms.items()}})
            print(f"{name:8s} threads={threads}: {seconds:.2f} s for {N:,} rows, floor "
                  f"{floor:.2f} s, ratio {ratio:.2f} ({'PASS' if ratio <= TARGET_RATIO else 'MISS'}"
                  f" <= {TARGET_RATIO})", flush=True)
    command = "python benchmarks/sampling.py " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = {"command": command.strip(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
            "scm": f"dcm_ladder_nonlinear x01..x10 ({graph.count('->')} edges)", "rows": N,
            "do": {"x01": value}, "epochs": args.epochs,
            "total_s": round(time.perf_counter() - started, 1)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sampling.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        "# Sampling: 1,000,000 interventional rows of a 10-node SCM",
        "",
        f"`{meta['command']}` — {meta['date']}, torch {meta['torch']}, {meta['total_s']} s",
        "",
        "Floor: a bare pass of every flow node's conditioner (fitted weights, same matrix products"
        " and activations, same rows, 4,096-row blocks) in the same process. Target: sampling"
        f" ≤ {TARGET_RATIO}× the floor.",
        "",
        "| model | threads | sampling s | floor s | ratio | target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['threads']} | {r['sample_s']:.2f} | {r['floor_s']:.2f} | "
                     f"{r['ratio']:.2f} | {'met' if r['pass'] else 'missed'} |")
    lines += ["", "Mechanisms (default): " + ", ".join(f"{n}: {m}" for n, m in rows[0]["mechanisms"].items())]
    (RESULTS / "sampling.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
