"""How many rows automatic selection's noise test needs: the HSIC test of a linear fit's
residual against the parents (``deepscm.scm.model._noise_independence``) on 1,000–4,000 of
4,500 training rows with 100 or 200 permutations — its power on a mild curve, its level on
linear data, its cost.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/noise_test_rows.py

Writes ``results/noise_test_rows.{json,md}``. Power: ``medical_brain``'s brain volume, whose
mean falls by up to 15 % with age (quadratically) under 6 % multiplicative noise; a p-value
below 0.05 sends the node on to the non-linear candidates. Level: linear additive data
(Gaussian, Laplace and Student-t(4) noise), where the rejection rate should be 5 %.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent

from deepscm.datasets import load_scm  # noqa: E402
from deepscm.evaluation.validation import hsic_test  # noqa: E402
from deepscm.studies.report import write_json  # noqa: E402
from machine import machine_info  # noqa: E402

#: (rows, permutations) settings compared; the default's is NOISE_TEST_ROWS with
#: NOISE_TEST_PERMUTATIONS (deepscm.scm.model)
SETTINGS = ((1000, 200), (2000, 100), (2000, 200), (4000, 200))


def _residual(y: np.ndarray, parents: np.ndarray) -> np.ndarray:
    design = np.c_[parents, np.ones(len(y))]
    return y - design @ np.linalg.lstsq(design, y, rcond=None)[0]


def power(seeds: list[int]) -> list[dict]:
    gt = load_scm("medical_brain")
    out = []
    for seed in seeds:
        df = gt.sample(5000, seed=seed).head(4500)
        parents = np.c_[df["age"], (df["sex"] == "male").astype(float)]
        residual = _residual(df["brain_volume"].to_numpy(), parents)
        if seed == seeds[0]:  # warm-up: the first calls pay for numpy's first allocations
            for rows, perms in SETTINGS:
                hsic_test(residual[:, None], parents, n_permutations=perms, rng=0, max_rows=rows)
        for rows, perms in SETTINGS:
            started = time.perf_counter()
            _, p, _ = hsic_test(residual[:, None], parents, n_permutations=perms, rng=0, max_rows=rows)
            out.append({"seed": seed, "rows": rows, "permutations": perms, "p": p,
                        "seconds": time.perf_counter() - started})
    return out


def level(repeats: int) -> list[dict]:
    out = []
    for noise in ("gaussian", "laplace", "student_t4"):
        for rows, perms in SETTINGS:
            rejected = 0
            for r in range(repeats):
                rng = np.random.default_rng(r)
                draw = {"gaussian": rng.normal, "laplace": rng.laplace,
                        "student_t4": lambda size: rng.standard_t(4, size=size)}[noise]
                x = draw(size=4500)
                y = 0.8 * x + draw(size=4500)
                _, p, _ = hsic_test(_residual(y, x[:, None])[:, None], x[:, None], n_permutations=perms,
                                    rng=r, max_rows=rows)
                rejected += p < 0.05
            out.append({"noise": noise, "rows": rows, "permutations": perms, "repeats": repeats,
                        "rejection_rate": rejected / repeats})
    return out


def render(result: dict) -> str:
    meta = result["meta"]
    lines = ["# The noise test's rows: power, level, cost", "",
             f"Command: `{meta['command']}`  ",
             f"Date: {meta['machine']['date']}; run time {meta['seconds']:.0f} s; load average at the "
             f"start {meta['machine'].get('load_average_start')}.", "",
             "## Power: `medical_brain`'s brain volume against age and sex (4,500 training rows)", "",
             "| data seed | " + " | ".join(f"p, {r:,} rows × {k} perm." for r, k in SETTINGS) + " | "
             + " | ".join(f"ms, {r:,} × {k}" for r, k in SETTINGS) + " |",
             "|---:|" + "---:|" * (2 * len(SETTINGS))]
    for seed in dict.fromkeys(r["seed"] for r in result["power"]):
        cells = {(r["rows"], r["permutations"]): r for r in result["power"] if r["seed"] == seed}
        lines.append(f"| {seed} | " + " | ".join(f"{cells[s]['p']:.3f}" for s in SETTINGS) + " | "
                     + " | ".join(f"{1000 * cells[s]['seconds']:.0f}" for s in SETTINGS) + " |")
    lines += ["", "## Level: rejection rate at p < 0.05 on linear additive data (y = 0.8 x + u)", "",
              "| noise | " + " | ".join(f"{r:,} rows × {k} perm." for r, k in SETTINGS) + " |",
              "|---|" + "---:|" * len(SETTINGS)]
    for noise in dict.fromkeys(r["noise"] for r in result["level"]):
        cells = {(r["rows"], r["permutations"]): r for r in result["level"] if r["noise"] == noise}
        lines.append(f"| {noise} ({cells[SETTINGS[0]]['repeats']} data sets) | "
                     + " | ".join(f"{cells[s]['rejection_rate']:.3f}" for s in SETTINGS) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="11,21,31,41,51,61")
    p.add_argument("--repeats", type=int, default=100)
    p.add_argument("--out", default=str(ROOT / "results"))
    args = p.parse_args(argv)
    machine = machine_info()
    started = time.perf_counter()
    result = {"power": power([int(s) for s in args.seeds.split(",")]), "level": level(args.repeats)}
    result["meta"] = {
        "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/noise_test_rows.py"
                   + "".join(" " + a for a in (sys.argv[1:] if argv is None else argv)),
        "machine": machine, "seconds": time.perf_counter() - started,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "noise_test_rows.json", result)
    (out / "noise_test_rows.md").write_text(render(result))
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
