"""Digit-class counterfactuals on Morpho-digits by Diff-SCM guidance, and the image round trip.

**The study** (default; :mod:`deepscm.studies.digit_class`): the digit identity joins the
Morpho-digits graph as a categorical parent of the image, ``t -> i; t -> x; i -> x; digit -> x``;
``x`` gets a conditional DDIM with a U-Net (:class:`~deepscm.mechanisms.Diffusion`), and
``do(digit := 5)`` is answered by Diff-SCM (Sanchez & Tsaftaris 2022): DDIM inversion of the
factual image to 0.75 of the schedule, then the reverse pass with the counterfactual parents and
anti-causal guidance ``ε̂ = ε_θ − s·√(1−ᾱ_t)·∇ log p_φ(digit = 5 | x_t, t)``, swept over
``s ∈ {0, 0.1, 0.7, 2, 8, 32, 128}`` (0: the plain DCM counterfactual, no guidance; 0.1–2: the
published sweep), and implicit guidance (the ε-network's own contrast between the target and the
factual digit, ``deepscm.guidance.IMPLICIT``) at ``s ∈ {1, 2, 4}``. On held-out base digits that are not 5 it reports effectiveness (the
fraction of counterfactuals a digit classifier trained on clean images calls 5), minimality
(CLD with a VAE embedding) and identity (thickness and intensity of the counterfactual against
the factual, measured with :mod:`deepscm.datasets.morphology`), and saves one image grid per
``s``. Writes
``benchmarks/results/digit_class.{json,md}`` and ``digit_class.scale-<s>.png``.

**The round trip** (``--tolerance``): the largest encode→decode error
``|Dec(Enc(x, pa), pa) − x|`` (standardised units) of image diffusion on small (16×16)
Morpho-digits against training size, epochs, inference steps and ``refine``, the measurement
behind :attr:`Diffusion.image_abduction_tolerance`. Writes
``benchmarks/results/digit_class.tolerance.{json,md}``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/digit_class.py              # the full study
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/digit_class.py --quick      # a smoke run
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/digit_class.py --tolerance  # the round trip

``--device auto`` (the default) uses a GPU when one is present.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

import deepscm as ds  # noqa: E402
from deepscm.datasets.morpho import MorphoDigits, load_digit_images  # noqa: E402
from deepscm.mechanisms import Diffusion  # noqa: E402
from deepscm.scm import engine  # noqa: E402
from deepscm.studies.digit_class import DigitClassSettings, round_trip_error, run_digit_class_study  # noqa: E402
from deepscm.studies.report import write_json  # noqa: E402
from machine import machine_info  # noqa: E402

GRAPH = "t -> i; t -> x; i -> x"


# ---------------------------------------------------------------------------- the round trip
def tolerance_sweep(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/digit_class.py " + " ".join(sys.argv[1:])
    info = machine_info()
    started = time.perf_counter()
    truth = MorphoDigits(load_digit_images(size=args.tolerance_size))
    train_scm, test_scm = truth.train_test(truth.images, test_fraction=0.2, seed=args.seed)
    test = test_scm.sample(args.tolerance_rows, seed=args.seed + 1)
    rows = []
    for n in args.tolerance_n:
        data = train_scm.sample(n, seed=args.seed)
        for epochs in args.tolerance_epochs:
            scm = ds.DeepSCM(GRAPH, mechanisms={"x": Diffusion(unet_channels=tuple(args.unet))})
            t0 = time.perf_counter()
            scm.fit(data, epochs=epochs, batch_size=128, lr=2e-3, seed=args.seed, device=args.device,
                    progress=False)
            fit_seconds = time.perf_counter() - t0
            mech = scm.mechanisms["x"]
            values = engine.encode(scm, test)
            x, ctx = values["x"], engine.context(scm, "x", values, len(test))
            for steps in args.tolerance_steps:
                for refine in args.tolerance_refine:
                    t0 = time.perf_counter()
                    err = round_trip_error(mech, x, ctx, steps, refine)
                    row = {"n_train": n, "epochs": epochs, "inference_steps": steps, "refine": refine,
                           **err, "denoising loss": scm.fit_info["validation"]["x"]["score"],
                           "fit seconds": round(fit_seconds, 1),
                           "round-trip seconds": round(time.perf_counter() - t0, 2)}
                    rows.append(row)
                    print(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                    for k, v in row.items()), flush=True)
    results = {"command": command, "machine": info, "settings": vars(args), "rows": rows,
               "seconds": round(time.perf_counter() - started, 1)}
    write_json(out / "digit_class.tolerance.json", results)
    cols = ["n_train", "epochs", "inference_steps", "refine", "mean", "max", "max per image (median)",
            "denoising loss"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---:|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    table = "\n".join(lines)
    m = info
    (out / "digit_class.tolerance.md").write_text("\n".join([
        "# Image diffusion: encode→decode round trip on small Morpho-digits",
        "",
        f"Command: `{command}`  ",
        f"Date: {m['date']}; machine: {m['platform']}, {m['cpu_count']} CPUs (shared), torch "
        f"{m['torch']} with {m['torch_threads']} thread(s); run time {results['seconds']:.0f} s.",
        "",
        f"`Diffusion(unet_channels={tuple(args.unet)})` (T = 100, defaults otherwise) for `x` in "
        f"`{GRAPH}`, {args.tolerance_size}×{args.tolerance_size} images; the round trip "
        f"`|Dec(Enc(x, pa), pa) − x|` with the factual parents on {args.tolerance_rows} images of "
        "held-out base digits, in standardised units (one unit ≈ the pixel sd of the training "
        "images); `max` over all pixels of all images, `max per image (median)` the median over "
        "images of each image's largest pixel error; denoising loss: the held-out validation score.",
        "",
        table,
        "",
    ]))
    print("\n" + table)


# ---------------------------------------------------------------------------- main
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = DigitClassSettings()
    p.add_argument("--n-train", type=int, default=d.n_train)
    p.add_argument("--n-test", type=int, default=d.n_test)
    p.add_argument("--units", type=int, default=d.units, help="held-out non-5 digits counterfactualised")
    p.add_argument("--size", type=int, default=d.size, help="image side (px)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="diffusion epochs")
    p.add_argument("--predictor-epochs", type=int, default=d.predictor_epochs)
    p.add_argument("--classifier-epochs", type=int, default=d.classifier_epochs)
    p.add_argument("--embedding-epochs", type=int, default=d.embedding_epochs)
    p.add_argument("--unet", type=int, nargs="+", default=list(d.unet))
    p.add_argument("--inference-steps", type=int, default=d.inference_steps)
    p.add_argument("--refine", type=int, default=d.refine)
    p.add_argument("--fraction", type=float, default=d.fraction)
    p.add_argument("--scales", type=float, nargs="+", default=list(d.scales))
    p.add_argument("--implicit-scales", type=float, nargs="*", default=list(d.implicit_scales),
                   help="scales of implicit guidance (none: skip it)")
    p.add_argument("--device", default=d.device)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=str(ROOT / "results"))
    p.add_argument("--tolerance", action="store_true", help="measure the image round trip instead")
    p.add_argument("--tolerance-size", type=int, default=16)
    p.add_argument("--tolerance-rows", type=int, default=64)
    p.add_argument("--tolerance-n", type=int, nargs="+", default=[500, 2000])
    p.add_argument("--tolerance-epochs", type=int, nargs="+", default=[2, 8])
    p.add_argument("--tolerance-steps", type=int, nargs="+", default=[10, 20, 50])
    p.add_argument("--tolerance-refine", type=int, nargs="+", default=[0, 2, 4])
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.tolerance:
        tolerance_sweep(args)
        return
    if args.quick:
        args.n_train, args.n_test, args.units, args.size, args.epochs = 600, 120, 40, 16, 2
        args.predictor_epochs = args.classifier_epochs = args.embedding_epochs = 2
    command = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/digit_class.py " + " ".join(sys.argv[1:])
    settings = DigitClassSettings(
        out=args.out, prefix="digit_class.quick" if args.quick else "digit_class",
        n_train=args.n_train, n_test=args.n_test, units=args.units, size=args.size, epochs=args.epochs,
        predictor_epochs=args.predictor_epochs, classifier_epochs=args.classifier_epochs,
        embedding_epochs=args.embedding_epochs, unet=tuple(args.unet), inference_steps=args.inference_steps,
        refine=args.refine, fraction=args.fraction, scales=tuple(args.scales),
        implicit_scales=tuple(args.implicit_scales), device=args.device,
        seed=args.seed,
    )
    run_digit_class_study(settings, command=command, machine=machine_info())


if __name__ == "__main__":
    main()
