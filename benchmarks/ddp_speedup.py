"""Speed-up of a data-parallel CPU fit (gloo) over one process, and how close the fits are.

A suite SCM (``--scm``, default the DCM paper's nonlinear triangle) is sampled (``--rows``
rows), every node gets the spline flow, and ``DeepSCM.fit`` runs for a fixed ``--epochs`` with
no held-out rows (no early stopping), so the time is the training's, once per entry of
``--devices``. Per run: the wall time of the ``fit`` call (process start, process group,
saving and loading the result included), the training time inside rank 0 (``fit_info``), and
the per-node mean log-likelihood of 20,000 fresh rows from the SCM, so the fits can be
compared (after an untimed warm-up fit). A control runs the one-process fit twice at once in
two independent processes: how much slower each gets says how many cores two processes
really had (on a shared machine, fewer than ``cpu_count``). Each process runs one thread (``OMP_NUM_THREADS=1``), so ``W`` processes use ``W``
cores. Writes ``results/ddp_speedup.{json,md}``.

    OMP_NUM_THREADS=1 python benchmarks/ddp_speedup.py                     # 1M rows, 1 epoch
    OMP_NUM_THREADS=1 python benchmarks/ddp_speedup.py --rows 200000 --epochs 2
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

import deepscm as ds
from deepscm.datasets import load_scm
from deepscm.io import to_jsonable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info  # noqa: E402

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent
DEFAULT_OUT = ROOT / "results" / "ddp_speedup.json"


def run(scm_name: str, rows: int, epochs: int, batch_size: int, devices: list[int], seed: int) -> dict:
    truth = load_scm(scm_name)
    train = truth.sample(rows, seed=seed)
    test = truth.sample(20_000, seed=seed + 1)
    # warm-up: the first fit of a session imports torch's optimiser machinery (seconds)
    ds.DeepSCM(truth.graph, mechanisms="flow").fit(train.iloc[:500], epochs=1, val_fraction=0.0, progress=False)
    runs = []
    for world in devices:
        model = ds.DeepSCM(truth.graph, mechanisms="flow")
        started = time.perf_counter()
        model.fit(train, epochs=epochs, batch_size=batch_size, seed=seed, val_fraction=0.0,
                  progress=False, devices=world, strategy="ddp" if world > 1 else "auto")
        wall = time.perf_counter() - started
        held_out = model.log_prob(test, per_node=True).mean()
        runs.append({
            "processes": world,
            "wall_s": round(wall, 2),
            "train_s": model.fit_info["seconds"],
            "test_log_prob": {k: round(float(v), 4) for k, v in held_out.items()},
        })
        print(f"{world} process(es): {wall:.1f} s wall, {model.fit_info['seconds']:.1f} s training", flush=True)
    base = runs[0]
    for r in runs:
        r["speedup_wall"] = round(base["wall_s"] / r["wall_s"], 3)
        r["speedup_train"] = round(base["train_s"] / r["train_s"], 3)
    # control: the same one-process fit twice at once, in two independent processes; on idle
    # cores each takes as long as one alone, on a busy machine longer
    fit_once = functools.partial(_fit_alone, truth.graph, train, epochs, batch_size, seed)
    context = mp.get_context("fork")
    started = time.perf_counter()
    pair = [context.Process(target=fit_once) for _ in range(2)]
    for p in pair:
        p.start()
    for p in pair:
        p.join()
    both = time.perf_counter() - started
    control = {"two_independent_fits_wall_s": round(both, 2),
               "two_process_throughput": round(2 * base["wall_s"] / both, 2)}
    print(f"two independent 1-process fits at once: {both:.1f} s", flush=True)
    return {"scm": scm_name, "graph": truth.graph, "rows": rows, "epochs": epochs,
            "batch_size": batch_size, "seed": seed, "runs": runs, "control": control}


def _fit_alone(graph: str, train, epochs: int, batch_size: int, seed: int) -> None:
    ds.DeepSCM(graph, mechanisms="flow").fit(train, epochs=epochs, batch_size=batch_size, seed=seed,
                                             val_fraction=0.0, progress=False)


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# Data-parallel CPU fit: speed-up over one process",
        "",
        f"`{results['command']}` — {m['date']}, {m['platform']}, {m['cpu_count']} CPU(s), torch "
        f"{m['torch']}, load average at start {m.get('load_average_start')}",
        "",
        f"SCM `{results['scm']}` (`{results['graph']}`), {results['rows']:,} rows, spline flow on every "
        f"node, {results['epochs']} epoch(s), global batch {results['batch_size']}, no early stopping, "
        "one thread per process (gloo). Wall: the whole `fit` call (processes, process group, result "
        "file); training: rank 0's `fit_info['seconds']`. Log-likelihood: mean per node on 20,000 "
        "fresh rows.",
        "",
        "| processes | wall (s) | training (s) | speed-up (wall) | speed-up (training) | test log-lik per node |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for r in results["runs"]:
        ll = ", ".join(f"{k} {v:.3f}" for k, v in r["test_log_prob"].items())
        lines.append(f"| {r['processes']} | {r['wall_s']:.1f} | {r['train_s']:.1f} | {r['speedup_wall']:.2f}× "
                     f"| {r['speedup_train']:.2f}× | {ll} |")
    c = results["control"]
    lines += [
        "",
        f"Control: two independent one-process fits started at once took {c['two_independent_fits_wall_s']:.1f} s "
        f"together, against {results['runs'][0]['wall_s']:.1f} s for one alone: two processes did "
        f"{c['two_process_throughput']:.2f}× the work of one per second (2.00× on two idle cores), "
        "the most a 2-process data-parallel fit could gain at that moment.",
    ]
    if results.get("note"):
        lines += ["", results["note"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scm", default="dcm_triangle_nonlinear")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--devices", default="1,2", help="process counts to time, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default="", help="a sentence on the machine's state, for the table")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = {
        "command": "OMP_NUM_THREADS=1 python benchmarks/ddp_speedup.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine_info(),
        **run(args.scm, args.rows, args.epochs, args.batch_size,
              [int(d) for d in args.devices.split(",")], args.seed),
        "note": args.note,
    }
    results["seconds"] = round(time.perf_counter() - started, 1)
    text = markdown(results)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(to_jsonable(results), indent=2))
    args.out.with_suffix(".md").write_text(text)


if __name__ == "__main__":
    main()
