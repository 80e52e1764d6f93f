"""Morpho-digits case study of Deep SCMs (DSCM §4.1, Table 1, Figs. 3–4).

Fits the independent, conditional and full models, then writes
``benchmarks/results/morpho_dscm.{json,md}`` and the two plots beside them.

    .venv/bin/python benchmarks/morpho_dscm.py            # full study (≤ 30 min on 2 cores)
    .venv/bin/python benchmarks/morpho_dscm.py --quick    # a smoke run in about a minute

Also reachable as ``deepscm demo --example morpho``.
"""

from __future__ import annotations

import argparse

from deepscm.studies.morpho import MorphoSettings, run_morpho_study


def main() -> None:
    defaults = MorphoSettings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke run; writes morpho_dscm_quick.*")
    parser.add_argument("--source", default=None, help="MNIST IDX images (file or folder) instead of sklearn digits")
    parser.add_argument("--n-train", type=int, default=defaults.n_train)
    parser.add_argument("--n-test", type=int, default=defaults.n_test)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=defaults.out)
    args = parser.parse_args()
    settings = MorphoSettings(
        out=args.out, source=args.source, n_train=args.n_train, n_test=args.n_test, epochs=args.epochs,
        threads=args.threads, seed=args.seed,
    )
    if args.quick:
        settings.n_train, settings.n_test, settings.epochs = 1_000, 200, 2
        settings.density_samples, settings.cf_draws, settings.prefix = 1_000, 2, "morpho_dscm_quick"
    run_morpho_study(settings)


if __name__ == "__main__":
    main()
