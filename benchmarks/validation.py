"""False alarms and power of model validation and graph falsification, and falsify's cost.

- ``validate``: a linear ``a → b → c, a → c`` SCM fitted with the true graph (a flagged node is
  a false alarm) and with ``a → c`` dropped (``c`` flagged is a detection), over ``--seeds``.
- ``falsify``: a nonlinear 5-node SCM, the true graph (a rejection is a false alarm) and a
  wrong one (the chain reversed, with a collider), over ``--falsify-seeds``.
- ``--cost P N G``: ``falsify`` on a random sparse nonlinear DAG of ``P`` nodes, ``N`` rows and
  ``G`` permuted graphs (e.g. ``--cost 20 5000 20``).

The data generators are the test suite's (``tests/test_validation.py``), so the study and
the tests look at the same SCMs. Writes ``results/validation.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=100, help="validate seeds (default 100)")
    parser.add_argument("--falsify-seeds", type=int, default=10, help="falsify seeds (default 10)")
    parser.add_argument("--cost", type=int, nargs=3, metavar=("P", "N", "G"), default=None)
    parser.add_argument("--out", default=str(ROOT / "results" / "validation.json"))
    args = parser.parse_args(argv)
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
    out = Path(args.out)
    out.write_text(json.dumps(results, indent=2))
    out.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
