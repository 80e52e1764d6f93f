"""Interventional MMD of issue 11's suite with the models' Monte Carlo noise averaged out.

The suite (``scm_suite.py``, the DCM protocol) scores each intervention by one MMD between 100
model samples and 100 true samples; on an SCM that every model fits well, the seeds' spread
of that score is larger than the models' differences. Here the same fits (the suite's data,
seeds and models) answer every query of the suite ``--reps`` times with fresh model samples
(seeds the suite does not use), against the suite's same true samples, and fresh true samples
give the floor the same way. Reported: the mean over seeds × queries × repetitions and its
standard error (over the seed × query cells, each averaged over the repetitions), and the
first model's difference from each other's, paired by cell (every model meets the same true
samples, whose draw is most of a cell's spread). One thread.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mmd_replicates.py --scms textbook --reps 10

Writes ``benchmarks/results/mmd_replicates.{json,md}`` (or ``--name``).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
import scm_suite as suite  # noqa: E402  (sets one thread before torch is used)
from machine import machine_info  # noqa: E402

from deepscm.studies.report import write_json  # noqa: E402

#: a seed part the suite never uses, so the repetitions' samples are fresh.
_REPLICATE_STREAM = 99


def replicate(name: str, seeds: list[int], models: list[str], reps: int) -> dict:
    """Per model (and ``"floor"``): one value per seed × query, the mean over ``reps`` MMDs."""
    gt = suite.load_scm(name)
    idx = suite._seed_index(name)
    cells: dict[str, list[float]] = {m: [] for m in [*models, "floor"]}
    for seed in seeds:
        truth = suite.truth_for(gt, idx, seed)
        fitted = {}
        for kind in models:
            fitted[kind] = suite.make_model(kind)
            fitted[kind].fit(gt, truth["data"], seed=seed)
        for i, q in enumerate(truth["queries"]):
            per = {m: [] for m in cells}
            for rep in range(reps):
                stream = suite._seed(idx, seed, _REPLICATE_STREAM, i, rep)
                for kind, model in fitted.items():
                    sample = model.do_sample(q["node"], q["value"], suite.N_INT, seed=stream)
                    per[kind].append(suite.mmd_dcm(suite._cols(sample, q["desc"]), q["true_do"]))
                fresh = gt.sample(suite.N_INT, seed=stream + 1, do={q["node"]: q["value"]})
                per["floor"].append(suite.mmd_dcm(suite._cols(fresh, q["desc"]), q["true_do"]))
            for m, values in per.items():
                cells[m].append(float(np.mean(values)))
    return cells


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scms", default="textbook")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--models", default="default,gcm")
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--name", default="mmd_replicates", help="results/<name>.{json,md}")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    models, seeds = args.models.split(","), list(range(args.seeds))
    machine = machine_info("dowhy")
    started = time.perf_counter()
    results = {name: replicate(name, seeds, models, args.reps) for name in args.scms.split(",")}
    meta = {"command": " ".join(["OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mmd_replicates.py",
                                 *(argv if argv is not None else sys.argv[1:])]),
            "machine": machine, "runtime_s": time.perf_counter() - started, "reps": args.reps,
            "seeds": seeds, "models": models, "n_int": suite.N_INT}
    write_json(ROOT / "results" / f"{args.name}.json", {"meta": meta, "cells": results})
    head = " | ".join([*models, "floor"])
    lines = [
        "# Interventional MMD ×100 with the models' Monte Carlo noise averaged out", "",
        f"Command: `{meta['command']}`  ",
        f"Date: {machine['date']}; torch {machine['torch']}; 1 thread; run time {meta['runtime_s']:.0f} s.", "",
        f"The suite's fits and queries (seeds {', '.join(map(str, seeds))}; {suite.N_INT} samples against "
        f"the suite's {suite.N_INT} true samples), each query answered {args.reps} times with fresh "
        "samples; mean ± standard error over the seed × query cells. The suite's own table scores "
        "one repetition.", "",
        f"| SCM | {head} | " + " | ".join(f"{models[0]} − {m} (paired)" for m in models[1:]) + " |",
        "|---|" + "---:|" * (2 * len(models)),
    ]
    for name, cells in results.items():
        row = []
        for m in [*models, "floor"]:
            v = 100 * np.asarray(cells[m])
            row.append(f"{v.mean():.3f} ± {v.std(ddof=1) / np.sqrt(len(v)):.3f}")
        for m in models[1:]:  # the same true samples in every cell: the difference is paired
            d = 100 * (np.asarray(cells[models[0]]) - np.asarray(cells[m]))
            row.append(f"{d.mean():+.3f} ± {d.std(ddof=1) / np.sqrt(len(d)):.3f}")
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    text = "\n".join(lines) + "\n"
    (ROOT / "results" / f"{args.name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
