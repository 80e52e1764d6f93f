"""Default fits of this working tree against those of an earlier git revision, paired.

A change meant to make a fit cheaper must be measured on the whole fit, against the code
before it, on the same data and machine. For each SCM × data seed (11, 21, 31; 5,000 rows)
one child process per code version fits ``DeepSCM(graph).fit(data, seed=0)`` after a short
warm-up fit, the versions interleaved (reversed on the middle seed, so a drift of the shared
machine's load falls on both). The base revision is checked out into a temporary git
worktree and imported from there. Scored as in ``auto_flow_width.py``: fit seconds, epochs,
seconds per epoch (a change of numerics moves the epoch at which early stopping ends a fit,
so per-epoch time isolates the cost of a step), the held-out log-likelihood of 2,000 fresh
rows and the counterfactual MSE in units of each descendant's variance
(``fit_scaling.held_out_scores``). One thread.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fit_against.py --base 2777f61
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fit_against.py --base HEAD --scms basic_collider_nonadditive

Writes ``benchmarks/results/fit_against.{json,md}`` (or ``--name``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
sys.path.insert(0, str(ROOT))
SCMS = ["dcm_triangle_nonlinear", "dcm_chain_nonlinear", "dcm_diamond_nonlinear", "dcm_y_nonlinear",
        "basic_collider_nonadditive", "vaca_triangle_nonadditive", "realistic_clinical",
        "realistic_environment", "realistic_pharmacokinetic", "realistic_economics"]
DATA_SEEDS = (11, 21, 31)

#: what one child process runs: ``python -c CHILD scm data_seed rows``, with ``PYTHONPATH``
#: naming the ``src`` of the code version to import; prints one JSON line.
CHILD = r"""
import json, sys, time, warnings
import torch
torch.set_num_threads(1)
sys.path.insert(1, sys.argv[4])  # the benchmarks folder, after the code version's src
import deepscm as ds
from deepscm.datasets import load_scm
from fit_scaling import held_out_scores
name, seed, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
gt = load_scm(name)
data = gt.sample(rows, seed=seed)
warnings.simplefilter("ignore")
ds.DeepSCM(gt.graph).fit(data.iloc[:300], seed=0, progress=False, epochs=1)  # imports, first calls
started = time.perf_counter()
model = ds.DeepSCM(gt.graph).fit(data, seed=0, progress=False)
seconds = time.perf_counter() - started
loglik, cf_mse = held_out_scores(gt, data, model)
print(json.dumps({"source": ds.__file__, "fit_s": seconds, "epochs_run": model.fit_info["epochs_run"],
                  "test_loglik": loglik, "cf_mse": cf_mse,
                  "chosen": {n: s["chosen"] for n, s in model.fit_info["selection"].items()}}))
"""


def run_child(src: Path, name: str, seed: int, rows: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", CHILD, name, str(seed), str(rows), str(ROOT)],
                          env=env, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise RuntimeError(f"{name} seed {seed} from {src}: {done.stderr[-2000:]}")
    out = json.loads(lines[-1])
    if not out["source"].startswith(str(src)):
        raise RuntimeError(f"the child imported {out['source']}, not the code under {src}")
    return out


def markdown(meta: dict, rows: list[dict]) -> str:
    from fit_scaling import paired_summary

    base, head = meta["base_label"], "this tree"
    scms = list(dict.fromkeys(r["scm"] for r in rows))
    cell = {(r["scm"], r["data_seed"], r["version"]): r for r in rows}
    lines = [
        f"# Default fits: {head} against {base}", "",
        f"Command: `{meta['command']}`  ",
        f"Date: {meta['machine']['date']}; torch {meta['machine']['torch']}; 1 thread; run time "
        f"{meta['runtime_s']:.0f} s; load average at the start {meta['machine'].get('load_average_start')}.", "",
        f"`DeepSCM(graph).fit(data, seed=0)` on {rows[0]['rows']:,} rows, {base} / {head}, each in its "
        "own process after a warm-up fit, interleaved. Means over data seeds "
        f"{', '.join(map(str, meta['data_seeds']))} (per-seed rows in the JSON). Test log-lik: 2,000 "
        "fresh rows; CF MSE: 500 units at the 10/50/90 % quantiles of each intervention node, in "
        "units of each descendant's variance.", "",
        "| SCM | fit s | epochs | ms per epoch | test log-lik | CF MSE |", "|---|---:|---:|---:|---:|---:|",
    ]
    for name in scms:
        per = [[cell[k] for k in cell if k[0] == name and k[2] == v] for v in ("base", "tree")]

        def both(key, fmt, scale=1.0):
            return " / ".join(format(scale * np.mean([r[key] for r in rs]), fmt) for rs in per)
        ms = " / ".join(f"{1e3 * sum(r['fit_s'] for r in rs) / sum(r['epochs_run'] for r in rs):.1f}"
                        if sum(r["epochs_run"] for r in rs) else "—" for rs in per)  # — : closed form only
        lines.append(f"| {name} | {both('fit_s', '.2f')} | {both('epochs_run', '.1f')} | {ms} | "
                     f"{both('test_loglik', '.4f')} | {both('cf_mse', '.5f')} |")
    pairs = [(cell[k[:2] + ("base",)], cell[k]) for k in cell if k[2] == "tree" and k[:2] + ("base",) in cell]
    per_epoch = np.array([(b["fit_s"] / b["epochs_run"]) / (a["fit_s"] / a["epochs_run"])
                          for a, b in pairs if a["epochs_run"] and b["epochs_run"]])
    lines += [
        "", f"Over {len(pairs)} paired fits: {paired_summary(pairs)}; time per epoch "
        f"{np.exp(np.log(per_epoch).mean()) - 1:+.0%} (geometric mean; range {per_epoch.min() - 1:+.0%} "
        f"to {per_epoch.max() - 1:+.0%}); epochs {sum(b['epochs_run'] for _, b in pairs)} against "
        f"{sum(a['epochs_run'] for a, _ in pairs)}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from machine import machine_info

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", help="the git revision to compare against (e.g. HEAD); required unless --render")
    p.add_argument("--scms", default=",".join(SCMS))
    p.add_argument("--rows", type=int, default=5000)
    p.add_argument("--data-seeds", default=",".join(map(str, DATA_SEEDS)))
    p.add_argument("--name", default="fit_against", help="results/<name>.{json,md}")
    p.add_argument("--out", default=str(ROOT / "results"))
    p.add_argument("--render", metavar="JSON", help="run nothing: rewrite the markdown of a saved run")
    args = p.parse_args(argv)
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        text = markdown(saved["meta"], saved["rows"])
        Path(args.render).with_suffix(".md").write_text(text)
        print(text)
        return 0
    if not args.base:
        p.error("--base is required (or --render a saved run)")
    seeds = [int(s) for s in args.data_seeds.split(",")]
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.base],
                            capture_output=True, text=True, check=True).stdout.strip()
    machine = machine_info()
    started = time.perf_counter()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="fit_against_") as tmp:
        tree = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), commit],
                       capture_output=True, check=True)
        try:
            sources = {"base": tree / "src", "tree": REPO / "src"}
            for name in args.scms.split(","):
                for i, seed in enumerate(seeds):
                    order = ("tree", "base") if i == 1 else ("base", "tree")
                    for version in order:
                        r = run_child(sources[version], name, seed, args.rows)
                        r.update(scm=name, data_seed=seed, rows=args.rows, version=version)
                        del r["source"]
                        rows.append(r)
                        print(f"{name} seed {seed} {version}: {r['fit_s']:.2f} s, {r['epochs_run']} epochs, "
                              f"CF MSE {r['cf_mse']:.5f}", flush=True)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                           capture_output=True, check=False)
    meta = {"command": " ".join(["OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fit_against.py",
                                 *(argv if argv is not None else sys.argv[1:])]),
            "base": commit, "base_label": f"base {commit}", "data_seeds": seeds,
            "machine": machine, "runtime_s": time.perf_counter() - started}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from deepscm.studies.report import write_json

    write_json(out / f"{args.name}.json", {"meta": meta, "rows": rows})
    text = markdown(meta, rows)
    (out / f"{args.name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
