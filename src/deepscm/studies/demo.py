"""The ``deepscm demo`` job: all three rungs of the causal ladder against a known truth.

A deep SCM (a mechanism selected per continuous node by the default, a Gumbel-max categorical
mechanism for ``sex``) is fitted to rows drawn from the synthetic brain-MRI SCM
:func:`deepscm.datasets.medical.medical_brain` (``sex, age → brain_volume; age, brain_volume →
ventricle_volume``), whose equations are known, so every answer can be set beside the exact one:

1. **association** — the model's observational samples against true samples (means, spreads,
   per-variable Wasserstein-1 with the floor two independent true samples reach);
2. **intervention** — ``E[ventricle_volume | do(age = a)]`` for constants and for the shift
   ``age := age + 10``, two average causal effects, and ``do(brain_volume)`` beside mere
   conditioning on it (age confounds brain and ventricle volume, so seeing ≠ doing);
3. **counterfactual** — per patient, "what would the volumes have been at age 80 / ten years
   older / of the other sex", from the model's abduction, action and prediction beside the truth's
   exact counterfactual (the true noise is recovered by inverting the true equations).

:func:`run_demo` prints the tables and writes ``report.md``, PNG plots, ``results.json``, the
training data, five example patients and the fitted model (``demo_model/``) to one directory.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DeepSCMError, ExtrapolationWarning
from .report import environment, with_threads, write_json

__all__ = ["DATA_SEED", "DemoSettings", "run_demo"]

#: seed of the embedded data: the training rows and the held-out patients are always the same.
DATA_SEED = 2020
#: samples per distribution when comparing the model with the truth.
N_EVAL = 20_000
#: held-out patients over which counterfactual errors are averaged.
N_CF_UNITS = 1_000
#: patients shown one by one in the counterfactual table and plot.
N_SHOWN = 5
#: ages of the dose-response curve and of the counterfactual trajectories.
AGES = np.arange(25, 90, 5)

_REPORT_FILES = ("report.md", "results.json")


@dataclass
class DemoSettings:
    """What the demo does; the defaults are those of ``deepscm demo``."""

    out: Path = Path("deepscm-demo")
    rows: int = 5000
    epochs: int = 300
    seed: int = 0
    progress: bool = True
    lr: float = 5e-3
    batch_size: int = 512
    eval_samples: int = N_EVAL
    #: torch CPU threads; one is fastest for these small networks, and far faster than
    #: several when other processes compete for the cores.
    threads: int | None = 1


# =============================================================================== entry point
def run_demo(settings: DemoSettings | None = None, echo: Callable[[str], Any] = print) -> dict:
    """Fit, query all three rungs, compare with the truth, write the report; returns the numbers."""
    s = settings or DemoSettings()
    with warnings.catch_warnings():
        # some of the demo's queries (age 80, age + 10, the age trajectories) reach past the
        # training range on purpose; the report measures their error against the truth instead
        warnings.simplefilter("ignore", ExtrapolationWarning)
        return with_threads(s.threads, lambda: _run(s, echo))


def _run(s: DemoSettings, echo: Callable[[str], Any]) -> dict:
    from .._version import __version__
    from ..datasets import load_scm
    from ..graph import CausalGraph
    from ..scm import DeepSCM

    started = time.perf_counter()
    timings: dict[str, float] = {}
    out = _prepare_out(Path(s.out))

    gt = load_scm("medical_brain")
    data = gt.sample(s.rows, seed=DATA_SEED)
    units = gt.sample(N_CF_UNITS, seed=DATA_SEED + 1)
    shown = units.head(N_SHOWN)
    data.to_csv(out / "data.csv", index=False)
    shown.to_csv(out / "patients.csv", index=False)
    graph = CausalGraph(gt.graph)

    echo(f"deepscm {__version__} demo — synthetic brain MRI volumes (ground truth known)")
    echo(f"graph: {graph}")
    echo(f"fitting a DeepSCM to {s.rows} rows (≤ {s.epochs} epochs, early stopping) ...")
    t = time.perf_counter()
    scm = DeepSCM(graph).fit(
        data, epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, seed=s.seed, device="cpu",
        progress=s.progress,
    )
    timings["fit"] = time.perf_counter() - t
    scm.save(out / "demo_model")
    echo(f"fitted in {timings['fit']:.1f} s ({scm.fit_info['epochs_run']} epochs); "
         f"saved to {out / 'demo_model'}")

    t = time.perf_counter()
    results: dict[str, Any] = {
        "settings": {
            "rows": s.rows, "max_epochs": s.epochs, "epochs_run": scm.fit_info["epochs_run"],
            "seed": s.seed, "data_seed": DATA_SEED, "lr": s.lr, "batch_size": s.batch_size,
            "eval_samples": s.eval_samples, "cf_units": N_CF_UNITS, "out": str(out),
        },
        "graph": str(graph),
        "fit": _fit_table(scm),
        "association": _association(scm, gt, s.seed, s.eval_samples),
        "intervention": _intervention(scm, gt, s.seed, s.eval_samples),
        "counterfactual": _counterfactual(scm, gt, units, shown),
    }
    timings["queries"] = time.perf_counter() - t

    t = time.perf_counter()
    _plot_graph(out / "graph.png")
    _plot_observational(out / "observational.png", results["association"]["samples"])
    _plot_interventional(out / "interventional.png", results["intervention"])
    _plot_counterfactual(out / "counterfactual.png", results["counterfactual"])
    timings["plots"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started
    results["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
    results["environment"] = environment()

    for title, table in _tables(results):
        echo(f"\n{title}\n{table}")
    (out / "report.md").write_text(_report(results, _tables(results, escape=True)))
    plot_data = ("samples", "densities", "scatter", "shown")  # kept out of results.json
    write_json(out / "results.json", results, drop=plot_data)
    echo(f"\ntotal {timings['total']:.1f} s (fit {timings['fit']:.1f} s, queries "
         f"{timings['queries']:.1f} s, plots {timings['plots']:.1f} s)")
    echo(f"report: {out / 'report.md'}")
    echo("\ntry the model yourself:")
    for line in _follow_ups(out, str(graph)):
        echo(f"  {line}")
    return results


def _prepare_out(out: Path) -> Path:
    """Create ``out``; refuse a non-empty directory that an earlier demo did not write."""
    if out.exists() and not out.is_dir():
        raise DeepSCMError(f"demo output {str(out)!r} exists and is not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not any((out / f).exists() for f in _REPORT_FILES):
        raise DeepSCMError(
            f"demo output directory {str(out)!r} is not empty and was not written by deepscm demo; "
            "choose a new --out so nothing of yours is overwritten"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DeepSCMError(f"cannot create demo output directory {str(out)!r}: {err.strerror or err}") from None
    return out


def _follow_ups(out: Path, graph: str) -> list[str]:
    model = out / "demo_model"
    return [
        f"deepscm sample {model} -n 5 --do age=80 --seed 0",
        f"deepscm sample {model} -n 1000 --do 'age=age+10' --out shifted.csv",
        f"deepscm counterfactual {model} --data {out / 'patients.csv'} --do age=80",
        f"deepscm counterfactual {model} --data {out / 'patients.csv'} --do sex=male",
        f"deepscm counterfactual {model} --data {out / 'patients.csv'} --do 'age=age+10' --flag-support",
        f"deepscm fit --graph '{graph}' --data {out / 'data.csv'} --out my_model --epochs 100",
    ]


# =============================================================================== the three rungs
def _fit_table(scm) -> list[dict]:
    rows = []
    for node in scm.graph.nodes:
        var = scm.schema[node]
        ll = scm.fit_info.get("val_log_prob", {}).get(node)
        selection = scm.fit_info.get("selection", {}).get(node)
        term = node if selection is None else f"{node} [{selection['chosen']}]"
        best = scm.history.best_epoch.get(term)
        rows.append({
            "node": node, "kind": var.kind, "mechanism": type(scm.mechanisms[node]).__name__,
            "parents": scm.graph.parents(node),
            "best_epoch": None if best is None else best + 1,
            "heldout_loglik": ll,
        })
    return rows


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns as floats; ``sex`` as 1.0 for male (so its mean is P(male))."""
    out = frame.copy()
    out["sex"] = (frame["sex"].astype(str) == "male").astype(float)
    return out


def _association(scm, gt, seed: int, n: int) -> dict:
    from ..evaluation import wasserstein1

    model = _numeric(scm.sample(n, seed=seed + 1))
    truth = _numeric(gt.sample(n, seed=DATA_SEED + 2))
    truth2 = _numeric(gt.sample(n, seed=DATA_SEED + 3))
    w1, floor = wasserstein1(model, truth), wasserstein1(truth2, truth)
    rows = [
        {
            "variable": c, "model_mean": model[c].mean(), "true_mean": truth[c].mean(),
            "model_std": model[c].std(), "true_std": truth[c].std(),
            "w1": w1[c], "w1_floor": floor[c],
        }
        for c in gt.nodes
    ]
    return {"rows": rows, "samples": {"model": model, "truth": truth}}


def _intervention(scm, gt, seed: int, n: int) -> dict:
    from ..evaluation import wasserstein1
    from ..interventions import Shift

    y = "ventricle_volume"
    model_seed, true_seed = seed + 2, DATA_SEED + 4  # common random numbers across queries

    def both(do_model, do_true=None, size=n):
        m = scm.sample(size, do=do_model, seed=model_seed)
        t = gt.sample(size, seed=true_seed, do=do_true if do_true is not None else do_model)
        return m, t

    queries = [
        ("E[ventricle_volume]  (no intervention)", None, None),
        ("E[ventricle_volume | do(age = 40)]", {"age": 40.0}, None),
        ("E[ventricle_volume | do(age = 80)]", {"age": 80.0}, None),
        ("E[ventricle_volume | do(age = age + 10)]", {"age": Shift(lambda a: a + 10)},
         {"age": lambda a: a + 10}),
        ("E[ventricle_volume | do(brain_volume = 1100)]", {"brain_volume": 1100.0}, None),
    ]
    rows, densities = [], {}
    for label, do_model, do_true in queries:
        m, t = both(do_model, do_true)
        rows.append({"query": label, "model": m[y].mean(), "truth": t[y].mean(),
                     "w1": wasserstein1(m[[y]], t[[y]])[y]})
        densities[label] = (m[y].to_numpy(), t[y].to_numpy())

    # seeing, not doing: condition on brain volume near 1100 ml in observational samples
    m, t = both(None)
    near_m, near_t = (m["brain_volume"] - 1100).abs() < 10, (t["brain_volume"] - 1100).abs() < 10
    rows.append({"query": "E[ventricle_volume | brain_volume ≈ 1100]  (seeing, not doing)",
                 "model": m.loc[near_m, y].mean(), "truth": t.loc[near_t, y].mean(), "w1": None})

    # average causal effects (both arms from the same noise draws)
    m80, t80 = both({"age": 80.0})
    m40, t40 = both({"age": 40.0})
    rows.append({"query": "E[ventricle_volume | do(age=80)] − E[ventricle_volume | do(age=40)]",
                 "model": m80[y].mean() - m40[y].mean(), "truth": t80[y].mean() - t40[y].mean(),
                 "w1": None})
    b = "brain_volume"
    model_ate = scm.ate("sex", b, treated="male", control="female", n=n, seed=model_seed)
    tm = gt.sample(n, seed=true_seed, do={"sex": "male"})[b].mean()
    tf = gt.sample(n, seed=true_seed, do={"sex": "female"})[b].mean()
    rows.append({"query": "E[brain_volume | do(sex=male)] − E[brain_volume | do(sex=female)]",
                 "model": model_ate, "truth": tm - tf, "w1": None})

    # dose-response curve E[y | do(age = a)]
    curve = {"age": AGES.tolist(), "model": [], "truth": []}
    for a in AGES:
        m, t = both({"age": float(a)}, size=max(n // 4, 100))
        curve["model"].append(m[y].mean())
        curve["truth"].append(t[y].mean())
    return {"rows": rows, "densities": densities, "curve": curve}


def _counterfactual(scm, gt, units: pd.DataFrame, shown: pd.DataFrame) -> dict:
    from ..interventions import Shift

    targets = ["brain_volume", "ventricle_volume"]
    # five patients under do(age = 80)
    cf_m = scm.counterfactual(shown, do={"age": 80.0})
    cf_t = gt.counterfactual(shown, do={"age": 80.0})
    patients = []
    for i in shown.index:
        row = {"patient": int(i) + 1, "sex": str(shown.at[i, "sex"]), "age": shown.at[i, "age"]}
        for c in targets:
            row[f"{c}_factual"] = shown.at[i, c]
            row[f"{c}_model"] = cf_m.at[i, c]
            row[f"{c}_truth"] = cf_t.at[i, c]
        patients.append(row)

    # errors over held-out patients, per query and variable
    flip = {"female": "male", "male": "female"}
    queries: list[tuple[str, Callable[[pd.DataFrame], tuple[pd.DataFrame, pd.DataFrame, dict]]]] = [
        ("do(age = 80)", lambda u: _cf_pair(scm, gt, u, {"age": 80.0}, {"age": 80.0})),
        ("do(age = age + 10)", lambda u: _cf_pair(
            scm, gt, u, {"age": Shift(lambda a: a + 10)}, {"age": lambda a: a + 10})),
        ("do(sex = the other sex)", lambda u: _cf_by_group(scm, gt, u, "sex", flip)),
    ]
    errors, abduction, scatter = [], {}, None
    for label, run in queries:
        m, t, kinds = run(units)
        abduction[label] = kinds
        outside = scm.outside_support(m)  # parent combinations the training data never showed
        for c in targets:
            diff = m[c].to_numpy() - t[c].to_numpy()
            change = t[c].to_numpy() - units[c].to_numpy()
            errors.append({"query": label, "variable": c, "rmse": float(np.sqrt(np.mean(diff**2))),
                           "mae": float(np.mean(np.abs(diff))), "true_change_sd": float(np.std(change)),
                           "true_change_mean": float(np.mean(change)),
                           "outside_support": float(outside[c].mean()) if c in outside else None})
        if scatter is None:
            scatter = (t["ventricle_volume"].to_numpy(), m["ventricle_volume"].to_numpy())

    # counterfactual trajectories: each shown patient's ventricle volume had they been age a
    traj = {"age": AGES.tolist(), "model": [], "truth": []}
    for a in AGES:
        traj["model"].append(scm.counterfactual(shown, do={"age": float(a)})["ventricle_volume"].tolist())
        traj["truth"].append(gt.counterfactual(shown, do={"age": float(a)})["ventricle_volume"].tolist())
    return {"patients": patients, "errors": errors, "abduction": abduction, "scatter": scatter,
            "trajectories": traj, "shown": shown}


def _cf_pair(scm, gt, units, do_model, do_true):
    m = scm.counterfactual(units, do=do_model)
    return m, gt.counterfactual(units, do=do_true), m.attrs.get("abduction", {})


def _cf_by_group(scm, gt, units, node: str, mapping: Mapping[Any, Any]):
    """A counterfactual where each unit's intervention value depends on its own value."""
    parts_m, parts_t, kinds = [], [], {}
    for value, target in mapping.items():
        group = units[units[node].astype(str) == value]
        if len(group):
            m, t, kinds = _cf_pair(scm, gt, group, {node: target}, {node: target})
            parts_m.append(m)
            parts_t.append(t)
    m = pd.concat(parts_m).loc[units.index]
    t = pd.concat(parts_t).loc[units.index]
    return m, t, kinds


# =============================================================================== tables
def _g(x: Any, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "—"
    if isinstance(x, (int, np.integer)):
        return str(x)
    return f"{x:+.4g}" if signed else f"{x:.4g}"


def _md_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = (),
    escape: bool = False,
) -> str:
    """A markdown table, padded to line up in a terminal too; ``escape`` escapes ``|`` in cells."""
    cells = [[str(c).replace("|", "\\|") if escape else str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]

    def line(items):
        return "| " + " | ".join(
            (s.rjust(w) if i in right else s.ljust(w)) for i, (s, w) in enumerate(zip(items, widths, strict=True))
        ) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if i in right else "-" * (w + 2) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in cells)])


def _rel(model: float, truth: float) -> str:
    if truth == 0 or not np.isfinite(truth):
        return "—"
    return f"{100 * (model - truth) / abs(truth):+.1f}%"


def _tables(r: dict, escape: bool = False) -> list[tuple[str, str]]:
    def _md(*args, **kwargs):
        return _md_table(*args, escape=escape, **kwargs)

    fit = _md(
        ["node", "parents", "kind", "mechanism", "best epoch", "held-out log-lik"],
        [[f["node"], ", ".join(f["parents"]) or "—", f["kind"], f["mechanism"], _g(f["best_epoch"]),
          _g(f["heldout_loglik"])] for f in r["fit"]],
        right=(4, 5),
    )
    assoc = _md(
        ["variable", "mean (model)", "mean (truth)", "std (model)", "std (truth)", "W1", "W1 floor"],
        [[a["variable"] + (" (P(male))" if a["variable"] == "sex" else ""), _g(a["model_mean"]),
          _g(a["true_mean"]), _g(a["model_std"]), _g(a["true_std"]), _g(a["w1"]), _g(a["w1_floor"])]
         for a in r["association"]["rows"]],
        right=(1, 2, 3, 4, 5, 6),
    )
    inter = _md(
        ["query", "model", "truth", "error", "W1"],
        [[q["query"], _g(q["model"]), _g(q["truth"]), _rel(q["model"], q["truth"]), _g(q["w1"])]
         for q in r["intervention"]["rows"]],
        right=(1, 2, 3, 4),
    )
    pts = r["counterfactual"]["patients"]
    patients = _md(
        ["patient", "sex", "age", "brain (factual)", "brain cf (model)", "brain cf (truth)",
         "ventricles (factual)", "ventricles cf (model)", "ventricles cf (truth)"],
        [[p["patient"], p["sex"], f"{p['age']:.0f}", _g(p["brain_volume_factual"]),
          _g(p["brain_volume_model"]), _g(p["brain_volume_truth"]), _g(p["ventricle_volume_factual"]),
          _g(p["ventricle_volume_model"]), _g(p["ventricle_volume_truth"])] for p in pts],
        right=(2, 3, 4, 5, 6, 7, 8),
    )
    errs = _md(
        ["query", "variable", "RMSE", "MAE", "mean true change", "sd of true change", "parents unseen together"],
        [[e["query"], e["variable"], _g(e["rmse"]), _g(e["mae"]), _g(e["true_change_mean"], True),
          _g(e["true_change_sd"]),
          "—" if e.get("outside_support") is None else f"{e['outside_support']:.1%}"]
         for e in r["counterfactual"]["errors"]],
        right=(2, 3, 4, 5, 6),
    )
    return [
        ("Fit (held-out log-lik: mean log p(x_i | pa_i) per row, nats, data units)", fit),
        ("Rung 1 — association: observational samples, model vs truth", assoc),
        ("Rung 2 — intervention (volumes in ml; W1 between model and true interventional samples)", inter),
        ("Rung 3 — counterfactual: had these patients been 80 years old (ml)", patients),
        (f"Rung 3 — counterfactual error over {N_CF_UNITS} held-out patients (ml)", errs),
    ]


# =============================================================================== report
def _report(r: dict, tables: list[tuple[str, str]]) -> str:
    st, tm, env = r["settings"], r["timings_s"], r["environment"]
    t_fit, t_assoc, t_inter, t_pat, t_err = (t for _, t in tables)
    mermaid = "\n".join(f"    {e.strip().replace('->', '-->')}" for e in r["graph"].split(";") if e.strip())
    return f"""# deepscm demo: the three rungs of the causal ladder against a known truth

A deep structural causal model — one learned mechanism per node, `x_i := f_i(pa_i, u_i)` — was
fitted to {st['rows']} rows of a synthetic brain-MRI dataset whose true equations are known
(`deepscm.datasets.load_scm("medical_brain")`), so every answer below is set beside the exact one.
Each continuous node got the mechanism the default selects (linear in closed form where the
linear noise is independent of the parents, otherwise a conditional spline flow or boosted
additive noise, by held-out likelihood; all invertible, so the noise of an observed patient is
recovered exactly; the table below names each), `sex` a categorical (Gumbel-max) mechanism.

## Causal graph

![causal graph](graph.png)

```mermaid
graph LR
{mermaid}
```

`{r['graph']}`

## Settings and timing

| setting | value |
|---|---|
| training rows | {st['rows']} (data seed {st['data_seed']}; saved as `data.csv`) |
| epochs | {st['epochs_run']} run of at most {st['max_epochs']} (per-node early stopping, patience 20) |
| optimiser | Adam, lr {st['lr']}, batch {st['batch_size']}, seed {st['seed']} |
| samples per compared distribution | {st['eval_samples']} |
| held-out patients for counterfactual errors | {st['cf_units']} |
| time | fit {tm['fit']} s, queries {tm['queries']} s, plots {tm['plots']} s, **total {tm['total']} s** |
| environment | deepscm {env['deepscm']}, torch {env['torch']} (CPU threads: {env['torch_threads']}), Python {env['python']}, {env['machine']} |

### Fit

Held-out log-likelihood: mean `log p(x_i | pa_i)` per row, in nats, in the data's own units.

{t_fit}

## Rung 1 — association

Model samples against true samples: means, standard deviations and the per-variable
Wasserstein-1 distance (in the variable's units; for `sex` the difference in P(male)). "W1 floor"
is the distance between two independent true samples of the same size — what a perfect model
would score.

{t_assoc}

![observational distributions](observational.png)

## Rung 2 — intervention

Means of interventional distributions, from model samples and from the true SCM under the same
intervention; "error" is relative to the truth. `do(age = age + 10)` is a shift intervention (every
patient ten years older than they naturally are). The `brain_volume ≈ 1100` row conditions instead
of intervening: age drives both brain and ventricle volume, so seeing a small brain and making the
brain small are different questions with different answers.

{t_inter}

![interventional densities and dose-response](interventional.png)

## Rung 3 — counterfactual

For an observed patient, "what would the brain and ventricle volumes have been had this patient
been 80 years old?" The model abducts each patient's noise (inverting its mechanisms), sets the age and
re-runs the mechanisms of the descendants; the truth does the same with the true equations.
Non-descendants of the intervened node (here `sex`) are returned unchanged. The five patients are
in `patients.csv`.

{t_pat}

Errors over {st['cf_units']} held-out patients. Compare the RMSE with the spread of the true
individual changes: a model that predicted only the average change would have an RMSE about that
spread. The last column is the share of patients for whom the counterfactual gives the variable a
combination of parents that no training patient had (each parent may still be in its range; the
mechanism extrapolates there: `scm.outside_support`, `deepscm.scm.support`).

{t_err}

The model labels each counterfactual column `factual` (unchanged), `exact` (a unique value, from
exact abduction), `approximate` (deterministic but approximate abduction) or `draws` (samples
from a counterfactual distribution, where abduction draws from a posterior):

{_kinds_text(r["counterfactual"]["abduction"])}

![counterfactuals](counterfactual.png)

## Try the fitted model

The model is saved in `demo_model/`:

```sh
{chr(10).join(_follow_ups(Path(st['out']), r['graph']))}
```
"""


def _kinds_text(abduction: Mapping[str, Mapping[str, str]]) -> str:
    lines = []
    for query, kinds in abduction.items():
        groups = {k: [c for c, v in kinds.items() if v == k] for k in ("factual", "exact", "approximate", "draws")}
        text = "; ".join(f"{k}: {', '.join(cols)}" for k, cols in groups.items() if cols)
        lines.append(f"- `{query}` — {text}")
    return "\n".join(lines)


# =============================================================================== plots
_MODEL, _TRUTH = "tab:blue", "black"


def _figure(width: float, height: float, ncols: int):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    return fig, fig.subplots(1, ncols)


def _kde_line(ax, x: np.ndarray, grid: np.ndarray, **kwargs) -> None:
    from scipy.stats import gaussian_kde

    x = x[np.isfinite(x)]
    if len(x) > 5000:
        x = x[:5000]
    if len(x) < 2 or np.std(x) == 0:
        return
    ax.plot(grid, gaussian_kde(x)(grid), **kwargs)


def _grid(*arrays: np.ndarray, lo: float = 0.5, hi: float = 99.5) -> np.ndarray:
    allx = np.concatenate([a[np.isfinite(a)] for a in arrays])
    a, b = np.percentile(allx, [lo, hi])
    pad = 0.05 * (b - a or 1.0)
    return np.linspace(a - pad, b + pad, 300)


def _plot_graph(path: Path) -> None:
    fig, ax = _figure(5.2, 2.6, 1)
    pos = {"sex": (0, 1), "age": (0, 0), "brain_volume": (1, 0.5), "ventricle_volume": (2, 0.5)}
    edges = [("sex", "brain_volume"), ("age", "brain_volume"), ("age", "ventricle_volume"),
             ("brain_volume", "ventricle_volume")]
    for a, b in edges:
        bend = "arc3,rad=0.25" if (a, b) == ("age", "ventricle_volume") else "arc3"
        ax.annotate("", xy=pos[b], xytext=pos[a],
                    arrowprops={"arrowstyle": "-|>", "color": "0.3", "lw": 1.4, "shrinkA": 28,
                                "shrinkB": 34, "connectionstyle": bend})
    for node, (x, y) in pos.items():
        ax.text(x, y, node.replace("_", "\n"), ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "round,pad=0.4", "fc": "#e8f0fa", "ec": "tab:blue"})
    ax.set_xlim(-0.5, 2.5)
    ax.set_ylim(-0.4, 1.4)
    ax.axis("off")
    fig.savefig(path)


def _plot_observational(path: Path, samples: Mapping[str, pd.DataFrame]) -> None:
    model, truth = samples["model"], samples["truth"]
    fig, axes = _figure(12, 3, 4)
    p_m, p_t = model["sex"].mean(), truth["sex"].mean()
    axes[0].bar([0.8, 1.8], [1 - p_m, p_m], width=0.4, color=_MODEL, label="model")
    axes[0].bar([1.2, 2.2], [1 - p_t, p_t], width=0.4, color="0.5", label="truth")
    axes[0].set_xticks([1, 2], ["female", "male"])
    axes[0].set_title("sex")
    axes[0].set_ylim(0, 0.75)
    axes[0].legend(fontsize=8, ncols=2)
    units = {"age": "years", "brain_volume": "ml", "ventricle_volume": "ml"}
    for ax, col in zip(axes[1:], units, strict=True):
        grid = _grid(model[col].to_numpy(), truth[col].to_numpy())
        _kde_line(ax, truth[col].to_numpy(), grid, color=_TRUTH, ls="--", label="truth")
        _kde_line(ax, model[col].to_numpy(), grid, color=_MODEL, label="model")
        ax.set_title(col)
        ax.set_xlabel(units[col])
        ax.set_yticks([])
        ax.legend(fontsize=8)
    fig.suptitle("Rung 1: observational distributions, model vs truth")
    fig.savefig(path)


def _plot_interventional(path: Path, inter: Mapping[str, Any]) -> None:
    fig, axes = _figure(11, 3.6, 2)
    dens = inter["densities"]
    picks = [("E[ventricle_volume]  (no intervention)", "observational", "0.35"),
             ("E[ventricle_volume | do(age = 40)]", "do(age = 40)", "tab:green"),
             ("E[ventricle_volume | do(age = 80)]", "do(age = 80)", "tab:red")]
    grid = _grid(*(a for key, _, _ in picks for a in dens[key]), hi=99)
    for key, label, color in picks:
        m, t = dens[key]
        _kde_line(axes[0], m, grid, color=color, label=f"{label}: model")
        _kde_line(axes[0], t, grid, color=color, ls="--", alpha=0.8, label=f"{label}: truth")
    axes[0].set_xlabel("ventricle_volume (ml)")
    axes[0].set_yticks([])
    axes[0].set_title("p(ventricle_volume) under interventions on age")
    axes[0].legend(fontsize=7)
    c = inter["curve"]
    axes[1].plot(c["age"], c["truth"], "k--o", ms=3, label="truth")
    axes[1].plot(c["age"], c["model"], "-o", color=_MODEL, ms=3, label="model")
    axes[1].set_xlabel("a (years)")
    axes[1].set_ylabel("ml")
    axes[1].set_title("E[ventricle_volume | do(age = a)]")
    axes[1].legend(fontsize=8)
    fig.suptitle("Rung 2: interventions, model (solid) vs truth (dashed)")
    fig.savefig(path)


def _plot_counterfactual(path: Path, cf: Mapping[str, Any]) -> None:
    fig, axes = _figure(11, 3.8, 2)
    traj, shown = cf["trajectories"], cf["shown"]
    model, truth = np.asarray(traj["model"]), np.asarray(traj["truth"])
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    for j, i in enumerate(shown.index):
        color = colors[j % len(colors)]
        axes[0].plot(traj["age"], truth[:, j], "--", color=color, alpha=0.8)
        axes[0].plot(traj["age"], model[:, j], "-", color=color,
                     label=f"patient {int(i) + 1} ({shown.at[i, 'sex']})")
        axes[0].plot(shown.at[i, "age"], shown.at[i, "ventricle_volume"], "o", color=color, ms=6)
    axes[0].set_xlabel("counterfactual age a (years)")
    axes[0].set_ylabel("ventricle_volume (ml)")
    axes[0].set_title("had the patient been age a (dot: observed)")
    axes[0].legend(fontsize=7)
    true_cf, model_cf = cf["scatter"]
    axes[1].scatter(true_cf, model_cf, s=4, alpha=0.4, color=_MODEL)
    lo, hi = np.percentile(np.concatenate([true_cf, model_cf]), [0, 99.5])
    axes[1].plot([lo, hi], [lo, hi], "k--", lw=1)
    axes[1].set_xlim(lo, hi)
    axes[1].set_ylim(lo, hi)
    axes[1].set_xlabel("true counterfactual (ml)")
    axes[1].set_ylabel("model counterfactual (ml)")
    axes[1].set_title(f"ventricle_volume under do(age = 80), {len(true_cf)} patients")
    fig.suptitle("Rung 3: counterfactuals, model (solid) vs truth (dashed)")
    fig.savefig(path)
