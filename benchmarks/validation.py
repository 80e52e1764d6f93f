"""False alarms and power of model validation and graph falsification, and falsify's cost.

- ``validate``: a linear ``a → b → c, a → c`` SCM fitted with the true graph (a flagged node is
  a false alarm) and with ``a → c`` dropped (``c`` flagged is a detection), over ``--seeds``.
- ``falsify``: a nonlinear 5-node SCM, the true graph (a rejection is a false alarm) and a
  wrong one (the chain reversed, with a collider), over ``--falsify-seeds``.
- ``--cost P N G``: ``falsify`` on a random sparse nonlinear DAG of ``P`` nodes, ``N`` rows and
  ``G`` permuted graphs (e.g. ``--cost 20 5000 20``).
- ``--dowhy``: instead, both studies side by side with DoWhy-gcm's ``evaluate_causal_model``
  (an auto-assigned ``InvertibleStructuralCausalModel``: the per-node invertibility test and
  ``falsify_graph``) on the same cases and seeds, with the time per fit and per evaluation;
  writes ``results/validation_dowhy.{json,md}`` and leaves ``validation.{json,md}`` alone.

The data generators are the test suite's (``tests/test_validation.py``), so the study and
the tests look at the same SCMs. Writes ``results/validation.{json,md}`` (see ``--dowhy``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "tests"))

import deepscm as ds  # noqa: E402
from deepscm.evaluation import falsify, local_markov_conditions, validate  # noqa: E402
from machine import machine_info  # noqa: E402
from peers import quiet_gcm  # noqa: E402
from test_validation import DROPPED, FIVE_TRUE, FIVE_WRONG, TRUE_ABC, linear_abc, nonlinear_five  # noqa: E402


def validation_rates(seeds: int) -> dict:
    false_alarms = detections = 0
    for s in range(seeds):
        train, test = linear_abc(2000, 100 + s), linear_abc(1000, 200 + s)
        true = validate(ds.DeepSCM(TRUE_ABC, mechanisms="linear").fit(train, progress=False), test, seed=s)
        wrong = validate(ds.DeepSCM(DROPPED, mechanisms="linear").fit(train, progress=False), test, seed=s)
        false_alarms += bool(true.table["flagged"].any())
        detections += bool(wrong.table.loc["c", "flagged"])
    return {"seeds": seeds, "true_graph_flagged": false_alarms, "dropped_edge_flagged": detections}


def falsification_rates(seeds: int) -> dict:
    false_alarms = detections = 0
    for s in range(seeds):
        df = nonlinear_five(2000, 300 + s)
        false_alarms += falsify(FIVE_TRUE, df, n_permutations=100, seed=s).rejected
        detections += falsify(FIVE_WRONG, df, n_permutations=100, seed=s).rejected
    return {"seeds": seeds, "true_graph_rejected": int(false_alarms), "wrong_graph_rejected": int(detections)}


def falsify_cost(p: int, n: int, graph_permutations: int) -> dict:
    rng = np.random.default_rng(0)
    nodes = [f"x{i}" for i in range(p)]
    edges = [(nodes[i], nodes[j]) for j in range(p) for i in range(j) if rng.random() < 2.0 / p]
    data: dict[str, np.ndarray] = {}
    for v in nodes:
        x = 0.5 * rng.normal(size=n)
        for a in (a for a, b in edges if b == v):
            x += np.tanh(data[a]) * rng.choice([-1, 1])
        data[v] = x
    dag = nx.DiGraph()
    dag.add_nodes_from(nodes)
    dag.add_edges_from(edges)
    graph = ds.CausalGraph.from_networkx(dag)
    started = time.perf_counter()
    result = falsify(graph, pd.DataFrame(data), n_graph_permutations=graph_permutations, seed=0)
    return {"nodes": p, "rows": n, "edges": len(edges), "tests": len(local_markov_conditions(graph)),
            "graph_permutations": graph_permutations, "seconds": round(time.perf_counter() - started, 1),
            "rejected": bool(result.rejected), "violations": int(result.n_violations)}


# ---------------------------------------------------------------- side by side with DoWhy-gcm
def _digraph(spec: str) -> nx.DiGraph:
    """A fresh networkx graph from ``"a -> b; b -> c"``."""
    dag = nx.DiGraph()
    dag.add_edges_from(tuple(v.strip() for v in e.split("->")) for e in spec.split(";"))
    return dag


def _dowhy_evaluate(gcm, spec: str, train: pd.DataFrame, test: pd.DataFrame, seed: int) -> dict:
    """Fit an ``InvertibleStructuralCausalModel`` (auto-assigned mechanisms) on ``train`` and run
    ``evaluate_causal_model`` on ``test``: the invertibility test per node (kernel HSIC of the
    reconstructed noise against the node's *parents*, Bonferroni over nodes, α = 0.05) and the
    graph falsification (``falsify_graph``: local Markov conditions with KCI at 0.05, 50 node
    permutations, rejection level 0.2; DoWhy's defaults). Mechanism CRPS and the overall KL are
    switched off: they raise no flag and only cost time."""
    from dowhy.gcm.falsify import FalsifyConst
    from dowhy.gcm.model_evaluation import EvaluateCausalModelConfig

    gcm.util.general.set_random_seed(seed)
    started = time.perf_counter()
    model = gcm.InvertibleStructuralCausalModel(_digraph(spec))
    gcm.auto.assign_causal_mechanisms(model, train)
    gcm.fit(model, train)
    fitted = time.perf_counter()
    res = gcm.evaluate_causal_model(
        model, test, evaluate_causal_mechanisms=False, evaluate_overall_kl_divergence=False,
        evaluate_invertibility_assumptions=True, evaluate_causal_structure=True,
        config=EvaluateCausalModelConfig(n_jobs=1))
    done = time.perf_counter()
    gf = res.graph_falsification
    lmc = gf.summary[FalsifyConst.VALIDATE_LMC] if gf.can_evaluate else {}
    violated = [f"{x} _||_ {y}" for (x, y), (_, bad) in lmc.get(FalsifyConst.LOCAL_VIOLATION_INSIGHT, {}).items()
                if bad]
    return {"invertibility_flagged": sorted(str(n) for n, (_, rej, _) in res.pnl_assumptions.items() if rej),
            "falsification_evaluable": bool(gf.can_evaluate),
            "falsified": bool(gf.falsified), "falsifiable": bool(gf.falsifiable),
            "lmc_violated": violated,
            "fit_s": fitted - started, "eval_s": done - fitted}


def _share(flags: list[bool]) -> str:
    return f"{sum(flags)}/{len(flags)}"


def _mean(xs: list[float]) -> float:
    return round(float(np.mean(xs)), 3)


def dowhy_side_by_side(seeds: int, falsify_seeds: int) -> dict:
    """deepscm and DoWhy-gcm on the same cases and seeds as :func:`validation_rates` and
    :func:`falsification_rates`; per seed the flags and the fit / evaluation seconds."""
    gcm = quiet_gcm()
    abc: list[dict] = []
    for s in range(seeds):
        train, test = linear_abc(2000, 100 + s), linear_abc(1000, 200 + s)
        row: dict = {"seed": s}
        for key, spec in (("true", TRUE_ABC), ("dropped", DROPPED)):
            t0 = time.perf_counter()
            scm = ds.DeepSCM(spec, mechanisms="linear").fit(train, progress=False)
            t1 = time.perf_counter()
            table = validate(scm, test, seed=s).table
            t2 = time.perf_counter()
            row[key] = {"deepscm": {"flagged": sorted(table.index[table["flagged"]]), "fit_s": t1 - t0,
                                    "eval_s": t2 - t1},
                        "dowhy": _dowhy_evaluate(gcm, spec, train, test, s)}
        abc.append(row)
    five: list[dict] = []
    for s in range(falsify_seeds):
        df, train = nonlinear_five(2000, 300 + s), nonlinear_five(2000, 500 + s)
        row = {"seed": s}
        for key, spec in (("true", FIVE_TRUE), ("wrong", FIVE_WRONG)):
            t0 = time.perf_counter()
            rejected = bool(falsify(spec, df, n_permutations=100, seed=s).rejected)
            row[key] = {"deepscm": {"rejected": rejected, "eval_s": time.perf_counter() - t0},
                        "dowhy": _dowhy_evaluate(gcm, spec, train, df, s)}
        five.append(row)
    return {"abc": abc, "five": five}


def _dowhy_summary(raw: dict) -> list[dict]:
    """One row per (case, graph, tool, check): the share of seeds flagged and mean seconds."""
    rows: list[dict] = []

    def add(case, graph, tool, check, flags, fit, ev):
        rows.append({"case": case, "graph": graph, "tool": tool, "check": check, "flagged": sum(flags),
                     "seeds": len(flags), "fit_s": _mean(fit) if fit else None, "eval_s": _mean(ev)})

    abc, five = raw["abc"], raw["five"]
    for key, graph, on_c in (("true", "true graph (false alarm: anything flagged)", False),
                             ("dropped", "a→c dropped (detection: c flagged)", True)):
        d = [r[key]["deepscm"] for r in abc]
        w = [r[key]["dowhy"] for r in abc]
        fit_d, ev_d = [x["fit_s"] for x in d], [x["eval_s"] for x in d]
        fit_w, ev_w = [x["fit_s"] for x in w], [x["eval_s"] for x in w]
        inv = [("c" in x["invertibility_flagged"]) if on_c else bool(x["invertibility_flagged"]) for x in w]
        lmc = [any(v.startswith("c ") or v.endswith(" c") for v in x["lmc_violated"]) if on_c
               else bool(x["lmc_violated"]) for x in w]
        case = "linear a→b→c, a→c"
        add(case, graph, "deepscm", "`validate` (HSIC of noise vs non-descendants, KS)",
            [("c" in x["flagged"]) if on_c else bool(x["flagged"]) for x in d], fit_d, ev_d)
        add(case, graph, "DoWhy-gcm", "invertibility (HSIC of noise vs parents)", inv, fit_w, ev_w)
        add(case, graph, "DoWhy-gcm", "falsify_graph: an implied independence violated"
            + (" (c ⟂ a | b)" if on_c else "") + ("" if all(x["falsification_evaluable"] for x in w)
                                                  else " [none implied: not evaluable]"), lmc, fit_w, ev_w)
        add(case, graph, "DoWhy-gcm", "falsify_graph: graph falsified", [x["falsified"] for x in w], fit_w, ev_w)
        add(case, graph, "DoWhy-gcm", "either check", [a or b or x["falsified"] for a, b, x in zip(inv, lmc, w)],
            fit_w, ev_w)
    for key, graph in (("true", "true graph (false alarm: rejected)"),
                       ("wrong", "reversed chain + collider (detection: rejected)")):
        d = [r[key]["deepscm"] for r in five]
        w = [r[key]["dowhy"] for r in five]
        case = "nonlinear 5 nodes"
        fit_w, ev_w = [x["fit_s"] for x in w], [x["eval_s"] for x in w]
        add(case, graph, "deepscm", "`falsify` (rejected)", [x["rejected"] for x in d], [],
            [x["eval_s"] for x in d])
        add(case, graph, "DoWhy-gcm", "falsify_graph: graph falsified", [x["falsified"] for x in w], fit_w, ev_w)
        add(case, graph, "DoWhy-gcm", "invertibility: any node flagged",
            [bool(x["invertibility_flagged"]) for x in w], fit_w, ev_w)
    return rows


def dowhy_report(args: argparse.Namespace, argv: list[str] | None) -> int:
    """Run :func:`dowhy_side_by_side` and write ``results/validation_dowhy.{json,md}``."""
    started = time.perf_counter()
    raw = dowhy_side_by_side(args.seeds, args.falsify_seeds)
    rows = _dowhy_summary(raw)
    results = {"command": "python benchmarks/validation.py " + " ".join(argv or sys.argv[1:]),
               "machine": machine_info("dowhy", "scikit-learn"), "summary": rows, "per_seed": raw,
               "seconds": round(time.perf_counter() - started, 1)}
    lines = [
        "# Validation side by side: deepscm vs DoWhy-gcm `evaluate_causal_model`",
        "",
        f"`{results['command']}` — {results['machine']['date']}, DoWhy {results['machine']['dowhy']}, "
        f"{results['seconds']:.0f} s, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
        "",
        "Same data, seeds and graphs as `validation.md` (seeds 0..n-1 of that study; fewer seeds here). "
        "deepscm: `DeepSCM(graph, mechanisms=\"linear\")` + `validate` (α = 0.05, Bonferroni over all "
        "p-values), `falsify` (100 HSIC permutations). DoWhy-gcm: `InvertibleStructuralCausalModel` on a "
        "fresh networkx graph, `assign_causal_mechanisms` (GOOD), `fit` on the training rows, "
        "`evaluate_causal_model` on the held-out rows with the invertibility test and `falsify_graph` "
        "(DoWhy defaults: Bonferroni over nodes at 0.05; KCI at 0.05, 50 node permutations, rejection "
        "at 0.2), mechanism CRPS and overall KL off (no flags). The 5-node case: both tools test the "
        "same rows as the `falsify` study; DoWhy's model is fitted on a separate draw. "
        "Times: mean seconds per graph and seed, one thread; the DoWhy rows of one graph share one fit and "
        "one `evaluate_causal_model` call.",
        "",
        "| case | graph | tool | check | flagged / seeds | fit s | evaluation s |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        fit = "—" if r["fit_s"] is None else f"{r['fit_s']:.2f}"
        lines.append(f"| {r['case']} | {r['graph']} | {r['tool']} | {r['check']} | {r['flagged']}/{r['seeds']} "
                     f"| {fit} | {r['eval_s']:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out) if args.out else ROOT / "results" / "validation_dowhy.json"
    out.write_text(json.dumps(results, indent=2, default=_json_default))
    out.with_suffix(".md").write_text(text)
    return 0


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(type(x))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=100, help="validate seeds (default 100)")
    parser.add_argument("--falsify-seeds", type=int, default=10, help="falsify seeds (default 10)")
    parser.add_argument("--cost", type=int, nargs=3, metavar=("P", "N", "G"), default=None)
    parser.add_argument("--dowhy", action="store_true",
                        help="side by side with DoWhy-gcm on --seeds / --falsify-seeds seeds")
    parser.add_argument("--out", default=None,
                        help="JSON path (default results/validation.json, or validation_dowhy.json)")
    args = parser.parse_args(argv)
    if args.dowhy:
        return dowhy_report(args, argv)
    started = time.perf_counter()
    results = {"command": "python benchmarks/validation.py " + " ".join(argv or sys.argv[1:]),
               "machine": machine_info(),
               "validate": validation_rates(args.seeds),
               "falsify": falsification_rates(args.falsify_seeds)}
    if args.cost:
        results["falsify_cost"] = falsify_cost(*args.cost)
    results["seconds"] = round(time.perf_counter() - started, 1)
    v, f = results["validate"], results["falsify"]
    lines = [
        "# Validation and falsification: false alarms and power",
        "",
        f"`{results['command']}` — {results['machine']['date']}, {results['seconds']:.0f} s",
        "",
        "| check | seeds | true graph flagged / rejected | wrong graph detected |",
        "|---|---:|---:|---:|",
        f"| `validate` (linear a→b→c, a→c; wrong: a→c dropped) | {v['seeds']} | "
        f"{v['true_graph_flagged']} | {v['dropped_edge_flagged']} |",
        f"| `falsify` (nonlinear 5 nodes; wrong: reversed chain with a collider) | {f['seeds']} | "
        f"{f['true_graph_rejected']} | {f['wrong_graph_rejected']} |",
    ]
    if args.cost:
        c = results["falsify_cost"]
        lines += ["", f"`falsify` on a random {c['nodes']}-node DAG ({c['edges']} edges, {c['rows']} rows, "
                  f"{c['tests']} implied independences, {c['graph_permutations']} permuted graphs): "
                  f"{c['seconds']} s, rejected {c['rejected']}, {c['violations']} violations"]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out) if args.out else ROOT / "results" / "validation.json"
    out.write_text(json.dumps(results, indent=2))
    out.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
