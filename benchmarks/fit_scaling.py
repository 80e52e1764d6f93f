"""Fit time of the defaults: scaling in rows, where the time goes, the stacked bank, and knobs.

Four sections (issue 11, items 2 and 5), every fit in a fresh subprocess on one thread so that
peak memory (``resource.getrusage`` max RSS: torch's allocations bypass tracemalloc) is the
fit's own:

1. **scaling** — ``DeepSCM(graph).fit`` (the defaults) on ``--scm`` at ``--rows`` rows, with a
   fixed number of epochs (``patience`` = epochs, so nothing stops early: seconds per epoch
   per row tests linearity) and with the default early stopping (``epochs=300, patience=20``,
   up to ``--es-max-rows``); fit seconds, epochs run, peak RSS.
2. **profile** — on each ``--diagnose`` SCM (5,000 rows, defaults, after a 300-row warm-up
   fit in the same process): the fit split into the
   stacked flow bank (``train_bank``), the other gradient-trained terms (``train``), the
   boosted candidates' closed-form fits
   (``BoostedAdditive.after_fit``) and the rest, with steps per epoch, epochs to early-stop
   and seconds per step.
3. **bank** — the same SCMs' spline-flow candidates (one ``ConditionalFlow`` per non-root
   continuous node, on standardised data, fit's options) trained per node by
   ``deepscm.training.train`` and stacked by ``deepscm.bank.train_bank``: seconds, epochs and
   held-out NLL per node.
4. **knobs** — fit options (batch size, learning rate, patience, lr_decay) on the same SCMs: fit
   seconds, held-out log-likelihood (2,000 fresh rows) and counterfactual MSE against the
   truth (500 units with their true noise, every intervention node at its q10/q50/q90, every
   strict descendant, standardised by the node's sd).

Usage: ``python benchmarks/fit_scaling.py [--rows 1000,10000,100000] [--epochs 3]
[--es-max-rows 10000] [--diagnose realistic_clinical,dcm_triangle_nonlinear] [--sections ...]
[--knobs default,constant] [--data-seeds 11,21]``;
writes ``benchmarks/results/fit_scaling.{json,md}`` (``--name`` another stem).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import itertools
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

import deepscm as ds
from deepscm.datasets import load_scm

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
sys.path.insert(0, str(ROOT))
from machine import machine_info  # noqa: E402

KNOBS = {
    "default (bs 512, lr 5e-3, patience 20, lr_decay 0.5)": {},
    "constant lr (lr_decay 1)": {"lr_decay": 1.0},
    "patience 10": {"patience": 10},
    "patience 5": {"patience": 5},
    "bs 2048, lr 1e-2": {"batch_size": 2048, "lr": 1e-2},
    "bs 2048, lr 1e-2, patience 10": {"batch_size": 2048, "lr": 1e-2, "patience": 10},
}


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --------------------------------------------------------------------------- child jobs
def job_scaling(scm_name: str, rows: int, epochs: int | None) -> dict:
    gt = load_scm(scm_name)
    data = gt.sample(rows, seed=11)
    base = _peak_mib()
    options = {"epochs": 300, "patience": 20} if epochs is None else {"epochs": epochs, "patience": epochs}
    t0 = time.perf_counter()
    model = ds.DeepSCM(gt.graph).fit(data, seed=0, progress=False, **options)
    seconds = time.perf_counter() - t0
    return {"rows": rows, "mode": "early stopping" if epochs is None else f"{epochs} epochs",
            "seconds": seconds, "epochs_run": model.fit_info["epochs_run"],
            "peak_rss_mib": _peak_mib(), "rss_before_fit_mib": base,
            "mechanisms": {n: type(m).__name__ for n, m in model.mechanisms.items()}}


def job_profile(scm_name: str, rows: int = 5000) -> dict:
    import deepscm.scm.model as model_module
    from deepscm.mechanisms import BoostedAdditive

    timers = {"train": 0.0, "flow bank": 0.0, "boosted after_fit": 0.0}
    terms: list[str] = []
    train, bank, after_fit = model_module.train, model_module.train_bank, BoostedAdditive.after_fit

    def timed(label, f, names=None):
        def run(*args, **kwargs):
            t = time.perf_counter()
            out = f(*args, **kwargs)
            timers[label] += time.perf_counter() - t
            if names is not None:
                terms.extend(names(args))
            return out
        return run

    gt = load_scm(scm_name)
    data = gt.sample(rows, seed=11)
    # a warm-up fit first, as in a session: the first fit of a process also pays imports and
    # first calls (scikit-learn's boosting among them), which the profile must not charge to one part
    ds.DeepSCM(gt.graph).fit(data.iloc[:300], seed=0, progress=False, epochs=1)
    # the gradient-trained terms: the stacked flow bank's (deepscm.bank) and the rest's
    model_module.train = timed("train", train, lambda a: a[0])
    model_module.train_bank = timed("flow bank", bank, lambda a: a[0])
    BoostedAdditive.after_fit = timed("boosted after_fit", after_fit)
    try:
        t0 = time.perf_counter()
        model = ds.DeepSCM(gt.graph).fit(data, seed=0, progress=False)
        total = time.perf_counter() - t0
    finally:
        model_module.train, model_module.train_bank, BoostedAdditive.after_fit = train, bank, after_fit
    hist = model.history
    steps_per_epoch = int(np.ceil(round(0.9 * rows) / 512))
    epochs = hist.epochs_run
    return {"scm": scm_name, "rows": rows, "fit_s": total, **{f"{k}_s": v for k, v in timers.items()},
            "other_s": total - sum(timers.values()), "trained_terms": sorted(terms),
            "epochs_run": epochs, "best_epoch": hist.best_epoch,
            "epochs_per_term": {k: len(v) for k, v in hist.train_loss.items()},
            "steps_per_epoch": steps_per_epoch,
            "ms_per_step": 1e3 * (timers["train"] + timers["flow bank"]) / max(1, epochs * steps_per_epoch),
            "chosen": {n: s["chosen"] for n, s in model.fit_info["selection"].items()}}


def _flow_problem(scm_name: str, rows: int):
    """One fresh default ConditionalFlow per non-root continuous node, on standardised data."""
    from deepscm.mechanisms import ConditionalFlow
    from deepscm.mechanisms.base import MechanismSpec

    gt = load_scm(scm_name)
    data = gt.sample(rows, seed=11)
    z = {c: torch.tensor(((data[c] - data[c].mean()) / data[c].std()).to_numpy(np.float32))[:, None]
         for c in gt.nodes if c not in gt.categorical}
    torch.manual_seed(0)
    mechs, values, contexts = {}, {}, {}
    for node in gt.nodes:
        parents = [p for p in gt.parents[node] if p in z]
        if node in gt.categorical or not parents:
            continue
        mech = ConditionalFlow()
        mech.build(MechanismSpec(1, len(parents)))
        mechs[node], values[node], contexts[node] = mech, z[node], torch.cat([z[p] for p in parents], 1)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(rows, generator=g)
    n_val = int(round(0.1 * rows))
    return mechs, values, contexts, perm[n_val:], perm[:n_val]


def job_bank(scm_name: str, how: str, rows: int = 5000) -> dict:
    from deepscm.bank import train_bank
    from deepscm.training import Term, evaluate, train

    mechs, values, contexts, train_rows, val_rows = _flow_problem(scm_name, rows)
    options = dict(epochs=300, batch_size=512, lr=5e-3, patience=20, progress=False,
                   generator=torch.Generator().manual_seed(1))
    t0 = time.perf_counter()
    if how == "per node":
        terms = {k: Term(m, score=lambda r, m=m, k=k: m.loss(values[k][r], contexts[k][r]),
                         loss=lambda r, m=m, k=k: m.loss(values[k][r], contexts[k][r]))
                 for k, m in mechs.items()}
        hist = train(terms, train_rows, val_rows, **options)
    else:
        hist = train_bank(mechs, values, contexts, train_rows, val_rows, compile=False, **options)
    seconds = time.perf_counter() - t0
    nll = {k: evaluate(m, lambda r, m=m, k=k: m.loss(values[k][r], contexts[k][r]), val_rows)
           for k, m in mechs.items()}
    steps = hist.epochs_run * int(np.ceil(len(train_rows) / 512))
    return {"scm": scm_name, "how": how, "nodes": len(mechs), "seconds": seconds,
            "epochs_run": hist.epochs_run, "epochs_per_node": {k: len(v) for k, v in hist.val_loss.items()},
            "ms_per_step": 1e3 * seconds / steps, "val_nll": nll}


def held_out_scores(gt, data, model: ds.DeepSCM) -> tuple[float, float]:
    """``(test log-lik, CF MSE)`` of a model fitted on ``data`` from ``gt``: the mean
    log-likelihood of 2,000 fresh rows, and the counterfactual MSE (in units of each
    continuous descendant's variance) of 500 units with their true noise at the 10/50/90 %
    quantiles of every continuous intervention node, averaged over interventions."""
    loglik = float(model.log_prob(gt.sample(2000, seed=12)).mean())
    units, noise = gt.sample(500, seed=13, return_noise=True)
    sd = data.std(numeric_only=True)
    errors = []
    for node in gt.intervention_nodes:
        if node in gt.categorical:
            continue
        desc = [d for d in gt.descendants(node) if d not in gt.categorical]
        for q in (0.1, 0.5, 0.9):
            value = float(data[node].quantile(q))
            truth = gt.counterfactual(units, {node: value}, noise=noise)
            pred = model.counterfactual(units, do={node: value}, seed=0)
            errors.append(float(np.mean([((pred[d] - truth[d]) / sd[d]).pow(2).mean() for d in desc])))
    return loglik, float(np.mean(errors))


def paired_summary(pairs: list[tuple[dict, dict]]) -> str:
    """What paired fits ``(a, b)`` (dicts with ``fit_s``, ``cf_mse``, ``test_loglik`` and
    ``chosen``, as :func:`held_out_scores`' callers record them) say of ``b`` against ``a``."""
    ratio = np.array([b["cf_mse"] / a["cf_mse"] for a, b in pairs])
    time_a, time_b = sum(a["fit_s"] for a, _ in pairs), sum(b["fit_s"] for _, b in pairs)
    return (
        f"faster in {sum(b['fit_s'] < a['fit_s'] for a, b in pairs)}, total fit time {time_b:.1f} s against "
        f"{time_a:.1f} s ({time_b / time_a - 1:+.0%}); CF MSE lower in {int((ratio < 1).sum())} "
        f"(geometric-mean ratio {np.exp(np.log(ratio).mean()):.2f}, range {ratio.min():.2f}–"
        f"{ratio.max():.2f}); test log-lik higher in "
        f"{sum(b['test_loglik'] > a['test_loglik'] for a, b in pairs)}; per-node choice "
        f"different in {sum(a['chosen'] != b['chosen'] for a, b in pairs)}"
    )


def job_knob(scm_name: str, knob: str, data_seed: int = 11, rows: int = 5000) -> dict:
    gt = load_scm(scm_name)
    data = gt.sample(rows, seed=data_seed)
    t0 = time.perf_counter()
    model = ds.DeepSCM(gt.graph).fit(data, seed=0, progress=False, **KNOBS[knob])
    seconds = time.perf_counter() - t0
    loglik, cf_mse = held_out_scores(gt, data, model)
    return {"scm": scm_name, "knob": knob, "data_seed": data_seed, "seconds": seconds, "epochs_run": model.fit_info["epochs_run"],
            "test_loglik": loglik, "cf_mse_std": cf_mse,
            "chosen": {n: s["chosen"] for n, s in model.fit_info["selection"].items()}}


JOBS = {"scaling": job_scaling, "profile": job_profile, "bank": job_bank, "knob": job_knob}


def run_child(kind: str, *args, timeout: float | None = None) -> dict | None:
    """Run one job in a fresh interpreter; its JSON is the last stdout line (``None`` when it
    ran past ``timeout`` seconds)."""
    cmd = [sys.executable, __file__, "--child", json.dumps([kind, *args])]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if out.returncode:
        raise RuntimeError(f"{kind}{args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- report
def linearity(rows: list[dict]) -> dict:
    """Per mode, the least-squares slope of log(fit seconds) on log(rows) (fixed epochs; 1 =
    linear, below 1 while fixed costs dominate) or of log(seconds per epoch) (early stopping),
    and the marginal µs per row between successive sizes (constant = linear)."""
    out = {}
    for mode in sorted({r["mode"] for r in rows}):
        pts = sorted((r["rows"], r["seconds"] / (r["epochs_run"] if mode == "early stopping" else 1))
                     for r in rows if r["mode"] == mode)
        if len(pts) >= 2:
            x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
            out[mode] = {"slope": float(np.polyfit(x, y, 1)[0]),
                         "marginal_us_per_row": {f"{a[0]:,}-{b[0]:,}": 1e6 * (b[1] - a[1]) / (b[0] - a[0])
                                                 for a, b in zip(pts, pts[1:])}}
    return out


def markdown(meta: dict, res: dict) -> str:
    lines = ["# Fit time of the defaults: scaling, profile, stacked bank, options", "",
             "Commands (sections accumulate across runs): " + "; ".join(f"`{c}`" for c in meta["commands"]),
             "", f"Last run {meta['machine']['date']}, torch {meta['machine']['torch']}, "
             f"{meta['machine']['cpu_count']} CPUs, 1 thread, {meta['total_s']} s.", "",
             f"Load average at the last run's start: {meta['machine'].get('load_average_start')} (a "
             "shared 2-core machine; sections run at different times saw different loads, so "
             "absolute seconds are noisy and ratios within one section more reliable).", ""]
    if res.get("scaling"):
        lines += ["## 1. Scaling in rows (`DeepSCM(graph).fit`, defaults, " f"`{meta['scm']}`)", "",
                  "| rows | mode | fit s | epochs | s / epoch | µs / (epoch·row) | peak RSS MiB |",
                  "|---:|---|---:|---:|---:|---:|---:|"]
        for r in res["scaling"]:
            per = r["seconds"] / r["epochs_run"]
            lines.append(f"| {r['rows']:,} | {r['mode']} | {r['seconds']:.2f} | {r['epochs_run']} | {per:.3f} | "
                         f"{1e6 * per / r['rows']:.2f} | {r['peak_rss_mib']:.0f} |")
        lines += ["", "Linearity (slope of log fit s on log rows for fixed epochs, of log s/epoch for early "
                  "stopping; marginal µs per added row between sizes, constant = linear):", ""]
        for m, v in linearity(res["scaling"]).items():
            marg = ", ".join(f"{k}: {u:.1f}" for k, u in v["marginal_us_per_row"].items())
            lines.append(f"- {m}: slope {v['slope']:.2f}; marginal µs/row {marg}")
        for t in res.get("timed_out", []):
            lines.append(f"- {t['rows']:,} rows, {t['mode']}: not finished within {t['after_s']:.0f} s (stopped)")
        lines.append("")
    if res.get("profile"):
        lines += ["## 2. Where a default fit's time goes (5,000 rows)", "",
                  "| SCM | fit s | flow bank s | other train s | boosted after_fit s | other s | epochs | steps/epoch | ms/step | trained terms |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in res["profile"]:
            lines.append(f"| {r['scm']} | {r['fit_s']:.2f} | {r.get('flow bank_s', 0.0):.2f} | {r['train_s']:.2f} | "
                         f"{r['boosted after_fit_s']:.2f} | {r['other_s']:.2f} | {r['epochs_run']} | "
                         f"{r['steps_per_epoch']} | {r['ms_per_step']:.2f} | {', '.join(r['trained_terms'])} |")
        lines.append("")
    if res.get("bank"):
        lines += ["## 3. Spline-flow candidates: per-node `train` vs the stacked bank (5,000 rows, fit's options)", "",
                  "| SCM | training | nodes | s | epochs | ms/step | held-out NLL per node |",
                  "|---|---|---:|---:|---:|---:|---|"]
        for r in res["bank"]:
            nll = ", ".join(f"{k} {v:.4f}" for k, v in r["val_nll"].items())
            lines.append(f"| {r['scm']} | {r['how']} | {r['nodes']} | {r['seconds']:.2f} | {r['epochs_run']} | "
                         f"{r['ms_per_step']:.2f} | {nll} |")
        lines.append("")
    if res.get("knobs"):
        lines += ["## 4. Fit options (5,000 rows; held-out log-lik on 2,000 fresh rows, higher is better; "
                  "CF MSE in sd² units vs the true counterfactual)", "",
                  "| SCM | data seed | options | fit s | epochs | test log-lik | CF MSE |",
                  "|---|---:|---|---:|---:|---:|---:|"]
        for r in res["knobs"]:
            lines.append(f"| {r['scm']} | {r.get('data_seed', 11)} | {r['knob']} | {r['seconds']:.2f} | "
                         f"{r['epochs_run']} | {r['test_loglik']:.4f} | {r['cf_mse_std']:.5f} |")
        lines.append("")
    if res.get("compile"):
        lines += ["## torch.compile of the bank's log-density (inductor, CPU)", "",
                  "| nodes | batch | eager ms/step | compiled ms/step | warm-up s | break-even steps |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for r in res["compile"]:
            be = "never" if r["breakeven_steps"] is None else f"{r['breakeven_steps']:.0f}"
            lines.append(f"| {r['nodes']} | {r['batch']} | {r['eager_ms']:.2f} | {r['compiled_ms']:.2f} | "
                         f"{r['warmup_s']:.1f} | {be} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--scm", default="dcm_triangle_nonlinear")
    parser.add_argument("--rows", default="1000,10000,100000,1000000")
    parser.add_argument("--epochs", type=int, default=3, help="fixed epochs of the scaling section")
    parser.add_argument("--es-max-rows", type=int, default=100_000, help="largest early-stopping fit")
    parser.add_argument("--diagnose", default="realistic_clinical,dcm_triangle_nonlinear")
    parser.add_argument("--sections", default="scaling,profile,bank,knobs")
    parser.add_argument("--knobs", default="all", help="comma-separated knob labels' first words, or all")
    parser.add_argument("--data-seeds", default="11", help="training-data seeds of the knobs section")
    parser.add_argument("--compile-json", help="merge a torch.compile measurement (list of rows)")
    parser.add_argument("--report", action="store_true", help="only rewrite the markdown from the JSON")
    parser.add_argument("--job-timeout", type=float, default=1800.0, help="seconds per scaling fit")
    parser.add_argument("--name", default="fit_scaling", help="results/<name>.{json,md} (sections accumulate there)")
    args = parser.parse_args(argv)
    if args.child:
        kind, *job = json.loads(args.child)
        print(json.dumps(JOBS[kind](*job)))
        return 0
    out = RESULTS / f"{args.name}.json"
    if args.report:
        saved = json.loads(out.read_text())
        saved["meta"].setdefault("commands", [saved["meta"].get("command", "")])
        (RESULTS / f"{args.name}.md").write_text(markdown(saved["meta"], saved["results"]))
        return 0
    started = time.perf_counter()
    sections = args.sections.split(",")
    diagnose = [s for s in args.diagnose.split(",") if s]
    res: dict = {}
    if "scaling" in sections:
        res["scaling"] = []
        for rows in [int(r) for r in args.rows.split(",")]:
            for epochs in (args.epochs, None):
                if epochs is None and rows > args.es_max_rows:
                    continue
                r = run_child("scaling", args.scm, rows, epochs, timeout=args.job_timeout)
                if r is None:
                    mode = "early stopping" if epochs is None else f"{epochs} epochs"
                    res.setdefault("timed_out", []).append({"rows": rows, "mode": mode, "after_s": args.job_timeout})
                    print(f"scaling {rows:>9,} {mode:>15}: not finished within {args.job_timeout} s", flush=True)
                    continue
                print(f"scaling {rows:>9,} {r['mode']:>15}: {r['seconds']:.2f} s, {r['epochs_run']} epochs, "
                      f"peak {r['peak_rss_mib']:.0f} MiB", flush=True)
                res["scaling"].append(r)
    if "profile" in sections:
        res["profile"] = [run_child("profile", s) for s in diagnose]
        for r in res["profile"]:
            print(f"profile {r['scm']}: fit {r['fit_s']:.2f} s, flow bank {r['flow bank_s']:.2f} s, "
                  f"other train {r['train_s']:.2f} s, boosted "
                  f"{r['boosted after_fit_s']:.2f} s, {r['epochs_run']} epochs, {r['ms_per_step']:.2f} ms/step", flush=True)
    if "bank" in sections:
        res["bank"] = []
        for s in diagnose:
            for how in ("per node", "bank"):
                r = run_child("bank", s, how)
                print(f"bank {s} {how}: {r['seconds']:.2f} s, {r['epochs_run']} epochs, {r['ms_per_step']:.2f} ms/step", flush=True)
                res["bank"].append(r)
    if "knobs" in sections:
        res["knobs"] = []
        chosen = [k for k in KNOBS if args.knobs == "all" or k.split()[0] in args.knobs.split(",")]
        for s in diagnose:
            for knob, data_seed in itertools.product(chosen, [int(d) for d in args.data_seeds.split(",")]):
                r = run_child("knob", s, knob, data_seed)
                print(f"knob {s} {knob} data seed {data_seed}: {r['seconds']:.2f} s, loglik "
                      f"{r['test_loglik']:.4f}, cf mse {r['cf_mse_std']:.5f}", flush=True)
                res["knobs"].append(r)
    if args.compile_json:
        res["compile"] = json.loads(Path(args.compile_json).read_text())
    command = "python benchmarks/fit_scaling.py " + " ".join(argv if argv is not None else sys.argv[1:])
    RESULTS.mkdir(exist_ok=True)
    previous = json.loads(out.read_text()) if out.exists() else {}
    commands = previous.get("meta", {}).get("commands", [previous["meta"]["command"]] if previous else [])
    meta = {"command": command.strip(), "commands": [*commands, command.strip()], "machine": machine_info(),
            "scm": args.scm, "total_s": round(time.perf_counter() - started, 1)}
    merged = {**previous.get("results", {}), **res}  # sections run separately accumulate
    out.write_text(json.dumps({"meta": meta, "results": merged}, indent=2))
    (RESULTS / f"{args.name}.md").write_text(markdown(meta, merged))
    print(markdown(meta, merged))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
