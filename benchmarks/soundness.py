"""Counterfactual soundness (Monteiro et al. 2023) of tabular, Morpho-digits and pendulum models (issue 14, item 5).

With :mod:`deepscm.evaluation.soundness`:

- **tabular** — suite SCMs (``deepscm.datasets.load_scm``), each fitted with several mechanism
  families; composition (null intervention on the roots, 1 and 10 times), reversibility
  (``do(k := k')`` and back, 1 and 5 cycles) as L1 / sd of the column, averaged over the
  measured columns; effectiveness of ``do(root)`` read by a gradient-boosting pseudo-oracle
  trained on real rows to predict the root from its descendants;
- **Morpho-digits** — the DSCM Fig. 2 models (independent, conditional, full; constant σ, and
  the full model with a learned σ), built and trained as in :mod:`deepscm.studies.morpho` at
  a smaller size; composition / reversibility in pixel units (0–255), effectiveness with the
  measured thickness and intensity (:func:`~deepscm.evaluation.soundness.morpho_oracles`);
  minimality by CLD (:func:`~deepscm.evaluation.soundness.minimality`) with a separately
  trained VAE encoder;
- **pendulum** (:mod:`deepscm.datasets.pendulum`, small grayscale images) — the label→image
  CCGM with its concept-wise decoder, the same model with ``θ → x_shadow`` removed, and a
  ``DeepSCM`` on the labels with a conditional-VAE image node; composition / reversibility of
  the image in pixel units (0–255), effectiveness of ``do(θ)`` and ``do(x_sun)`` with the
  pendulum's pseudo-oracles (:func:`~deepscm.evaluation.soundness.pendulum_oracles`) read off
  the counterfactual image and scored against the generator's *true* counterfactual labels;
  minimality by CLD.

Effectiveness columns: the oracle's score on the counterfactual against the intervened
value (MAE, or accuracy for a discrete attribute), ``floor`` its score on real rows,
``unchanged`` the score of the *factual* rows against the intervened value (a model that
ignores the intervention), and the index (:func:`~deepscm.evaluation.soundness.effectiveness_index`)
``(mae − floor)/(unchanged − floor)``, ``(floor − acc)/(floor − unchanged)`` for accuracy:
0 as effective as real data, 1 no effect.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/soundness.py                 # ~35 min
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

import numpy as np
import pandas as pd
import torch

import deepscm as ds
from deepscm.datasets import load_scm
from deepscm.errors import ExtrapolationWarning
from deepscm.evaluation.soundness import morpho_oracles, pendulum_oracles, soundness
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


def summarise(table: pd.DataFrame, pixel_scale: float = 1.0) -> dict:
    """One row of the summary: mean relative composition / reversibility over the measured
    columns (image L1 × ``pixel_scale`` for image columns), effectiveness per intervened node
    and attribute, and minimality (CLD) per intervened node."""
    out: dict = {}
    for metric, steps in (("composition", (1, 10)), ("reversibility", (2, 10))):
        for step in steps:
            part = table[(table.metric == metric) & (table.step == step)]
            pixels = any("pixels" in m for m in part.measure)
            out[f"{metric} {step}"] = pixel_scale * float(part["mean"].mean()) if pixels else float(
                part["relative"].mean())
    eff = table[(table.metric == "effectiveness")]
    out["effectiveness"] = {
        f"do({r['do']}) → {r['column']}": {
            "measure": r["measure"], "score": r["mean"], "floor": r["oracle_floor"], "unchanged": r["unchanged"],
            "index": r["index"],  # NaN where the intervention does not move the attribute
        }
        for _, r in eff.iterrows()
    }
    cld = table[table.metric == "minimality"]
    out["minimality"] = {r["do"]: {"cld": r["mean"], "p_cf": r["p_cf"], "p_f": r["p_f"], "best": r["best"],
                                   "unchanged": r["unchanged"]} for _, r in cld.iterrows()}
    return out


def _num(value: float, fmt: str = ".2f") -> str:
    return "—" if value is None or not np.isfinite(value) else format(value, fmt)


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
    embedding, reference = _embedding(train, "x", args)
    results: dict = {}
    for name, (graph, scale) in MORPHO_MODELS.items():
        started = time.perf_counter()
        vae = ConditionalVAE(latent_dim=s.latent_dim, channels=s.channels, hidden=s.hidden, scale=scale)
        model = ds.DeepSCM(graph, mechanisms={"x": vae}).fit(
            train, epochs=args.morpho_epochs, batch_size=s.batch_size, lr=s.lr, seed=args.seed, progress=False)
        fit_s = time.perf_counter() - started
        table = soundness(model, test, oracles=morpho_oracles("x"), do_nodes=["t", "i"], seed=args.seed,
                          embedding=embedding, reference=reference, n_samples=args.cf_draws, average=True)
        row = summarise(table[(table.metric == "effectiveness") | (table.column == "x")])
        row.update(fit_seconds=round(fit_s, 1), seconds=round(time.perf_counter() - started, 1))
        results[name] = {"summary": row, "table": table.to_dict(orient="records")}
        print(f"[morpho] {name}: comp1 {row['composition 1']:.2f}, comp10 {row['composition 10']:.2f}, "
              f"rev2 {row['reversibility 2']:.2f} px ({row['seconds']:.0f} s)", flush=True)
    return results


def _embedding(train: pd.DataFrame, image: str, args) -> tuple:
    """The CLD encoder (an unconditional VAE on training images) and the reference rows."""
    from deepscm.evaluation.cld import fit_image_embedding

    started = time.perf_counter()
    embedding = fit_image_embedding(train[image], latent_dim=16, epochs=args.cld_epochs, seed=args.seed)
    print(f"[cld] embedding of {len(train)} images, {args.cld_epochs} epochs "
          f"({time.perf_counter() - started:.0f} s)", flush=True)
    return embedding, train.sample(min(args.cld_reference, len(train)), random_state=args.seed)


def pendulum(args) -> dict:
    """Soundness of the pendulum models against the generator's true counterfactuals."""
    from deepscm.datasets.pendulum import LABELS, PendulumGenerator, load_pendulum
    from deepscm.mechanisms import ConditionalVAE
    from deepscm.models.ccgm import CCGM

    cols = [*LABELS, "image"]
    full = load_pendulum("train", size=args.pendulum_size, seed=args.seed)
    train = full.sample(min(args.pendulum_train, len(full)), random_state=args.seed)[cols].reset_index(drop=True)
    test = load_pendulum("test", size=args.pendulum_size, seed=args.seed).sample(
        args.pendulum_test, random_state=args.seed + 1)[cols].reset_index(drop=True)
    gen = PendulumGenerator(args.pendulum_size)
    embedding, reference = _embedding(train, "image", args)
    oracles, do_nodes = pendulum_oracles("image"), ["pendulum_angle", "sun_position"]
    edge = ("pendulum_angle", "shadow_position")

    started = time.perf_counter()
    ccgm = CCGM(list(LABELS), list(LABELS[:2]), graph=PendulumGenerator.graph, variant="image").fit(
        train, epochs=args.pendulum_epochs, seed=args.seed, progress=False)
    ccgm_s = time.perf_counter() - started
    edited = ccgm.without_edges([edge])
    started = time.perf_counter()
    vae = ConditionalVAE(latent_dim=16, channels=(16, 32), hidden=(128,), scale="constant")
    dscm = ds.DeepSCM(PendulumGenerator.graph + "; " + "; ".join(f"{c} -> image" for c in LABELS),
                      mechanisms={"image": vae}).fit(train, epochs=args.pendulum_vae_epochs, batch_size=128,
                                                     lr=1e-3, seed=args.seed, progress=False)
    dscm_s = time.perf_counter() - started

    def truth(without=()):
        ref = {e: edited.edge_reference(e[0]) for e in without}
        return lambda units, do: gen.counterfactual(units, do=do, without_edges=without, reference=ref or None,
                                                    images=False)

    runs = {
        f"CCGM label→image, concept decoder ({args.pendulum_epochs} ep.)": (ccgm, truth(), {}, ccgm_s),
        "  same, θ → x_shadow removed (no retraining)": (edited, truth([edge]), {}, 0.0),
        f"DeepSCM: flows + VAE image node, constant σ ({args.pendulum_vae_epochs} ep.)":
            (dscm, truth(), {"n_samples": args.cf_draws, "average": True}, dscm_s),
    }
    results: dict = {}
    for name, (model, true_cf, kwargs, fit_s) in runs.items():
        started = time.perf_counter()
        table = soundness(model, test, oracles=oracles, do_nodes=do_nodes, seed=args.seed, truth=true_cf,
                          embedding=embedding, reference=reference, **kwargs)
        row = summarise(table[table.metric.isin(["effectiveness", "minimality"]) | (table.column == "image")],
                        pixel_scale=255.0)
        row.update(fit_seconds=round(fit_s, 1), seconds=round(time.perf_counter() - started, 1))
        results[name.strip()] = {"summary": row, "table": table.to_dict(orient="records")}
        print(f"[pendulum] {name.strip()}: comp1 {row['composition 1']:.2f}, comp10 {row['composition 10']:.2f}, "
              f"rev2 {row['reversibility 2']:.2f} (0-255), CLD {[round(v['cld'], 3) for v in row['minimality'].values()]}"
              f" ({row['seconds']:.0f} s)", flush=True)
    return results


def _image_rows(lines: list[str], results: dict) -> None:
    for key, res in results.items():
        r = res["summary"]
        cld = " | ".join(_num(v["cld"], ".3f") for v in r["minimality"].values())
        for j, (label, e) in enumerate(r["effectiveness"].items()):
            head = (f"| {key} | {r['composition 1']:.2f} | {r['composition 10']:.2f} | "
                    f"{r['reversibility 2']:.2f} | {r['reversibility 10']:.2f} | {cld} |") if j == 0 else \
                "| | | | | |" + " |" * len(r["minimality"])
            lines.append(f"{head} {label} | {e['score']:.3f} | {e['floor']:.3f} | {e['unchanged']:.3f} | "
                         f"{_num(e['index'])} | {r['fit_seconds'] if j == 0 else ''} |")
    lines.append("")


INDEX_NOTE = ("index = (MAE − floor)/(unchanged − floor) for MAE rows and (floor − acc)/(floor − unchanged) for "
              "accuracy rows: 0 = as effective as real data, 1 = no effect; — where the intervention does not "
              "move the attribute (unchanged = floor).")
CLD_NOTE = ("CLD (minimality, lower is better): best log 2 = 0.693, an unchanged image log(1 + e) = 1.313, a "
            "counterfactual farther than every reference image also 1.313; weights (1, 1), intervention to "
            "another quartile of the parent, encoder an unconditional VAE (latent 16) on the training images, "
            "{ref} reference images.")


def trade_off_md(results: dict) -> list[str]:
    """The composition–effectiveness trade-off of the image models in one table: composition
    against the mean effectiveness index over the rows that the intervention moves."""
    lines = ["## The composition–effectiveness trade-off (image models)", "",
             "Mean effectiveness index over the rows above whose attribute the intervention moves (0 = as "
             "effective as real data, 1 = no effect), beside composition (L1, 0–255) and the mean CLD.", "",
             "| data | model | comp. ×1 | comp. ×10 | mean index | mean CLD |", "|---|---|---:|---:|---:|---:|"]
    for part in ("morpho", "pendulum"):
        for key, res in (results.get(part) or {}).items():
            r = res["summary"]
            idx = [e["index"] for e in r["effectiveness"].values() if e["index"] is not None and np.isfinite(e["index"])]
            cld = [v["cld"] for v in r["minimality"].values()]
            lines.append(f"| {part} | {key} | {r['composition 1']:.2f} | {r['composition 10']:.2f} | "
                         f"{_num(float(np.mean(idx)) if idx else float('nan'))} | "
                         f"{_num(float(np.mean(cld)) if cld else float('nan'), '.3f')} |")
    return lines + [""]


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
            "changed (discrete). Effectiveness of do(root): the pseudo-oracle's score — MAE for continuous, "
            "accuracy for discrete attributes (floor: on real rows; unchanged: factual rows). " + INDEX_NOTE,
            "",
            "| SCM / mechanism | comp. ×1 | comp. ×10 | rev. 1 cycle | rev. 5 cycles | effectiveness | MAE / acc. | floor | unchanged | index | fit s |",
            "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
        ]
        for key, res in results["tabular"].items():
            r = res["summary"]
            for j, (label, e) in enumerate(r["effectiveness"].items()):
                head = (f"| {key} | {r['composition 1']:.1e} | {r['composition 10']:.1e} | "
                        f"{r['reversibility 2']:.1e} | {r['reversibility 10']:.1e} |") if j == 0 else "| | | | | |"
                lines.append(f"{head} {label} ({e['measure']}) | {e['score']:.3f} | {e['floor']:.3f} | "
                             f"{e['unchanged']:.3f} | {_num(e['index'])} | {r['fit_seconds'] if j == 0 else ''} |")
        lines.append("")
    if results.get("morpho"):
        lines += [
            f"## Morpho-digits ({s['morpho_train']} training images, {s['morpho_test']} test images of "
            f"held-out digits, ≤ {s['morpho_epochs']} epochs, counterfactuals averaged over {s['cf_draws']} "
            "draws of z)",
            "",
            "Composition / reversibility: L1 of the image in pixel units (0–255). Effectiveness: MAE of "
            "the measured thickness (px) / intensity (0–255) against the counterfactual's t / i. " + INDEX_NOTE,
            "",
            CLD_NOTE.format(ref=s["cld_reference"]),
            "",
            "| model | comp. ×1 | comp. ×10 | rev. 1 cycle | rev. 5 cycles | CLD do(t) | CLD do(i) | effectiveness | MAE | floor | unchanged | index | fit s |",
            "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
        ]
        _image_rows(lines, results["morpho"])
    if results.get("pendulum"):
        lines += [
            f"## Pendulum ({s['pendulum_size']} px grayscale; {s['pendulum_train']} training images, "
            f"{s['pendulum_test']} test units; DeepSCM counterfactuals averaged over {s['cf_draws']} draws of z)",
            "",
            "Composition / reversibility: L1 of the image in pixel units (0–255; images are [0, 1] × 255). "
            "Effectiveness of do(θ) and do(x_sun) (θ in rad, x_sun, w, x_shadow in canvas units, 20 wide): MAE "
            "of the pseudo-oracle read off the counterfactual *image* (θ and x_sun from the rod/ball and sun "
            "centroids, w and x_shadow by `measure_shadow`) against the generator's *true* counterfactual "
            "labels (for the edited model, the true counterfactual with θ → x_shadow removed at the model's "
            "edge reference). " + INDEX_NOTE,
            "",
            CLD_NOTE.format(ref=s["cld_reference"]),
            "",
            "| model | comp. ×1 | comp. ×10 | rev. 1 cycle | rev. 5 cycles | CLD do(θ) | CLD do(x_sun) | effectiveness | MAE | floor | unchanged | index | fit s |",
            "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
        ]
        _image_rows(lines, results["pendulum"])
    if results.get("morpho") or results.get("pendulum"):
        lines += trade_off_md(results)
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
    parser.add_argument("--cld-epochs", type=int, default=10, help="epochs of the CLD encoder (a VAE)")
    parser.add_argument("--cld-reference", type=int, default=1000, help="reference images of CLD")
    parser.add_argument("--pendulum-size", type=int, default=32)
    parser.add_argument("--pendulum-train", type=int, default=5482)
    parser.add_argument("--pendulum-test", type=int, default=200)
    parser.add_argument("--pendulum-epochs", type=int, default=30, help="CCGM epochs")
    parser.add_argument("--pendulum-vae-epochs", type=int, default=10, help="DeepSCM (VAE image node) epochs")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: tabular, morpho, pendulum")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes; prints, writes nothing")
    parser.add_argument("--out", default=str(ROOT / "results" / "soundness.json"))
    args = parser.parse_args(argv)
    args.scms, args.mechanisms = args.scms.split(","), args.mechanisms.split(",")
    skip = set(filter(None, args.skip.split(",")))
    if skip - {"tabular", "morpho", "pendulum"}:
        parser.error(f"--skip takes tabular, morpho, pendulum; got {sorted(skip)}")
    if args.quick:
        args.scms, args.mechanisms = args.scms[:1], ["flow", "linear"]
        args.n_train, args.n_test, args.epochs = 1000, 100, 5
        args.morpho_train, args.morpho_test, args.morpho_epochs, args.cf_draws = 300, 30, 1, 2
        args.cld_epochs, args.cld_reference = 1, 100
        args.pendulum_train, args.pendulum_test, args.pendulum_epochs, args.pendulum_vae_epochs = 300, 20, 2, 1
    started = time.perf_counter()
    results = {
        "command": "python benchmarks/soundness.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_info(),
        "settings": vars(args),
        "tabular": tabular(args) if "tabular" not in skip else {},
        "morpho": morpho(args) if "morpho" not in skip else {},
        "pendulum": pendulum(args) if "pendulum" not in skip else {},
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
