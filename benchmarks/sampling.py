"""Sampling cost: 1,000,000 interventional rows of a 10-node SCM against the arithmetic floor.

The 10-node SCM is the DCM ladder restricted to x01..x10 (ancestrally closed). For each model
(the defaults, and the spline flow on every node) and each thread count, the best of two
``model.sample(1_000_000, do={"x01": median})`` runs is set beside the *arithmetic floor*
measured in the same process: a bare pass of every node's conditioner — the same matrix
products and activations, on the same 1M rows, with the fitted weights, and nothing else (no
splines, no noise, no encoding). The target is sampling ≤ 1.6× that floor.

bfloat16 (issue 11, item 3, opt-in): the same query with every flow's conditioner in bfloat16
(``deepscm.mechanisms.flow.sampling_precision``), timed beside float32 on ``--bf16-rows`` rows
(same seeds, so the same noise), with the largest paired difference and the interventional
MMD (``mmd_dcm`` on x01's descendants, 2,000 model rows against 2,000 true do-samples) of each
precision, and the MMD between the two precisions' samples.

Usage: ``python benchmarks/sampling.py [--epochs 20] [--threads 1,2] [--bf16-rows 100000]``;
writes ``benchmarks/results/sampling.{json,md}``.
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

import numpy as np
import torch

import deepscm as ds
from deepscm.datasets import load_scm
from deepscm.evaluation import mmd_dcm
from deepscm.mechanisms import ConditionalFlow
from deepscm.mechanisms.flow import sampling_precision

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


def bf16_row(model: ds.DeepSCM, gt, value: float, rows: int, nodes: list[str]) -> dict:
    """float32 vs bfloat16 sampling of the same query: seconds (best of two), the largest paired
    difference (sd units of the float32 sample), and interventional MMDs."""
    seconds, frames = {}, {}
    for name, dtype in (("float32", None), ("bfloat16", "bfloat16")):
        with sampling_precision(model.mechanisms.values(), dtype):
            model.sample(1000, do={"x01": value}, seed=0)
            best = float("inf")
            for rep in range(2):
                t0 = time.perf_counter()
                frames[name] = model.sample(rows, do={"x01": value}, seed=rep)
                best = min(best, time.perf_counter() - t0)
        seconds[name] = best
    desc = [v for v in nodes if v != "x01"]
    a, b = frames["float32"][desc], frames["bfloat16"][desc]
    sd = a.std()
    truth = gt.sample(2000, seed=5, do={"x01": value})[desc]
    std = (truth.mean(), truth.std())

    def z(frame):
        return ((frame.head(2000) - std[0]) / std[1]).to_numpy(np.float64)

    return {"rows": rows, "float32_s": seconds["float32"], "bfloat16_s": seconds["bfloat16"],
            "speedup": seconds["float32"] / seconds["bfloat16"],
            "max_abs_diff_sd": float(((a - b).abs() / sd).max().max()),
            "mean_abs_diff_sd": float(((a - b).abs() / sd).mean().mean()),
            "int_mmd_float32": mmd_dcm(z(a), z(truth)), "int_mmd_bfloat16": mmd_dcm(z(b), z(truth)),
            "mmd_float32_vs_bfloat16": mmd_dcm(z(a), z(b))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--bf16-rows", type=int, default=N, help="rows of the bfloat16 comparison (0: skip)")
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
            bf16 = bf16_row(model, gt, value, args.bf16_rows, nodes) if args.bf16_rows else None
            rows.append({"model": name, "threads": threads, "sample_s": seconds, "floor_s": floor,
                         "ratio": ratio, "pass": ratio <= TARGET_RATIO, "bf16": bf16,
                         "mechanisms": {n: type(m).__name__ for n, m in model.mechanisms.items()}})
            if bf16:
                print(f"{'':8s} bfloat16 on {bf16['rows']:,} rows: {bf16['bfloat16_s']:.2f} s vs float32 "
                      f"{bf16['float32_s']:.2f} s ({bf16['speedup']:.2f}x), int MMD {bf16['int_mmd_bfloat16']:.5f}"
                      f" vs {bf16['int_mmd_float32']:.5f}", flush=True)
            print(f"{name:8s} threads={threads}: {seconds:.2f} s for {N:,} rows, floor "
                  f"{floor:.2f} s, ratio {ratio:.2f} ({'PASS' if ratio <= TARGET_RATIO else 'MISS'}"
                  f" <= {TARGET_RATIO})", flush=True)
    command = "python benchmarks/sampling.py " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = {"command": command.strip(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
            "scm": f"dcm_ladder_nonlinear x01..x10 ({graph.count('->')} edges)", "rows": N,
            "do": {"x01": value}, "epochs": args.epochs, "bf16_rows": args.bf16_rows,
            "load_average_start": [round(x, 2) for x in os.getloadavg()],
            "total_s": round(time.perf_counter() - started, 1)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sampling.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        "# Sampling: 1,000,000 interventional rows of a 10-node SCM",
        "",
        f"`{meta['command']}` — {meta['date']}, torch {meta['torch']}, {meta['total_s']} s",
        "",
        f"Load average at the start: {meta['load_average_start']} (a shared 2-core machine: with"
        " other jobs running, absolute seconds are pessimistic).",
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
    bf = [r for r in rows if r["bf16"]]
    if bf:
        lines += ["", f"## bfloat16 conditioner (opt-in), {bf[0]['bf16']['rows']:,} rows, same noise", "",
                  "Interventional MMD: `mmd_dcm` on x01's descendants, 2,000 model rows vs 2,000 true"
                  " do-samples (standardised by the truth); differences in sd units of the float32 sample.", "",
                  "| model | threads | float32 s | bfloat16 s | speed-up | max / mean paired diff (sd) | "
                  "int MMD float32 | int MMD bfloat16 | MMD float32 vs bfloat16 |",
                  "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
        for r in bf:
            b = r["bf16"]
            lines.append(f"| {r['model']} | {r['threads']} | {b['float32_s']:.2f} | {b['bfloat16_s']:.2f} | "
                         f"{b['speedup']:.2f}x | {b['max_abs_diff_sd']:.4f} / {b['mean_abs_diff_sd']:.5f} | "
                         f"{b['int_mmd_float32']:.5f} | {b['int_mmd_bfloat16']:.5f} | {b['mmd_float32_vs_bfloat16']:.5f} |")
    (RESULTS / "sampling.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
