"""Counterfactual soundness: composition, reversibility, effectiveness and minimality of any model.

The axioms of Galles & Pearl (1998) hold in every causal model, so a counterfactual model that
breaks them is wrong somewhere (Monteiro, De Sousa Ribeiro, Pawlowski, Castro & Glocker,
"Measuring axiomatic soundness of counterfactual image models", ICLR 2023). With the
counterfactual function ``f(x, pa, p̃a)`` (abduct with ``pa``, predict with ``p̃a``):

- **composition** ``C^(m)(x) = d(x, f^(m)(x, pa, pa))``: the null intervention — setting the
  intervened nodes to the values they have — applied ``m`` times (Monteiro's horizon; report
  ``m = 1`` and ``m = 10``);
- **reversibility** ``R(x) = d(x, f(f(x, pa, p̃a), p̃a, pa))``: to the counterfactual and back,
  repeated for several cycles (Monteiro: cycle length 2, 5 cycles, i.e. steps 2 and 10);
- **effectiveness** ``E_k = score(ĝ_a(x̃), x̃_a)`` for each intervened node ``k`` and each
  pseudo-oracle ``ĝ_a`` (a predictor of attribute ``a`` from the other variables): MAE for
  continuous attributes, accuracy for discrete ones. ``x̃_a`` is the counterfactual's own
  value of ``a`` (``p̃a_k`` for ``a = k``), or the *true* counterfactual's where it is known
  (``truth=``: a ground-truth SCM, the pendulum generator). Each row also gives the oracle's
  score on the factual data (its floor) and the score of the *unchanged* factual data against
  ``x̃_a`` (what a model that ignores the intervention gets), and the
  :func:`effectiveness_index` — 0 as effective as real data, 1 no effect;
- **minimality** (image models): the counterfactual latent divergence of
  :mod:`deepscm.evaluation.cld` (Sanchez & Tsaftaris 2022) of ``x̃`` from ``x`` against real
  images of the target and of the factual class (:func:`minimality`).

``d`` is the mean absolute difference per unit in the data's own units — pixel units for
image columns (0–255 for Morpho-digits, as Monteiro's ``l1``) — and the share of changed
values for discrete columns; ``relative`` divides it by the column's standard deviation in the
data. There is an inherent trade-off between composition and effectiveness: a model that
changes nothing composes perfectly and is not effective at all (index 1), and is minimal only
in the trivial sense (CLD ``log(w_CF + w_F e)``, the unchanged end).

``model`` is anything with ``model.graph`` and ``model.counterfactual(units, do=...)``
returning a frame aligned with ``units`` (a :class:`~deepscm.DeepSCM`, a
:class:`~deepscm.datasets.GroundTruthSCM`, …); keyword arguments such as
``n_samples=8, average=True`` are passed on, and ``seed`` when it accepts one. Intervention
values ``p̃a_k`` are drawn from the data's marginal of ``k`` and forced to differ from the
factual one (another category for a discrete node).

Example:
    >>> table = soundness(scm, test, oracles=morpho_oracles("x"), do_nodes=["t", "i"])  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, GraphError
from ..graph import CausalGraph

__all__ = [
    "Oracle",
    "composition",
    "effectiveness",
    "effectiveness_index",
    "fit_oracles",
    "minimality",
    "morpho_oracles",
    "pendulum_oracles",
    "reversibility",
    "soundness",
]

#: a pseudo-oracle: a frame of (counterfactual) rows → one prediction per row.
Oracle = Callable[[pd.DataFrame], Any]
#: the true counterfactual: ``truth(units, do)`` → a frame of the units' true counterfactual
#: values (one row per unit, the oracle attributes among its columns).
Truth = Callable[[pd.DataFrame, Mapping[str, np.ndarray]], pd.DataFrame]

_COLUMNS = ["metric", "do", "step", "column", "measure", "mean", "std", "relative", "n"]


def composition(
    model: Any, data: pd.DataFrame, do_nodes: Sequence[str] | None = None,
    steps: Iterable[int] = (1, 10), seed: int = 0, **counterfactual_kwargs: Any,
) -> pd.DataFrame:
    """``d(x, f^(m)(x, pa, pa))`` per column for each ``m`` in ``steps``, with the null
    intervention on all of ``do_nodes`` at once (default: the roots that have children)."""
    _, nodes = _setup(model, data, do_nodes)
    steps = _steps(steps, "steps")
    rows, current = [], data
    for m in range(1, max(steps) + 1):
        current = _counterfactual(model, current, {k: _values(current[k]) for k in nodes},
                                  seed + m, counterfactual_kwargs)
        if m in steps:
            rows += _distance_rows("composition", ", ".join(nodes), m, data, current, nodes)
    return _frame(rows)


def reversibility(
    model: Any, data: pd.DataFrame, do_nodes: Sequence[str] | None = None,
    cycles: Iterable[int] = (1, 5), seed: int = 0, **counterfactual_kwargs: Any,
) -> pd.DataFrame:
    """For each node ``k`` of ``do_nodes``: ``do(k := p̃a_k)`` then ``do(k := pa_k)`` back,
    repeated; ``d(x, ·)`` after each cycle in ``cycles`` (``step`` counts counterfactuals,
    two per cycle)."""
    _, nodes = _setup(model, data, do_nodes)
    cycles = _steps(cycles, "cycles")
    rng = np.random.default_rng(seed)
    rows = []
    for j, k in enumerate(nodes):
        other = _different_values(data[k], rng)
        current = data
        for c in range(1, max(cycles) + 1):
            call = seed + 1000 * (j + 1) + 2 * c
            away = _counterfactual(model, current, {k: other}, call, counterfactual_kwargs)
            current = _counterfactual(model, away, {k: _values(data[k])}, call + 1, counterfactual_kwargs)
            if c in cycles:
                rows += _distance_rows("reversibility", k, 2 * c, data, current, [k])
    return _frame(rows)


def effectiveness(
    model: Any, data: pd.DataFrame, oracles: Mapping[str, Oracle] | None = None,
    do_nodes: Sequence[str] | None = None, seed: int = 0, train: pd.DataFrame | None = None,
    truth: Truth | None = None, **counterfactual_kwargs: Any,
) -> pd.DataFrame:
    """For each node ``k`` of ``do_nodes`` and each attribute ``a`` of ``oracles``: the
    oracle's score on ``x̃ = f(x, pa, p̃a_k)`` against ``x̃_a`` (module docstring).

    ``oracles`` maps an attribute to a callable of a frame (one prediction per row); by
    default :func:`fit_oracles` fits one per node of ``do_nodes`` on ``train`` (default
    ``data``) from the nodes' descendants. Columns ``oracle_floor`` and ``unchanged`` hold
    the oracle's score on the factual rows against their own values and against ``x̃_a``;
    ``index`` is :func:`effectiveness_index`. With ``truth`` (the true counterfactual
    ``truth(units, do)``), ``x̃_a`` is the true counterfactual value instead of the model's."""
    graph, nodes = _setup(model, data, do_nodes)
    if oracles is None:
        oracles = fit_oracles(train if train is not None else data, graph, nodes, seed=seed)
    if not isinstance(oracles, Mapping) or not oracles:
        raise ConfigError("oracles must map an attribute (a column) to a callable of a frame")
    for a, oracle in oracles.items():
        if a not in data.columns:
            raise DataError(f"oracle attribute {a!r} is not a column of the data {list(data.columns)}")
        if not callable(oracle):
            raise ConfigError(f"the oracle for {a!r} must be a callable of a frame, got {type(oracle).__name__}")
    rng = np.random.default_rng(seed)
    factual = {a: _predict(o, data, a) for a, o in oracles.items()}
    rows = []
    for j, k in enumerate(nodes):
        other = _different_values(data[k], rng)
        cf = _counterfactual(model, data, {k: other}, seed + 1000 * (j + 1), counterfactual_kwargs)
        target = cf if truth is None else _truth(truth, data, {k: other}, list(oracles))
        for a, oracle in oracles.items():
            measure, score = _scorer(data[a])
            per_row = score(_predict(oracle, cf, a), target[a].to_numpy())
            ok = np.isfinite(per_row)
            floor = float(np.nanmean(score(factual[a], data[a].to_numpy())))
            unchanged = float(np.nanmean(score(factual[a], target[a].to_numpy())))
            mean = float(per_row[ok].mean()) if ok.any() else np.nan
            rows.append({
                "metric": "effectiveness", "do": k, "step": 1, "column": a, "measure": measure,
                "mean": mean,
                "std": float(per_row[ok].std()) if ok.any() else np.nan,
                "relative": mean / _scale(data[a]) if measure == "mae" and ok.any() else np.nan,
                "n": int(ok.sum()),
                "oracle_floor": floor,
                "unchanged": unchanged,
                "index": effectiveness_index(measure, mean, floor, unchanged),
            })
    return pd.DataFrame(rows, columns=_COLUMNS + ["oracle_floor", "unchanged", "index"])


def effectiveness_index(measure: str, score: float, floor: float, unchanged: float) -> float:
    """Where an effectiveness score lies between the oracle on real data (0) and a model that
    ignores the intervention (1): ``(MAE − floor)/(unchanged − floor)`` for ``"mae"`` and
    ``(floor − acc)/(floor − unchanged)`` for ``"accuracy"`` (higher is better there, so
    ``unchanged < floor``). NaN where the intervention does not move the attribute (the gap
    ``unchanged − floor`` is ≤ 1e-9 in the direction of worse) or a score is NaN."""
    if measure == "mae":
        gap, excess = unchanged - floor, score - floor
    elif measure == "accuracy":
        gap, excess = floor - unchanged, floor - score
    else:
        raise ConfigError(f"measure must be 'mae' or 'accuracy', got {measure!r}")
    if not np.isfinite(gap) or not np.isfinite(excess) or gap <= 1e-9:
        return float("nan")
    return float(excess / gap)


def soundness(
    model: Any, data: pd.DataFrame, oracles: Mapping[str, Oracle] | None = None,
    do_nodes: Sequence[str] | None = None, seed: int = 0, train: pd.DataFrame | None = None,
    truth: Truth | None = None, embedding: Any = None, reference: pd.DataFrame | None = None,
    **counterfactual_kwargs: Any,
) -> pd.DataFrame:
    """:func:`composition` (steps 1, 10), :func:`reversibility` (cycles 1, 5),
    :func:`effectiveness` and, given an image ``embedding``, :func:`minimality` (against
    ``reference``, default ``train`` or ``data``) in one tidy frame."""
    parts = [
        composition(model, data, do_nodes, seed=seed, **counterfactual_kwargs),
        reversibility(model, data, do_nodes, seed=seed, **counterfactual_kwargs),
        effectiveness(model, data, oracles, do_nodes, seed=seed, train=train, truth=truth, **counterfactual_kwargs),
    ]
    if embedding is not None:
        ref = reference if reference is not None else train
        parts.append(minimality(model, data, embedding, do_nodes, reference=ref, seed=seed, **counterfactual_kwargs))
    return pd.concat(parts, ignore_index=True)


def minimality(
    model: Any, data: pd.DataFrame, embedding: Any, do_nodes: Sequence[str] | None = None,
    image: str | None = None, reference: pd.DataFrame | None = None, bins: int = 4,
    weights: tuple[float, float] = (1.0, 1.0), seed: int = 0, **counterfactual_kwargs: Any,
) -> pd.DataFrame:
    """Minimality of image counterfactuals by CLD (:func:`~deepscm.evaluation.cld.counterfactual_latent_divergence`).

    For each node ``k`` of ``do_nodes``, every unit gets ``do(k := p̃a_k)`` with ``p̃a_k`` a
    value of ``reference[k]`` of another *class* than the unit's own — the category for a
    discrete ``k``, else one of ``bins`` quantile bins of ``reference[k]`` — and
    ``CLD = log(w_CF e^{P(S_CF ≤ div)} + w_F e^{P(S_F ≥ div)})`` is computed with
    ``div = KL(q(x̃) ‖ q(x))`` under ``embedding`` (e.g. :func:`~deepscm.evaluation.cld.fit_image_embedding`)
    and ``S_CF``, ``S_F`` the divergences of the ``reference`` images (default ``data``) of the
    target and of the factual class from ``x``. Lower is better; columns ``best``
    (``log(w_CF + w_F)``) and ``unchanged`` (``log(w_CF + w_F e)``, the score of ``x̃ = x``)
    give the two known ends, ``p_cf`` and ``p_f`` the mean probabilities."""
    from .cld import counterfactual_latent_divergence

    _, nodes = _setup(model, data, do_nodes)
    image = _image_column(data, image)
    reference = data if reference is None else reference
    missing = [c for c in [image, *nodes] if c not in reference.columns]
    if missing:
        raise DataError(f"the reference rows lack the column(s) {missing}")
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ConfigError(f"bins must be an integer >= 2, got {bins!r}")
    if not callable(embedding):
        raise ConfigError("embedding must be an image encoder images → (μ, σ), e.g. cld.fit_image_embedding(...)")
    rng = np.random.default_rng(seed)
    ref_images = _stack(reference[image])
    w_cf, w_f = (float(w) for w in weights)
    rows = []
    for j, k in enumerate(nodes):
        classify = _classifier(reference[k], bins)
        y_ref, y_f = classify(reference[k]), classify(data[k])
        values = reference[k].to_numpy()
        other = np.empty(len(data), dtype=values.dtype)
        for i, y in enumerate(y_f):
            pool = np.flatnonzero(y_ref != y)
            if not len(pool):
                raise DataError(f"the reference rows have one class of {k!r}; CLD needs another to intervene with")
            other[i] = values[pool[rng.integers(len(pool))]]
        cf = _counterfactual(model, data, {k: other}, seed + 1000 * (j + 1), counterfactual_kwargs)
        if image not in cf.columns:
            raise DataError(f"the counterfactual has no image column {image!r}")
        scores = counterfactual_latent_divergence(
            embedding, _stack(data[image]), _stack(cf[image]), y_f, classify(pd.Series(other, name=k)),
            ref_images, y_ref, weights=weights)
        rows.append({
            "metric": "minimality", "do": k, "step": 1, "column": image, "measure": "cld",
            "mean": float(scores["cld"].mean()), "std": float(scores["cld"].std(ddof=0)), "relative": np.nan,
            "n": len(scores), "p_cf": float(scores["p_cf"].mean()), "p_f": float(scores["p_f"].mean()),
            "best": float(np.log(w_cf + w_f)), "unchanged": float(np.log(w_cf + w_f * np.e)),
        })
    return pd.DataFrame(rows, columns=_COLUMNS + ["p_cf", "p_f", "best", "unchanged"])


# ---------------------------------------------------------------------- oracles
def fit_oracles(
    data: pd.DataFrame, graph: CausalGraph | str, attributes: Sequence[str],
    inputs: Sequence[str] | None = None, seed: int = 0,
) -> dict[str, Oracle]:
    """One scikit-learn gradient-boosting predictor per attribute, trained on ``data`` to
    predict it from ``inputs`` (default: the attributes' strict descendants in ``graph``;
    image columns are flattened): a regressor for a continuous attribute, a classifier for a
    discrete one."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    graph = graph if isinstance(graph, CausalGraph) else CausalGraph(graph)
    if inputs is None:
        inputs = [n for n in graph.nodes if n in graph.descendants(attributes) and n not in attributes]
    inputs = list(inputs)
    if not inputs:
        raise GraphError(
            f"{list(attributes)} have no descendants to predict them from; pass oracles= "
            "(a callable per attribute) or inputs="
        )
    bad = [c for c in inputs if c in attributes]
    if bad:
        raise ConfigError(f"an oracle cannot read the attribute it predicts: remove {bad} from inputs")
    labels = {c: list(pd.unique(data[c])) for c in inputs if not _is_image(data[c]) and _is_discrete(data[c])}
    oracles: dict[str, Oracle] = {}
    for a in attributes:
        y = data[a]
        model = (HistGradientBoostingClassifier if _is_discrete(y) else HistGradientBoostingRegressor)(
            max_iter=200, random_state=seed
        )
        model.fit(_features(data, inputs, labels), y.to_numpy() if _is_discrete(y) else y.to_numpy(np.float64))
        oracles[a] = lambda frame, m=model: m.predict(_features(frame, inputs, labels))
    return oracles


def morpho_oracles(image: str = "x") -> dict[str, Oracle]:
    """Morpho-digits' pseudo-oracles: the measured stroke thickness ``t`` and intensity ``i``
    of the image column (:mod:`deepscm.datasets.morphology`); a blank image gives NaN."""
    from ..datasets.morphology import measure_intensity_batch, measure_thickness_batch

    return {
        "t": lambda frame: _measure(measure_thickness_batch, frame, image),
        "i": lambda frame: _measure(measure_intensity_batch, frame, image),
    }


def pendulum_oracles(image: str = "image") -> dict[str, Oracle]:
    """The pendulum's pseudo-oracles, one per label, read off the image column by
    :func:`~deepscm.datasets.pendulum.measure_pendulum` (the generator's known geometry)."""
    from ..datasets.pendulum import measure_pendulum

    def read(frame: pd.DataFrame, name: str) -> np.ndarray:
        return measure_pendulum(_stack(frame[image]))[name].to_numpy()

    return {name: (lambda frame, n=name: read(frame, n))
            for name in ("pendulum_angle", "sun_position", "shadow_width", "shadow_position")}


# ---------------------------------------------------------------------- internals
def _setup(model: Any, data: pd.DataFrame, do_nodes: Sequence[str] | None) -> tuple[CausalGraph, list[str]]:
    if not callable(getattr(model, "counterfactual", None)) or not hasattr(model, "graph"):
        raise ConfigError("soundness needs a model with .graph and .counterfactual(units, do=...)")
    if getattr(model, "is_fitted", True) is False:
        from ..errors import NotFittedError

        raise NotFittedError("the model is not fitted yet: call model.fit(data) first")
    if not isinstance(data, pd.DataFrame) or len(data) == 0:
        raise DataError("data must be a non-empty DataFrame of observed units")
    graph = model.graph if isinstance(model.graph, CausalGraph) else CausalGraph(model.graph)
    if do_nodes is None:
        do_nodes = [n for n in graph.roots() if graph.children(n)]
        if not do_nodes:
            raise GraphError("the graph has no edges; name the nodes to intervene on with do_nodes=")
    nodes = list(do_nodes)
    graph.check_nodes(nodes, "do_nodes")
    missing = [n for n in nodes if n not in data.columns]
    if missing:
        raise DataError(f"do_nodes {missing} are not columns of the data")
    return graph, nodes


def _steps(steps: Iterable[int], name: str) -> set[int]:
    out = {int(s) for s in steps}
    if not out or min(out) < 1:
        raise ConfigError(f"{name} must be positive integers, got {sorted(out)}")
    return out


def _counterfactual(model: Any, units: pd.DataFrame, do: Mapping[str, Any], seed: int,
                    kwargs: Mapping[str, Any]) -> pd.DataFrame:
    params = inspect.signature(model.counterfactual).parameters
    extra = dict(kwargs)
    if "seed" in params and "seed" not in extra:
        extra["seed"] = seed
    out = model.counterfactual(units, do=do, **extra)
    if len(out) != len(units):
        raise DataError(
            f"the counterfactual returned {len(out)} rows for {len(units)} units; soundness needs one "
            "row per unit (for several draws pass n_samples=..., average=True)"
        )
    out = out.copy()
    out.index = units.index
    return out


def _values(column: pd.Series) -> np.ndarray:
    return column.to_numpy()


def _is_image(column: pd.Series) -> bool:
    return column.dtype == object and len(column) > 0 and isinstance(column.iloc[0], np.ndarray)


def _is_discrete(column: pd.Series) -> bool:
    if _is_image(column):
        return False
    return not pd.api.types.is_float_dtype(column.dtype)


def _different_values(column: pd.Series, rng: np.random.Generator) -> np.ndarray:
    """Per unit, a value drawn from the column's marginal that differs from the unit's own
    (another category for discrete columns; a shuffled value for continuous ones)."""
    x = column.to_numpy()
    if _is_image(column):
        raise DataError(f"cannot intervene on the image column {column.name!r}")
    if _is_discrete(column):
        cats = np.asarray(pd.unique(column))
        if len(cats) < 2:
            raise DataError(f"{column.name!r} takes one value in the data; nothing to intervene with")
        out = x.copy()
        for i, v in enumerate(x):
            others = cats[cats != v]
            out[i] = others[rng.integers(len(others))]
        return out
    out = x[rng.permutation(len(x))]
    same = out == x
    out[same] = x[(np.flatnonzero(same) + 1) % len(x)]
    return out


def _distance(a: pd.Series, b: pd.Series) -> tuple[str, np.ndarray]:
    if _is_image(a):
        xa = np.stack([np.asarray(v, dtype=np.float64) for v in a])
        xb = np.stack([np.asarray(v, dtype=np.float64) for v in b])
        return "l1 (pixels)", np.abs(xa - xb).reshape(len(xa), -1).mean(axis=1)
    if _is_discrete(a):
        return "share changed", (a.to_numpy() != b.to_numpy()).astype(np.float64)
    return "l1", np.abs(a.to_numpy(np.float64) - b.to_numpy(np.float64))


def _scale(column: pd.Series) -> float:
    if _is_image(column):
        return float(np.stack([np.asarray(v, dtype=np.float64) for v in column]).std())
    return float(column.to_numpy(np.float64).std())


def _distance_rows(metric: str, do: str, step: int, data: pd.DataFrame, other: pd.DataFrame,
                   skip: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for col in data.columns:
        if col in skip or col not in other.columns:
            continue
        measure, d = _distance(data[col], other[col])
        scale = _scale(data[col]) if measure != "share changed" else np.nan
        rows.append({
            "metric": metric, "do": do, "step": step, "column": col, "measure": measure,
            "mean": float(d.mean()), "std": float(d.std()),
            "relative": float(d.mean() / scale) if scale and np.isfinite(scale) else np.nan,
            "n": len(d),
        })
    return rows


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=_COLUMNS)


def _predict(oracle: Oracle, frame: pd.DataFrame, name: str) -> np.ndarray:
    out = np.asarray(oracle(frame))
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.shape != (len(frame),):
        raise DataError(
            f"the oracle for {name!r} returned an array of shape {out.shape} for {len(frame)} rows; "
            f"an oracle returns one prediction per row, shape ({len(frame)},)"
        )
    return out


def _scorer(column: pd.Series) -> tuple[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    if _is_discrete(column):
        return "accuracy", lambda pred, truth: (pred == truth).astype(np.float64)
    return "mae", lambda pred, truth: np.abs(pred.astype(np.float64) - truth.astype(np.float64))


def _features(frame: pd.DataFrame, inputs: Sequence[str], labels: Mapping[str, list]) -> np.ndarray:
    """Oracle inputs as one float matrix: pixels flattened, discrete columns as the index of
    their label among the training labels ``labels``."""
    parts = []
    for c in inputs:
        if c not in frame.columns:
            raise DataError(f"the oracle reads column {c!r}, which the frame lacks")
        col = frame[c]
        if _is_image(col):
            parts.append(np.stack([np.asarray(v, dtype=np.float64).ravel() for v in col]))
        elif c in labels:
            codes = pd.Categorical(np.asarray(col, dtype=object), categories=labels[c]).codes
            parts.append(codes.astype(np.float64)[:, None])
        else:
            parts.append(col.to_numpy(np.float64)[:, None])
    return np.concatenate(parts, axis=1)


def _measure(measure: Callable[[np.ndarray], np.ndarray], frame: pd.DataFrame, image: str) -> np.ndarray:
    from ..variables import stack_images

    images = np.clip(stack_images(frame[image], image), 0.0, None)
    try:
        return measure(images)
    except DataError:  # some image is blank: measure one by one, NaN where blank
        out = np.full(len(images), np.nan)
        for j, img in enumerate(images):
            try:
                out[j] = measure(img[None])[0]
            except DataError:
                pass
        return out


def _stack(column: pd.Series) -> np.ndarray:
    return np.stack([np.asarray(v, dtype=np.float64) for v in column])


def _image_column(data: pd.DataFrame, image: str | None) -> str:
    images = [c for c in data.columns if _is_image(data[c])]
    if image is None:
        if len(images) != 1:
            raise DataError(
                f"minimality (CLD) compares images; the data have image columns {images}: "
                "pass image= (CLD does not apply to tabular models)")
        return images[0]
    if image not in images:
        raise DataError(f"{image!r} is not an image column of the data (image columns: {images})")
    return image


def _classifier(column: pd.Series, bins: int) -> Callable[[pd.Series], np.ndarray]:
    """The class of a value of ``column``: itself if discrete, else its quantile bin."""
    if _is_discrete(column):
        return lambda values: np.asarray(values)
    edges = np.unique(np.quantile(column.to_numpy(np.float64), np.linspace(0, 1, bins + 1)[1:-1]))
    return lambda values: np.searchsorted(edges, np.asarray(values, np.float64), side="right")


def _truth(truth: Truth, data: pd.DataFrame, do: Mapping[str, np.ndarray], attributes: Sequence[str]) -> pd.DataFrame:
    out = truth(data, do)
    if not isinstance(out, pd.DataFrame) or len(out) != len(data):
        raise DataError(f"truth(units, do) must return a DataFrame with one row per unit ({len(data)})")
    missing = [a for a in attributes if a not in out.columns]
    if missing:
        raise DataError(f"the true counterfactual lacks the oracle attribute(s) {missing}")
    return out.reset_index(drop=True).set_axis(data.index)
