"""De-biasing with counterfactual (edge-removed) generative models: CCGM on the Learning-Mindsets-
like SCM (the CCGM Table II protocol) and on the pendulum (sweeps, true counterfactual images).

- ``mindsets``: CCGM (tabular, the paper's graph SM, SE → D, Y without D → Y) unedited and with
  each confounder's edge into Y (and both) removed; the ATE on each generated data set is the
  naive difference with the top 30% of the generated D counted as treated, over
  ``--bootstrap`` resamples of the generated rows (mean, sd, 2.5% / 97.5%). Beside it naive,
  IPW and AIPW (:mod:`deepscm.estimators`) on the data with the same bootstrap, the truth, a
  CCGM with D → Y and residual noise whose confounder → D edges are removed, and the generic
  route — :class:`deepscm.DeepSCM` on the known graph, then ``without_edges`` on SM → D and
  SE → D (generated naive difference) or ``ate`` (do()).
- ``pendulum``: a label→label CCGM (graph given; a learned-graph fit is reported too) and
  label→image CCGMs with the joint (convolutional, ``--image-epochs``) and the concept-wise
  (``--concept-epochs``) image decoder; sweeps of θ and of the sun over test units before and after removing
  θ → x_shadow and x_sun → x_shadow. Errors are against the TRUE counterfactuals of
  :class:`deepscm.datasets.pendulum.PendulumGenerator` (a removed edge reads the model's
  edge reference), for labels, for images rendered from the generated labels, and for the
  image decoder's images (its labels read by the pseudo-oracle ``measure_shadow``). Target:
  after removing θ → x_shadow the shadow position moves < 2% of its range over the θ sweep
  while the width still responds.

``--part mindsets|pendulum`` runs one part and keeps the other part's stored results; with
``--part pendulum``, an image decoder skipped by ``--image-epochs 0`` / ``--concept-epochs 0``
keeps its stored results (marked with the run that made them).
Writes ``results/debias.{json,md}`` and ``results/debias_*.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.linear_model import LinearRegression

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

import deepscm as ds  # noqa: E402
from deepscm.datasets.mindsets import GRAPH, load_mindsets  # noqa: E402
from deepscm.datasets.pendulum import LABEL_RANGES, LABELS, PendulumGenerator, load_pendulum, measure_shadow  # noqa: E402
from deepscm.estimators import AIPW, IPW  # noqa: E402
from deepscm.io import to_jsonable  # noqa: E402
from deepscm.models import CCGM  # noqa: E402
from machine import machine_info  # noqa: E402

PAPER_GRAPH = "SM -> D; SE -> D; SM -> Y; SE -> Y"


# ------------------------------------------------------------------ mindsets
def naive_top30(frame: pd.DataFrame) -> float:
    """Naive difference of Y with the top 30% of D treated (CCGM §VI.D)."""
    treated = frame["D"].rank(method="first") > 0.7 * len(frame)
    return float(frame.Y[treated].mean() - frame.Y[~treated].mean())


def naive(frame: pd.DataFrame) -> float:
    return float(frame.Y[frame.D == 1].mean() - frame.Y[frame.D == 0].mean())


def bootstrap(frame: pd.DataFrame, stat, n_boot: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    values = np.array([stat(frame.iloc[rng.integers(0, len(frame), len(frame))].reset_index(drop=True))
                       for _ in range(n_boot)])
    return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)),
            "q2.5": float(np.quantile(values, 0.025)), "q97.5": float(np.quantile(values, 0.975))}


def ipw(frame: pd.DataFrame) -> float:
    return IPW().fit(frame[["SM", "SE"]], frame.D, frame.Y).ate()


def aipw(frame: pd.DataFrame) -> float:
    return AIPW(outcome_model=LinearRegression()).fit(frame[["SM", "SE"]], frame.D, frame.Y).ate()


def mindsets_study(n_boot: int, epochs: int, seed: int) -> dict:
    data = load_mindsets(seed=seed)
    n = len(data)
    rows: dict[str, dict] = {}
    started = time.perf_counter()
    paper = CCGM(["SM", "SE", "D", "Y"], ["SM", "SE"], graph=PAPER_GRAPH, variant="tabular").fit(
        data, epochs=epochs, seed=seed, progress=False)
    edits = {"CCGM (no edit)": [], "CCGM: SE -> Y removed": [("SE", "Y")], "CCGM: SM -> Y removed": [("SM", "Y")],
             "CCGM: both confounders -> Y removed": [("SE", "Y"), ("SM", "Y")]}
    for name, edges in edits.items():
        gen = (paper.without_edges(edges) if edges else paper).sample(n, seed=seed)
        rows[name] = bootstrap(gen, naive_top30, n_boot, seed)
    full = CCGM(["SM", "SE", "D", "Y"], ["SM", "SE"], graph=GRAPH, variant="tabular", noise="residual").fit(
        data, epochs=epochs, seed=seed, progress=False)
    for name, model in {"CCGM + D -> Y, residual noise (no edit)": full,
                        "CCGM + D -> Y, residual noise: SM -> D, SE -> D removed": full.without_edges([("SM", "D"), ("SE", "D")])}.items():
        rows[name] = bootstrap(model.sample(n, seed=seed), naive_top30, n_boot, seed)
    ccgm_seconds = time.perf_counter() - started
    started = time.perf_counter()
    scm = ds.DeepSCM(GRAPH).fit(data, epochs=epochs, seed=seed, progress=False)
    rows["DeepSCM (known graph): SM -> D, SE -> D removed, naive on generated"] = bootstrap(
        scm.without_edges([("SM", "D"), ("SE", "D")]).sample(n, seed=seed), naive, n_boot, seed)
    rows["DeepSCM (known graph): ate(D, Y) by do()"] = {"mean": scm.ate("D", "Y", n=50_000, seed=seed)}
    rows["DeepSCM (known graph): naive on generated, no edit"] = bootstrap(scm.sample(n, seed=seed), naive, n_boot, seed)
    deepscm_seconds = time.perf_counter() - started
    rows["AIPW (data)"] = bootstrap(data, aipw, n_boot, seed)
    rows["IPW (data)"] = bootstrap(data, ipw, n_boot, seed)
    rows["Naive (data)"] = bootstrap(data, naive, n_boot, seed)
    rows["Truth (SCM)"] = {"mean": data.attrs["ate"]}
    published = {"CCGM (no edit)": 0.680, "CCGM: SE -> Y removed": 0.240, "CCGM: SM -> Y removed": 0.677,
                 "CCGM: both confounders -> Y removed": 0.242, "AIPW (data)": 0.405, "IPW (data)": 0.404,
                 "Naive (data)": 0.468}
    for name, value in published.items():
        rows[name]["published"] = value
    return {"rows": rows, "n": n, "bootstrap": n_boot, "epochs": epochs, "ccgm_seconds": round(ccgm_seconds, 1),
            "deepscm_seconds": round(deepscm_seconds, 1), "ccgm_edges": {f"{a} -> {b}": round(float(paper.adjacency.loc[a, b]), 3) for a, b in paper.edges()}}


# ------------------------------------------------------------------ pendulum
def sweep(model, units: pd.DataFrame, node: str, values: np.ndarray, edges: list, gen: PendulumGenerator,
          images: bool = False) -> dict:
    """Counterfactuals of ``units`` for each sweep value, in ``model`` edited by ``edges``,
    and the true ones (a removed edge reads *this* model's edge reference)."""
    edited = model.without_edges(edges) if edges else model
    refs = {e: model.edge_reference(e[0]) for e in edges}
    out = {"model": [], "true": []}
    for v in values:
        out["model"].append(edited.counterfactual(units, do={node: v}))
        out["true"].append(gen.counterfactual(units, do={node: v}, without_edges=edges, reference=refs, images=images))
    return out


def sweep_metrics(s: dict, gen: PendulumGenerator) -> dict:
    """Label errors (share of range), the image MAE of the generated labels rendered, and how
    far the generated shadow position / width move over the sweep (mean per unit)."""
    spans = {c: LABEL_RANGES[c][1] - LABEL_RANGES[c][0] for c in LABELS}
    label_err = {c: float(np.mean([np.abs(m[c] - t[c]).mean() / spans[c] for m, t in zip(s["model"], s["true"])]))
                 for c in LABELS}
    pix = [np.abs(gen.render(m) - gen.render(t)).mean() for m, t in zip(s["model"], s["true"])]
    pos = np.stack([m.shadow_position.to_numpy() for m in s["model"]])
    wid = np.stack([m.shadow_width.to_numpy() for m in s["model"]])
    true_pos = np.stack([t.shadow_position.to_numpy() for t in s["true"]])
    return {"label_mae_share_of_range": label_err, "rendered_image_mae": float(np.mean(pix)),
            "position_moves_share_of_range": float((np.ptp(pos, 0) / spans["shadow_position"]).mean()),
            "true_position_moves_share_of_range": float((np.ptp(true_pos, 0) / spans["shadow_position"]).mean()),
            "width_moves_share_of_range": float((np.ptp(wid, 0) / spans["shadow_width"]).mean())}


def image_metrics(s: dict) -> dict:
    """The image decoder's counterfactual images against the true ones: pixel MAE, and the
    shadow read by the pseudo-oracle ``measure_shadow`` (position / width movement over the
    sweep as a share of the label's range, mean per unit) for the decoded and the true images."""
    spans = {c: LABEL_RANGES[c][1] - LABEL_RANGES[c][0] for c in LABELS}
    decoded = [np.stack(m["image"]) for m in s["model"]]
    true = [np.stack(t["image"]) for t in s["true"]]
    read = [measure_shadow(i) for i in decoded]
    read_true = [measure_shadow(i) for i in true]

    def moves(frames: list, col: str) -> float:
        return float(np.nanmean(np.ptp(np.stack([f[col].to_numpy() for f in frames]), 0)) / spans[col])

    return {"image_mae": float(np.mean([np.abs(a - b).mean() for a, b in zip(decoded, true)])),
            "position_moves": moves(read, "shadow_position"), "true_position_moves": moves(read_true, "shadow_position"),
            "width_moves": moves(read, "shadow_width"), "true_width_moves": moves(read_true, "shadow_width")}


def grid_png(label_sweep: dict, image_sweeps: dict, gen: PendulumGenerator, unit: int, path: Path) -> None:
    """Rows: the true counterfactual (with the label model's reference), the label model's
    labels rendered, then each image decoder's images; columns: the sweep."""
    rows = [np.concatenate([gen.render(t.iloc[[unit]])[0] for t in label_sweep["true"]], 1),
            np.concatenate([gen.render(m.iloc[[unit]])[0] for m in label_sweep["model"]], 1)]
    for s in image_sweeps.values():
        rows.append(np.concatenate([np.stack(m["image"])[unit] for m in s["model"]], 1))
    Image.fromarray((np.clip(np.concatenate(rows, 0), 0, 1) * 255).astype(np.uint8)).save(path)


def pendulum_study(size: int, epochs: int, image_epochs: int, concept_epochs: int, n_units: int, seed: int,
                   out_dir: Path) -> dict:
    gen = PendulumGenerator(size)
    train = load_pendulum("train", size=size, seed=seed)
    test = load_pendulum("test", size=size, seed=seed)
    labels = train.drop(columns="image")
    started = time.perf_counter()
    model = CCGM(list(LABELS), list(LABELS[:2]), graph=PendulumGenerator.graph).fit(labels, epochs=epochs, seed=seed, progress=False)
    learned = CCGM(list(LABELS), list(LABELS[:2])).fit(labels, epochs=epochs, seed=seed, progress=False)
    label_seconds = time.perf_counter() - started
    image_models, image_info = {}, {}
    for decoder, n_epochs in (("joint", image_epochs), ("concept", concept_epochs)):
        if not n_epochs:
            continue
        started = time.perf_counter()
        image_models[decoder] = CCGM(list(LABELS), list(LABELS[:2]), graph=PendulumGenerator.graph, variant="image",
                                     image_decoder=decoder).fit(train, epochs=n_epochs, seed=seed, progress=False)
        image_info[decoder] = {"epochs": n_epochs, "seconds": round(time.perf_counter() - started, 1),
                               "weights": image_models[decoder].weights}
    units = test.drop(columns="image").sample(n_units, random_state=seed).reset_index(drop=True)
    lo, hi = LABEL_RANGES["pendulum_angle"]
    thetas = np.linspace(lo, hi, 7)
    suns = np.linspace(*LABEL_RANGES["sun_position"], 7)
    studies = {"theta sweep": ("pendulum_angle", thetas, []),
               "theta sweep, theta -> shadow_position removed": ("pendulum_angle", thetas, [("pendulum_angle", "shadow_position")]),
               "sun sweep": ("sun_position", suns, []),
               "sun sweep, sun -> shadow_position removed": ("sun_position", suns, [("sun_position", "shadow_position")])}
    results, decoded = {}, {d: {} for d in image_models}
    for i, (name, (node, values, edges)) in enumerate(studies.items()):
        s = sweep(model, units, node, values, edges, gen)
        results[name] = sweep_metrics(s, gen)
        image_sweeps = {d: sweep(m, units, node, values, edges, gen, images=True) for d, m in image_models.items()}
        for d, si in image_sweeps.items():
            decoded[d][name] = image_metrics(si)
        grid_png(s, image_sweeps, gen, 0, out_dir / f"debias_pendulum_{i}.png")
    dscm = ds.DeepSCM(PendulumGenerator.graph).fit(labels[list(LABELS)], epochs=epochs, seed=seed, progress=False)
    ref = model.edge_reference("pendulum_angle")
    cut = dscm.without_edges([("pendulum_angle", "shadow_position")], reference=ref)
    d_model = [cut.counterfactual(units[list(LABELS)], do={"pendulum_angle": v}) for v in thetas]
    d_true = [gen.counterfactual(units, do={"pendulum_angle": v}, without_edges=[("pendulum_angle", "shadow_position")],
                                 reference=ref, images=False) for v in thetas]
    generic = sweep_metrics({"model": d_model, "true": d_true}, gen)
    return {"size": size, "epochs": epochs, "units": n_units, "label_seconds": round(label_seconds, 1),
            "image_models": image_info, "decoded": decoded,
            "learned_edges": {f"{a} -> {b}": round(float(learned.adjacency.loc[a, b]), 3) for a, b in learned.edges(0.05)},
            "learned_H": learned.acyclicity(),
            "edge_reference_theta": ref, "sweeps": results,
            "deepscm_theta_sweep_theta_to_position_removed": generic}


# ------------------------------------------------------------------ report
def _run_line(run: dict) -> str:
    m = run["machine"]
    took = f"{run['seconds']:.0f} s" if run.get("seconds") is not None else "time shared with the other part"
    return (f"`{run['command']}` — {m['date']}, {took}, {m['cpu_count']} CPUs, "
            f"torch threads {m['torch_threads']}, load average at start {m.get('load_average_start', '?')}")


def markdown(res: dict) -> str:
    lines = ["# De-biasing with counterfactual generative models (CCGM)", ""]
    if "mindsets" in res:
        m = res["mindsets"]
        lines += [f"## Mindsets-like SCM (n = {m['n']}, {m['bootstrap']} bootstrap resamples; CCGM {m['epochs']} epochs, "
                  f"{m['ccgm_seconds']} s; DeepSCM {m['deepscm_seconds']} s)", "", _run_line(m["run"]), "",
                  "| method | mean ATE | sd | 2.5% | 97.5% | published (real study) |", "|---|---:|---:|---:|---:|---:|"]
        for name, r in m["rows"].items():
            f = lambda k: f"{r[k]:.3f}" if k in r else ""  # noqa: E731
            lines.append(f"| {name} | {f('mean')} | {f('sd')} | {f('q2.5')} | {f('q97.5')} | {f('published')} |")
        lines.append("")
    if "pendulum" in res:
        p = res["pendulum"]
        lines += [f"## Pendulum ({p['size']} px grayscale, {p['units']} test units; label→label {p['epochs']} epochs, "
                  f"{p['label_seconds']} s for two fits)", "", _run_line(p["run"]), "",
                  "### Label→label CCGM and the generic route", "",
                  "Errors against the true counterfactuals, as a share of each label's range; image MAE in [0, 1] "
                  "pixel units (generated labels rendered by the generator).", "",
                  "| sweep | θ err | x_sun err | w err | x_shadow err | image MAE (rendered labels) "
                  "| x_shadow moves | true x_shadow moves | w moves |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, r in list(p["sweeps"].items()) + [("DeepSCM, θ sweep, θ → x_shadow removed", p["deepscm_theta_sweep_theta_to_position_removed"])]:
            e = r["label_mae_share_of_range"]
            lines.append(f"| {name} | {e['pendulum_angle']:.3f} | {e['sun_position']:.3f} | {e['shadow_width']:.3f} | "
                         f"{e['shadow_position']:.3f} | {r['rendered_image_mae']:.4f} | "
                         f"{r['position_moves_share_of_range']:.3f} | {r['true_position_moves_share_of_range']:.3f} | "
                         f"{r['width_moves_share_of_range']:.3f} |")
        target = p["sweeps"]["theta sweep, theta -> shadow_position removed"]
        ok = target["position_moves_share_of_range"] < 0.02 and target["width_moves_share_of_range"] > 0.05
        lines += ["", f"Target on the generated labels (θ → x_shadow removed: x_shadow moves < 2% of its range, width "
                  f"responds): {'met' if ok else 'NOT met'} ({target['position_moves_share_of_range']:.4f}, "
                  f"width {target['width_moves_share_of_range']:.3f}).",
                  f"Learned graph (no graph given), H(G) = {p['learned_H']:.2e}, edges with |G| > 0.05: {json.dumps(p['learned_edges'])}",
                  "", "### Label→image CCGM: the image decoders", "",
                  "The decoded counterfactual images against the true counterfactual images (a removed edge reads that "
                  "model's edge reference): pixel MAE, and the shadow read off the images by the pseudo-oracle "
                  "`measure_shadow` — its movement over the sweep as a share of the label's range (mean per unit).", "",
                  "| decoder | epochs | fit s | sweep | image MAE | x_shadow moves (oracle) | true | w moves (oracle) | true |",
                  "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
        for d, sweeps in p["decoded"].items():
            info = p["image_models"][d]
            for name, r in sweeps.items():
                lines.append(f"| {d}{' †' if 'run' in info else ''} | {info['epochs']} | {info['seconds']} | {name} | {r['image_mae']:.4f} | "
                             f"{r['position_moves']:.3f} | {r['true_position_moves']:.3f} | {r['width_moves']:.3f} | "
                             f"{r['true_width_moves']:.3f} |")
        for d, info in p["image_models"].items():
            if "run" in info:
                lines.append(f"\n† kept from an earlier run: {_run_line(info['run'])}.")
        for d, sweeps in p["decoded"].items():
            r, base = sweeps["theta sweep, theta -> shadow_position removed"], sweeps["theta sweep"]
            ok = (r["position_moves"] < 0.02 and r["width_moves"] > 0.05
                  and base["position_moves"] > 0.5 * base["true_position_moves"])
            lines.append(f"\nTarget on the {d} decoder's images (θ → x_shadow removed: oracle x_shadow moves < 2%, width "
                         f"responds, and the unedited θ sweep moves the shadow at least half as far as the truth): "
                         f"{'met' if ok else 'NOT met'} ({r['position_moves']:.4f}, width {r['width_moves']:.3f}; "
                         f"unedited {base['position_moves']:.3f} vs true {base['true_position_moves']:.3f}).")
        lines += ["", "Grids `debias_pendulum_{0..3}.png` (one test unit; rows: true counterfactual, label→label CCGM "
                  f"rendered, then the image decoders {[d for d, i in p['image_models'].items() if 'run' not in i]}; "
                  "columns: the sweep)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", "--study", dest="part", choices=["all", "mindsets", "pendulum"], default="all",
                        help="run one part; the other part's stored results are kept in the output")
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--image-epochs", type=int, default=10, help="epochs of the joint (convolutional) image decoder; 0 skips it")
    parser.add_argument("--concept-epochs", type=int, default=30, help="epochs of the concept-wise image decoder; 0 skips it")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "results" / "debias.json"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    res = json.loads(out.read_text()) if out.exists() and args.part != "all" else {}
    old_pendulum = res.get("pendulum") if args.part == "pendulum" else None
    command = "python benchmarks/debias.py " + " ".join(argv if argv is not None else sys.argv[1:])
    for part in ("mindsets", "pendulum"):
        if args.part not in ("all", part):
            continue
        started, machine = time.perf_counter(), machine_info()
        if part == "mindsets":
            res[part] = mindsets_study(args.bootstrap, args.epochs, args.seed)
        else:
            res[part] = pendulum_study(args.size, args.epochs, args.image_epochs, args.concept_epochs, args.units,
                                       args.seed, out.parent)
        res[part]["run"] = {"command": command, "machine": machine, "seconds": round(time.perf_counter() - started, 1)}
        if part == "pendulum" and old_pendulum:
            for d, stored in old_pendulum.get("decoded", {}).items():
                if d not in res[part]["decoded"]:
                    res[part]["decoded"][d] = stored
                    res[part]["image_models"][d] = {**old_pendulum["image_models"][d],
                                                    "run": old_pendulum["image_models"][d].get("run", old_pendulum["run"])}
    if "command" in res and "mindsets" in res and "run" not in res["mindsets"]:  # results of the one-run format
        res["mindsets"]["run"] = {"command": res["command"], "machine": res["machine"], "seconds": None}
    for old in ("command", "machine", "seconds"):
        res.pop(old, None)
    text = markdown(res)
    print(text)
    out.write_text(json.dumps(to_jsonable(res), indent=2))
    out.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
