"""Counterfactual soundness (Monteiro et al. 2023) of tabular and Morpho-digits models (issue 14, item 5).

With :mod:`deepscm.evaluation.soundness`:

- **tabular** — suite SCMs (``deepscm.datasets.load_scm``), each fitted with several mechanism
  families; composition (null intervention on the roots, 1 and 10 times), reversibility
  (``do(k := k')`` and back, 1 and 5 cycles) as L1 / sd of the column, averaged over the
  measured columns; effectiveness of ``do(root)`` read by a gradient-boosting pseudo-oracle
  trained on real rows to predict the root from its descendants;
- **Morpho-digits** — the DSCM Fig. 2 models (independent, conditional, full; constant σ, and
  the full model with a learned σ), built and trained as in :mod:`deepscm.studies.morpho` at
  a smaller size; composition / reversibility in pixel units (0–255), effectiveness with the
  measured thickness and intensity (:func:`~deepscm.evaluation.soundness.morpho_oracles`).

Effectiveness columns: ``mae`` of the oracle on the counterfactual against the intervened
value, ``floor`` the oracle's MAE on real rows, ``unchanged`` the MAE of the *factual* rows
against the intervened value (a model that ignores the intervention), and
``index = (mae − floor) / (unchanged − floor)``: 0 as effective as real data, 1 no effect.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/soundness.py                 # ~25 min
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/soundness.py --quick         # smoke run, writes nothing

Writes ``benchmarks/results/soundness.{json,md}``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import torch

import deepscm as ds
from deepscm.datasets import load_scm
from deepscm.errors import ExtrapolationWarning
from deepscm.evaluation.soundness import morpho_oracles, soundness
from deepscm.io import to_jsonable
from machine import machine_info

torch.set_num_threads(1)
warnings.filterwarnings("ignore", category=ExtrapolationWarning)
ROOT = Path(__file__).resolve().parent
TABULAR_SCMS = ["dcm_chain_nonlinear", "dcm_triangle_nonadditive", "causal_nf_simpson_nonlinear",
                "basic_mixed_categorical"]
MECHANISMS = ["flow", "additive", "linear", "diffusion"]
MORPHO_MODELS = {  # name: (graph, VAE scale), as deepscm.studies.morpho.MODELS
    "independent": ("t; i; x", "constant"),
    "conditional": ("t -> x; i -> x", "constant"),
    "full": ("t -> i; t -> x; i -> x", "constant"),
    "full, learned σ": ("t -> i; t -> x; i -> x", "learned"),
}


def summarise(table: pd.DataFrame) -> dict:
    """One row of the summary: mean relative composition / reversibility over the measured
    columns, and effectiveness per intervened node (its own column)."""
    out: dict = {}
    for metric, steps in (("composition", (1, 10)), ("reversibility", (2, 10))):
        for step in steps:
            part = table[(table.metric == metric) & (table.step == step)]
            out[f"{metric} {step}"] = float(part["mean"].mean()) if "pixels" in set(part.measure) else float(
                part["relative"].mean())
    eff = table[(table.metric == "effectiveness")]
    out["effectiveness"] = {
        f"do({r['do']}) → {r['column']}": {
            "measure": r["measure"], "mae": r["mean"], "floor": r["oracle_floor"], "unchanged": r["unchanged"],
            # undefined where the intervention does not move the attribute (unchanged = floor)
            "index": (r["mean"] - r["oracle_floor"]) / gap if (gap := r["unchanged"] - r["oracle_floor"]) > 1e-9
            else float("nan"),
        }
        for _, r in eff.iterrows()
    }
    return out


def tabular(args) -> dict:
    results: dict = {}
    for name in args.scms:
        scm = load_scm(name)
        train = scm.sample(args.n_train, seed=args.seed)
        test = scm.sample(args.n_test, seed=args.seed + 1)
        for mech in args.mechanisms:
            started = time.perf_counter()
            model = ds.DeepSCM(scm.graph, mechanisms=mech).fit(train, epochs=args.epochs, seed=args.seed,
                                                              progress=False)
            fit_s = time.perf_counter() - started
            table = soundness(model, test, train=train, seed=args.seed)
            row = summarise(table)
            row.update(fit_seconds=round(fit_s, 1), seconds=round(time.perf_counter() - started, 1),
                       do_nodes=sorted(set(table[table.metric == "reversibility"]["do"])))
            results[f"{name} / {mech}"] = {"summary": row, "table": table.to_dict(orient="records")}
            print(f"[tabular] {name} / {mech}: " + ", ".join(
                f"{k} {v:.2e}" for k, v in row.items() if isinstance(v, float) and "seconds" not in k
            ) + f" ({row['seconds']:.0f} s)", flush=True)
    return results


def morpho(args) -> dict:
    from deepscm.datasets.morpho import MorphoDigits
    from deepscm.mechanisms import ConditionalVAE
    from deepscm.studies.morpho import MorphoSettings

    s = MorphoSettings()
    train_scm, test_scm = MorphoDigits.train_test(None, test_fraction=s.test_fraction, seed=args.seed)
    train = train_scm.sample(args.morpho_train, seed=args.seed)
    test = test_scm.sample(args.morpho_test, seed=args.seed + 1)
    results: dict = {}
    for name, (graph, scale) in MORPHO_MODELS.items():
        started = time.perf_counter()
        vae = ConditionalVAE(latent_dim=s.latent_dim, channels=s.channels, hidden=s.hidden, scale=scale)
        model = ds.DeepSCM(graph, mechanisms={"x": vae}).fit(
            train, epochs=args.morpho_epochs, batch_size=s.batch_size, lr=s.lr, seed=args.seed, progress=False)
        fit_s = time.perf_counter() - started
        table = soundness(model, test, oracles=morpho_oracles("x"), do_nodes=["t", "i"], seed=args.seed,
                          n_samples=args.cf_draws, average=True)
        row = summarise(table[(table.metric == "effectiveness") | (table.column == "x")])
        row.update(fit_seconds=round(fit_s, 1), seconds=round(time.perf_counter() - started, 1))
        results[name] = {"summary": row, "table": table.to_dict(orient="records")}
        print(f"[morpho] {name}: comp1 {row['composition 1']:.2f}, comp10 {row['composition 10']:.2f}, "
              f"rev2 {row['reversibility 2']:.2f} px ({row['seconds']:.0f} s)", flush=True)
    return results


def report_md(results: dict) -> str:
    m, s = results["machine"], results["settings"]
    lines = [
        "# Counterfactual soundness: composition, reversibility, effectiveness",
        "",
        f"`{results['command']}` — {m['date']}, {m['cpu_count']} CPUs, torch {m['torch']} "
        f"({m['torch_threads']} thread), total {results['seconds'] / 60:.1f} min",
        "",
    ]
    if results.get("tabular"):
        lines += [
            f"## Tabular suite SCMs ({s['n_train']} training rows, {s['n_test']} test units, ≤ {s['epochs']} epochs)",
            "",
            "Composition and reversibility: mean over measured columns of L1 / sd (continuous) or share "
            "changed (discrete). Effectiveness of do(root): MAE of the pseudo-oracle (floor: on real rows; "
            "unchanged: factual rows), index 0 = effective as real data, 1 = no effect.",
            "",
            "| SCM / mechanism | comp. ×1 | comp. ×10 | rev. 1 cycle | rev. 5 cycles | effectiveness | MAE | floor | unchanged | index | fit s |",
            "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
        ]
        for key, res in results["tabular"].items():
            r = res["summary"]
            for j, (label, e) in enumerate(r["effectiveness"].items()):
                head = (f"| {key} | {r['composition 1']:.1e} | {r['composition 10']:.1e} | "
                        f"{r['reversibility 2']:.1e} | {r['reversibility 10']:.1e} |") if j == 0 else "| | | | | |"
                lines.append(f"{head} {label} | {e['mae']:.3f} | {e['floor']:.3f} | {e['unchanged']:.3f} | "
                             f"{e['index']:.2f} | {r['fit_seconds'] if j == 0 else ''} |")
        lines.append("")
    if results.get("morpho"):
        lines += [
            f"## Morpho-digits ({s['morpho_train']} training images, {s['morpho_test']} test images of "
            f"held-out digits, ≤ {s['morpho_epochs']} epochs, counterfactuals averaged over {s['cf_draws']} "
            "draws of z)",
            "",
            "Composition / reversibility: L1 of the image in pixel units (0–255). Effectiveness: MAE of "
            "the measured thickness (px) / intensity (0–255) against the counterfactual's t / i.",
            "",
            "| model | comp. ×1 | comp. ×10 | rev. 1 cycle | rev. 5 cycles | effectiveness | MAE | floor | unchanged | index | fit s |",
            "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
        ]
        for key, res in results["morpho"].items():
            r = res["summary"]
            for j, (label, e) in enumerate(r["effectiveness"].items()):
                head = (f"| {key} | {r['composition 1']:.2f} | {r['composition 10']:.2f} | "
                        f"{r['reversibility 2']:.2f} | {r['reversibility 10']:.2f} |") if j == 0 else "| | | | | |"
                lines.append(f"{head} {label} | {e['mae']:.3f} | {e['floor']:.3f} | {e['unchanged']:.3f} | "
                             f"{e['index']:.2f} | {r['fit_seconds'] if j == 0 else ''} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scms", default=",".join(TABULAR_SCMS))
    parser.add_argument("--mechanisms", default=",".join(MECHANISMS))
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--morpho-train", type=int, default=4000)
    parser.add_argument("--morpho-test", type=int, default=300)
    parser.add_argument("--morpho-epochs", type=int, default=15)
    parser.add_argument("--cf-draws", type=int, default=8)
    parser.add_argument("--skip", choices=["tabular", "morpho"], default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes; prints, writes nothing")
    parser.add_argument("--out", default=str(ROOT / "results" / "soundness.json"))
    args = parser.parse_args(argv)
    args.scms, args.mechanisms = args.scms.split(","), args.mechanisms.split(",")
    if args.quick:
        args.scms, args.mechanisms = args.scms[:1], ["flow", "linear"]
        args.n_train, args.n_test, args.epochs = 1000, 100, 5
        args.morpho_train, args.morpho_test, args.morpho_epochs, args.cf_draws = 300, 30, 1, 2
    started = time.perf_counter()
    results = {
        "command": "python benchmarks/soundness.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_info(),
        "settings": vars(args),
        "tabular": tabular(args) if args.skip != "tabular" else {},
        "morpho": morpho(args) if args.skip != "morpho" else {},
    }
    results["seconds"] = round(time.perf_counter() - started, 1)
    text = report_md(results)
    print(text)
    if not args.quick:
        out = Path(args.out)
        out.write_text(json.dumps(to_jsonable(results), indent=2))
        out.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
