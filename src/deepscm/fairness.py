"""Fair synthetic data from a fitted causal model, and the fairness of downstream classifiers.

DECAF (van Breugel, Kyono, Berrevoets & van der Schaar, NeurIPS 2021, §4) trains one
generator per node on the biased data and de-biases *at generation time*, with no retraining:
the edges that carry the unwanted influence of the sensitive attribute ``A`` into the outcome
``Y`` are removed, and the child of each removed edge reads an independent draw of that parent
from its observational distribution (DECAF's reference code permutes the parent column across
the batch). :func:`debiased_data` does it with either model:

- a fitted :class:`~deepscm.DeepSCM` (any per-node mechanisms, trained per mechanism):
  :meth:`deepscm.DeepSCM.without_edges` with its default
  :class:`~deepscm.scm.engine.Independent` reference, then sampling;
- a fitted :class:`deepscm.models.decaf.DECAF` (DECAF itself: per-node generators trained
  against one critic on the joint): ``DECAF.sample(n, seed, without_edges=edges)``.

Which edges (:func:`fairness_edges`) — as in DECAF's Adult protocol, only edges *into the
outcome* are removed, so every feature keeps its observational distribution:

- ``"ftu"`` (fairness through unawareness): the direct edge ``A → Y``;
- ``"dp"`` (demographic parity, ``Ŷ ⫫ A``): every edge ``P → Y`` from a parent that is
  d-connected to ``A`` (``A`` itself and, for a root ``A``, every parent of ``Y`` that
  descends from ``A`` — the last edge of every directed path ``A → … → Y``; a parent sharing
  an ancestor with ``A`` is cut too, which DECAF's root-``A`` graphs never need);
- ``"cf"`` (conditional fairness, ``Ŷ ⫫ A | R``): every edge ``P → Y`` with ``P`` outside the
  admissible set ``R`` and d-connected to ``A`` given ``R``; paths through ``R`` are kept.

In the generated data ``Y = f_Y(K, P', u_Y)`` with ``K`` the kept parents and ``P'`` the
independent draws, so the level's independence holds by construction (``K ⫫ A`` given ``R``
in the graph, ``P'`` and ``u_Y`` independent of the unit).

Metrics on a downstream classifier (DECAF §5; Kusner et al. 2017 for FTU):

- :func:`ftu` ``= mean_i |p̂(Y=1 | x_i, A=1) − p̂(Y=1 | x_i, A=0)|`` (flip ``A``, rest
  fixed; an upper bound of DECAF's ``|mean p̂(A:=1) − mean p̂(A:=0)|``);
- :func:`demographic_parity` ``= |P(Ŷ=1 | A=1) − P(Ŷ=1 | A=0)|`` on hard predictions;
- :func:`auroc` of a classifier fitted by :func:`fit_classifier` (utility: train on generated
  data, test on real data), and :func:`fairness_report` with all three.

Example:
    >>> scm = DeepSCM(load_credit().graph).fit(real)                            # doctest: +SKIP
    >>> fair = debiased_data(scm, "sex", "credit", level="dp", n=20_000, seed=0)  # doctest: +SKIP
    >>> clf = fit_classifier(fair, "credit")                                     # doctest: +SKIP
    >>> fairness_report(clf, real_test, "credit", "sex")                         # doctest: +SKIP
    >>> decaf = DECAF(load_credit().graph).fit(real)                             # doctest: +SKIP
    >>> fair = debiased_data(decaf, "sex", "credit", level="ftu", seed=0)         # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError, DataError, GraphError, NotFittedError
from .graph import CausalGraph
from .models.decaf import DECAF
from .scm.model import DeepSCM

__all__ = [
    "LEVELS",
    "auroc",
    "debiased_data",
    "demographic_parity",
    "fairness_edges",
    "fairness_report",
    "fit_classifier",
    "ftu",
]

#: the fairness levels :func:`fairness_edges` knows, with what each guarantees.
LEVELS: dict[str, str] = {
    "ftu": "fairness through unawareness: no direct edge sensitive -> outcome",
    "dp": "demographic parity: outcome independent of the sensitive attribute",
    "cf": "conditional fairness: outcome independent of the sensitive attribute given the admissible set",
}


def fairness_edges(
    graph: CausalGraph | str, sensitive: str, outcome: str, level: str = "ftu",
    admissible: Iterable[str] | None = None,
) -> list[tuple[str, str]]:
    """The edges ``(parent, outcome)`` that fairness ``level`` removes (module docstring).

    Raises:
        GraphError: a node not in the graph, or a level with nothing to remove (no direct
            edge for ``"ftu"``, no path from ``sensitive`` to ``outcome`` for ``"dp"``/``"cf"``).
        ConfigError: an unknown level, or ``admissible`` missing for ``"cf"`` / given otherwise.
    """
    graph = graph if isinstance(graph, CausalGraph) else CausalGraph(graph)
    for role, node in (("sensitive attribute", sensitive), ("outcome", outcome)):
        if node not in graph:
            raise GraphError(f"the {role} {node!r} is not a node of the graph; its nodes are {graph.nodes}")
    if sensitive == outcome:
        raise GraphError(f"the sensitive attribute and the outcome are the same node {outcome!r}")
    if level not in LEVELS:
        raise ConfigError(f"unknown fairness level {level!r}; choose one of {sorted(LEVELS)}")
    if (level == "cf") != (admissible is not None):
        raise ConfigError(
            "conditional fairness needs the admissible set: level='cf', admissible=[...]"
            if level == "cf" else
            f"admissible= is only used by level='cf'; level={level!r} takes none"
        )
    parents = graph.parents(outcome)
    if level == "ftu":
        if sensitive not in parents:
            raise GraphError(
                f"there is no direct edge {sensitive} -> {outcome}, so FTU already holds; for the "
                f"indirect paths use level='dp' or level='cf'"
            )
        return [(sensitive, outcome)]
    if sensitive not in graph.ancestors(outcome):
        raise GraphError(
            f"there is no directed path {sensitive} -> ... -> {outcome} in the graph {graph}; "
            f"no edge carries {sensitive!r} into {outcome!r}, so there is nothing to remove"
        )
    given: set[str] = set()
    if level == "cf":
        given = set(admissible)
        graph.check_nodes(given, "admissible")
        bad = given & (graph.descendants(outcome) | {sensitive})
        if bad:
            raise GraphError(
                f"admissible variables must be neither the sensitive attribute nor the outcome or "
                f"its descendants; remove {sorted(bad)}"
            )
    edges = [
        (p, outcome) for p in parents
        if p not in given and (p == sensitive or not graph.d_separated({sensitive}, {p}, given))
    ]
    if not edges:
        raise GraphError(
            f"every path from {sensitive!r} into {outcome!r} passes the admissible set "
            f"{sorted(given)}: conditional fairness already holds and no edge is removed"
        )
    return edges


def debiased_data(
    model: Any, sensitive: str, outcome: str, level: str = "ftu",
    admissible: Iterable[str] | None = None, n: int = 10_000, seed: int | None = 0,
) -> pd.DataFrame:
    """``n`` rows from ``model`` with the edges of :func:`fairness_edges` removed, each removed
    parent drawn independently from its observational distribution (DECAF inference).

    ``model`` is a fitted :class:`~deepscm.DeepSCM` or :class:`deepscm.models.decaf.DECAF`.
    ``result.attrs["removed_edges"]`` lists the edges removed. Same ``seed`` → same rows.
    """
    if not isinstance(model, (DeepSCM, DECAF)):
        raise ConfigError(
            f"debiased_data takes a fitted deepscm.DeepSCM or deepscm.models.decaf.DECAF, got "
            f"{type(model).__name__}"
        )
    if not model.is_fitted:
        raise NotFittedError("debiased_data needs a fitted model: call model.fit(data) first")
    edges = fairness_edges(model.graph, sensitive, outcome, level, admissible)
    if isinstance(model, DECAF):
        frame = model.sample(n, seed=seed, without_edges=edges)
    else:
        frame = model.without_edges(edges).sample(n, seed=seed)
    frame.attrs["removed_edges"] = edges
    frame.attrs["level"] = level
    return frame


# ---------------------------------------------------------------------- downstream metrics
def fit_classifier(
    data: pd.DataFrame, outcome: str, features: Sequence[str] | None = None,
    classifier: Any = None, seed: int = 0,
) -> Any:
    """A copy of ``classifier`` (default: standardised logistic regression, DECAF's "LR"
    downstream model; pass e.g. ``MLPClassifier()`` for its "MLP" one) fitted on
    ``data[features] → data[outcome]`` (default features: every other column). Returns the
    fitted estimator; it remembers its features."""
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _require_columns(data, [outcome], "the training data")
    features = [c for c in data.columns if c != outcome] if features is None else list(features)
    if outcome in features:
        raise DataError(f"the outcome {outcome!r} cannot also be a feature")
    y = _binary(data[outcome], outcome)
    if classifier is None:
        classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    else:
        classifier = clone(classifier)
        if "random_state" in classifier.get_params():
            classifier.set_params(random_state=seed)
    classifier.fit(_design(data, features), y)
    classifier.deepscm_features_ = features
    return classifier


def auroc(classifier: Any, data: pd.DataFrame, outcome: str) -> float:
    """Area under the ROC curve of ``classifier``'s probability of the positive class (the
    second label of ``outcome``) on ``data``."""
    from sklearn.metrics import roc_auc_score

    _require_columns(data, [outcome], "the test data")
    y = _binary(data[outcome], outcome)
    if len(np.unique(y)) < 2:
        raise DataError(f"AUROC needs both values of {outcome!r} in the test data")
    return float(roc_auc_score(y, _proba(classifier, data)))


def ftu(classifier: Any, data: pd.DataFrame, sensitive: str) -> float:
    """Fairness through unawareness: ``mean_i |p̂(x_i, A=a1) − p̂(x_i, A=a0)|``, the mean
    change of the predicted probability when the binary ``sensitive`` column is flipped with
    every other column fixed (0 for a classifier that ignores ``A``)."""
    _require_columns(data, [sensitive], "the data")
    low, high = _two_values(data[sensitive], sensitive)
    frames = []
    for value in (low, high):
        flipped = data.copy()
        flipped[sensitive] = pd.Series([value] * len(data), index=data.index, dtype=data[sensitive].dtype)
        frames.append(_proba(classifier, flipped))
    return float(np.mean(np.abs(frames[1] - frames[0])))


def demographic_parity(
    classifier_or_predictions: Any, data: pd.DataFrame, sensitive: str
) -> float:
    """``|P(Ŷ=1 | A=a1) − P(Ŷ=1 | A=a0)|`` for the binary ``sensitive`` column of ``data``.

    Give a fitted classifier (its hard predictions ``predict`` are used, the positive class
    being its second class) or hard predictions, one 0/1 (or boolean) value per row."""
    _require_columns(data, [sensitive], "the data")
    low, high = _two_values(data[sensitive], sensitive)
    if hasattr(classifier_or_predictions, "predict"):
        clf = classifier_or_predictions
        labels = np.asarray(clf.predict(_design(data, _features(clf, data))))
        yhat = (labels == clf.classes_[-1]).astype(float)
    else:
        yhat = np.asarray(classifier_or_predictions)
        if yhat.shape != (len(data),):
            raise DataError(
                f"predictions have shape {yhat.shape}; give one hard prediction per row of data "
                f"({len(data)},)"
            )
        if not np.isin(yhat.astype(float), (0.0, 1.0)).all():
            raise DataError(
                "demographic parity takes hard predictions (0/1); threshold probabilities first, "
                "e.g. (p >= 0.5)"
            )
        yhat = yhat.astype(float)
    a = data[sensitive].to_numpy()
    return float(abs(yhat[a == high].mean() - yhat[a == low].mean()))


def fairness_report(classifier: Any, data: pd.DataFrame, outcome: str, sensitive: str) -> pd.Series:
    """AUROC, FTU and demographic parity of ``classifier`` on (real) ``data``."""
    return pd.Series({
        "auroc": auroc(classifier, data, outcome),
        "ftu": ftu(classifier, data, sensitive),
        "dp": demographic_parity(classifier, data, sensitive),
    })


# ---------------------------------------------------------------------- internals
def _require_columns(data: Any, columns: Sequence[str], what: str) -> None:
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"{what} must be a pandas DataFrame, got {type(data).__name__}")
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise DataError(f"{what} lacks the column(s) {missing}; it has {list(data.columns)}")


def _two_values(column: pd.Series, name: str) -> tuple[Any, Any]:
    values = sorted(pd.unique(column.dropna()), key=lambda v: (str(type(v)), v))
    if len(values) != 2:
        raise DataError(
            f"the sensitive attribute {name!r} must be binary with both values present; found "
            f"{len(values)} value(s) {values[:5]}"
        )
    return values[0], values[1]


def _binary(column: pd.Series, name: str) -> np.ndarray:
    values = pd.unique(column.dropna())
    if len(values) > 2 or column.isna().any():
        raise DataError(f"the outcome {name!r} must be binary without missing values; found {values[:5]}")
    return column.to_numpy()


def _design(data: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """Feature columns as one float matrix (binary / numeric categories as numbers)."""
    _require_columns(data, features, "the data")
    cols = []
    for c in features:
        col = data[c]
        if isinstance(col.dtype, pd.CategoricalDtype):
            col = col.astype(col.cat.categories.dtype)
        try:
            cols.append(col.to_numpy(dtype=np.float64))
        except (TypeError, ValueError):
            raise DataError(
                f"feature {c!r} is not numeric; encode it as numbers (e.g. one-hot) first"
            ) from None
    return np.column_stack(cols)


def _features(classifier: Any, data: pd.DataFrame) -> list[str]:
    features = getattr(classifier, "deepscm_features_", None)
    if features is None:
        raise DataError("fit the classifier with deepscm.fairness.fit_classifier so its features are known")
    return list(features)


def _proba(classifier: Any, data: pd.DataFrame) -> np.ndarray:
    """Probability of the positive (second) class."""
    return np.asarray(classifier.predict_proba(_design(data, _features(classifier, data))))[:, -1]
