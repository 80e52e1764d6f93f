"""Neural identification on the eight binary NCM-paper graphs vs the ID algorithm and the LP.

For each graph × seed: a ground-truth SCM with hidden confounders
(``deepscm.datasets.confounded``), ``--rows`` observational rows, ``neural_identify`` on
``ate(x, y)`` by the staged search (MLE fits, then the query pushed up and down subject to
``NLL ≤ NLL* + χ²_{1,0.95}/(2n)``; ``deepscm.ncm.identify``). References: the ID algorithm's
verdict, the exact ATE, and the
response-function LP bounds on the *population* table (sharp on clique components, an outer
bound otherwise; ``deepscm.ncm.bounds``). Targets (issue 13): the neural verdict agrees with
ID everywhere; |estimate − truth| ≤ 0.03 where identifiable; where not, the interval contains
the truth and each end is within 0.05 of the LP bound. Writes ``results/ncm.{json,md}``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from deepscm.datasets.confounded import list_confounded, load_confounded  # noqa: E402
from deepscm.identification import identify  # noqa: E402
from deepscm.ncm import lp_bounds, neural_identify  # noqa: E402
from machine import machine_info  # noqa: E402


def run_one(name: str, seed: int, args: argparse.Namespace) -> dict:
    scm = load_confounded(name, seed)
    data = scm.sample(args.rows, seed=1000 + seed)
    t0 = time.perf_counter()
    res = neural_identify(
        scm.graph, data, "ate(x, y)", restarts=args.restarts, fit_steps=args.fit_steps,
        search_steps=args.search_steps, tighten_steps=args.tighten_steps, seed=seed, extend=args.extend,
        slow_multiplier=args.slow_multiplier,
    )
    seconds = time.perf_counter() - t0
    lp = lp_bounds(scm.graph, scm.distribution(), "ate(x, y)", weight="p")
    truth = scm.ate()
    row = {
        "graph": name, "seed": seed, "truth": truth, "id_verdict": res.id_verdict,
        "ncm_identifiable": res.identifiable, "lower": res.lower, "upper": res.upper,
        "gap": res.gap, "gap_se": res.gap_se, "se": res.se, "estimate": res.estimate,
        "tight_lower": res.tight[0], "tight_upper": res.tight[1], "nll_fit": res.nll_fit,
        "tv_fit": max(r["tv_fit"] for r in res.restarts), "eps": res.eps,
        "lp_lower": lp.lower, "lp_upper": lp.upper, "lp_sharp": lp.sharp,
        "seconds_per_restart": seconds / args.restarts, "restarts": res.restarts,
        "fit_ok": res.fit_ok, "converged": res.converged, "passes": res.passes, "deviance": res.deviance,
        "refits": sum(r["refits"] for r in res.restarts),
        "search_retries": sum(r["search_retries"] for r in res.restarts),
        "search_extensions": sum(r["search_extensions"] for r in res.restarts),
        "slow_multiplier": res.slow_multiplier,
    }
    row["agree"] = res.identifiable == (res.id_verdict == "identifiable")
    if res.id_verdict == "identifiable":
        est = res.estimate if res.estimate is not None else float(np.mean([r["estimate"] for r in res.restarts]))
        row["abs_error"] = abs(est - truth)
        plug = identify(scm.graph, "p(y | do(x))").evaluate(data)
        p1 = plug.loc[(plug.x == 1) & (plug.y == 1), "p"].iloc[0]
        p0 = plug.loc[(plug.x == 0) & (plug.y == 1), "p"].iloc[0]
        row["plugin_abs_error"] = abs(p1 - p0 - truth)  # the ID formula's plug-in on the same rows
    else:
        row["contains_truth"] = res.lower <= truth <= res.upper
        row["lp_gap_lower"] = abs(res.lower - lp.lower)
        row["lp_gap_upper"] = abs(res.upper - lp.upper)
    return row


def markdown(results: dict) -> str:
    rows = results["rows"]
    lines = [
        "# Neural identification (MLE-NCM) on the NCM-paper graphs",
        "",
        f"`{results['command']}` — {results['machine']['date']}, {results['seconds']:.0f} s, "
        f"{results['machine']['cpu_count']} CPUs (shared), torch threads {results['machine']['torch_threads']}",
        "",
        f"{results['rows_per_fit']} rows, query `ate(x, y)`, {results['restarts']} restart(s); each: MLE fit "
        f"({results['steps'][0]} Adam steps), then max and min of the query s.t. NLL ≤ NLL* + ε "
        f"({results['steps'][1]} steps at ε = χ²₁(0.95)/2n, {results['steps'][2]} at ε/4). "
        "W₀ = extrapolated width 2·w(ε/4) − w(ε), s.e. = w(ε/4)/1.96; identifiable iff "
        "W₀ + 1.65·s.e.(W₀ over restarts) < s.e. NCM interval = 95% profile-likelihood envelope; "
        "LP on the population table; TV = max total variation between a fitted NCM and the data. "
        "Robustness: a fit with deviance G² > χ²_{2^|V|−1}(0.999) is refitted (fresh seed, 2× steps; "
        "'refits'); a search that ends outside the budget is rerun with a 10× smaller loose budget "
        "('retries'); a search that finds NLL < NLL* − ε/4 makes that model (polished) the fit and the "
        "searches rerun ('passes'); with extend > 0, each search continues from its most extreme fit while "
        f"a round gains > 0.005 (extend = {results.get('extend', 0)}); slow multiplier = {results.get('slow_multiplier')} (with 'auto', a second search with the multiplier step × 0.1 runs where the ID algorithm proves the query not identifiable). fit ok = final G² within the χ² bound and the last pass converged.",
        "",
        "| graph | seed | ID | NCM | W₀ | s.e. | truth | estimate | NCM interval | LP bounds | |est−truth| "
        "| LP end gaps | contains | TV | refits / retries / passes | fit ok | s/restart |",
        "|---|---:|---|---|---:|---:|---:|---:|---|---|---:|---|---|---:|---|---|---:|",
    ]
    for r in rows:
        err = f"{r['abs_error']:.3f}" if "abs_error" in r else ""
        est = f"{r['estimate']:.3f}" if r["estimate"] is not None else ""
        gaps = f"{r['lp_gap_lower']:.3f} / {r['lp_gap_upper']:.3f}" if "lp_gap_lower" in r else ""
        contains = {True: "yes", False: "**no**"}.get(r.get("contains_truth"), "")
        lp = f"[{r['lp_lower']:.3f}, {r['lp_upper']:.3f}]" + ("" if r["lp_sharp"] else " outer")
        lines.append(
            f"| {r['graph']} | {r['seed']} | {'ID' if r['id_verdict'] == 'identifiable' else 'not ID'} | "
            f"{'ID' if r['ncm_identifiable'] else 'not ID'}{'' if r['agree'] else ' **(disagree)**'} | "
            f"{r['gap']:.3f} | {r['se']:.3f} | {r['truth']:.3f} | {est} | [{r['lower']:.3f}, {r['upper']:.3f}] | "
            f"{lp} | {err} | {gaps} | {contains} | {r['tv_fit']:.4f} | {r['refits']} / {r['search_retries']} / {r['passes']} | "
            f"{'yes' if r['fit_ok'] and r['converged'] else '**no**'} | {r['seconds_per_restart']:.0f} |"
        )
    if not results.get("complete", True):
        lines += ["", f"**Partial run: {len(rows)} of {results['seeds']} seeds × graphs finished.**"]
    lines += ["", "## Targets", ""] + [f"- {t}" for t in results["targets"]]
    return "\n".join(lines) + "\n"


def targets(rows: list[dict]) -> list[str]:
    out = []
    ok = sum(r["fit_ok"] and r["converged"] for r in rows)
    out.append(f"fits ok (deviance within χ² bound, searches converged): {ok}/{len(rows)}")
    agree = sum(r["agree"] for r in rows)
    out.append(f"verdict agrees with ID: {agree}/{len(rows)} — {'MET' if agree == len(rows) else 'MISSED'}")
    errs = [r["abs_error"] for r in rows if "abs_error" in r]
    if errs:
        ok = sum(e <= 0.03 for e in errs)
        plug = [r["plugin_abs_error"] for r in rows if "abs_error" in r]
        out.append(f"identifiable |estimate − truth| ≤ 0.03: {ok}/{len(errs)} (max {max(errs):.3f}; the ID "
                   f"formula's plug-in on the same rows: max {max(plug):.3f}, {sum(e <= 0.03 for e in plug)}/"
                   f"{len(plug)} within 0.03) — {'MET' if ok == len(errs) else 'MISSED'}")
    nid = [r for r in rows if "lp_gap_lower" in r]
    if nid:
        cont = sum(r["contains_truth"] for r in nid)
        out.append(f"non-identifiable interval contains truth: {cont}/{len(nid)} — {'MET' if cont == len(nid) else 'MISSED'}")
        sharp = [r for r in nid if r["lp_sharp"]]
        ok = sum(max(r["lp_gap_lower"], r["lp_gap_upper"]) <= 0.05 for r in sharp)
        worst = max((max(r["lp_gap_lower"], r["lp_gap_upper"]) for r in sharp), default=0.0)
        out.append(f"each end within 0.05 of the sharp LP bound (clique components: bow, iv, extended_bow): "
                   f"{ok}/{len(sharp)} (worst {worst:.3f}) — {'MET' if ok == len(sharp) else 'MISSED'}")
        outer = [r for r in nid if not r["lp_sharp"]]
        if outer:
            inside = sum(r["lower"] >= r["lp_lower"] - 0.02 and r["upper"] <= r["lp_upper"] + 0.02 for r in outer)
            worst = max(max(r["lp_gap_lower"], r["lp_gap_upper"]) for r in outer)
            out.append(f"bad_m: LP is only an outer bound (non-clique component, the sharp bound is unknown); "
                       f"NCM interval inside it (±0.02): {inside}/{len(outer)}, largest end gap to the outer "
                       f"bound {worst:.3f} — the 0.05 target is not checkable there")
    return out


def _slow_multiplier(text: str) -> float | str | None:
    return None if text.lower() == "none" else "auto" if text.lower() == "auto" else float(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=10_000)
    # the search's settings default to neural_identify's own: the benchmark measures what users get
    defaults = {k: v.default for k, v in inspect.signature(neural_identify).parameters.items()}
    parser.add_argument("--restarts", type=int, default=defaults["restarts"])
    parser.add_argument("--fit-steps", type=int, default=defaults["fit_steps"])
    parser.add_argument("--search-steps", type=int, default=defaults["search_steps"])
    parser.add_argument("--tighten-steps", type=int, default=defaults["tighten_steps"])
    parser.add_argument("--extend", type=int, default=defaults["extend"],
                        help="continuation rounds per search (neural_identify extend=)")
    parser.add_argument("--slow-multiplier", type=_slow_multiplier, default=defaults["slow_multiplier"],
                        help="neural_identify slow_multiplier=: a number, 'auto' (its default) or 'none'")
    parser.add_argument("--name", default="ncm", help="results/<name>.{json,md}")
    parser.add_argument("--graphs", nargs="*", default=list_confounded())
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    rows = []
    out = ROOT / "results"
    out.mkdir(exist_ok=True)
    for seed in range(args.seeds):
        for name in args.graphs:
            row = run_one(name, seed, args)
            rows.append(row)
            print(f"{name:13s} seed {seed}: ID {row['id_verdict']:17s} NCM "
                  f"{'ID' if row['ncm_identifiable'] else 'not ID':7s} [{row['lower']:.3f}, {row['upper']:.3f}] "
                  f"LP [{row['lp_lower']:.3f}, {row['lp_upper']:.3f}] truth {row['truth']:.3f} "
                  f"W0 {row['gap']:.3f} se {row['se']:.3f} {row['seconds_per_restart']:.0f} s/restart", flush=True)
            results = {
                "command": "python benchmarks/ncm.py " + " ".join(sys.argv[1:] if argv is None else argv),
                "machine": machine_info("scipy"), "seconds": time.perf_counter() - start,
                "rows_per_fit": args.rows, "restarts": args.restarts,
                "steps": [args.fit_steps, args.search_steps, args.tighten_steps], "seeds": args.seeds,
                "extend": args.extend, "slow_multiplier": args.slow_multiplier, "complete": len(rows) == args.seeds * len(args.graphs), "rows": rows, "targets": targets(rows),
            }
            (out / f"{args.name}.json").write_text(json.dumps(results, indent=2))  # after every row: a partial run is kept
            (out / f"{args.name}.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
