"""deepscm.fairness: DECAF edge sets, de-biased data with analytic independences, metrics on
hand-made inputs, and the bad-input errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

import deepscm as ds
from deepscm.datasets.fairness_scm import OUTCOME, SENSITIVE, credit_scm, load_credit
from deepscm.errors import ConfigError, DataError, GraphError, NotFittedError
from deepscm.fairness import (
    auroc,
    debiased_data,
    demographic_parity,
    fairness_edges,
    fit_classifier,
    ftu,
)

GRAPH = "s -> m; s -> y; m -> y; w -> y"


def linear_data(n: int, seed: int) -> pd.DataFrame:
    """s ~ Bernoulli(0.5), m := s + N(0,1), w := N(0,1), y := 0.8 s + 1.5 m + w + N(0,1)."""
    rng = np.random.default_rng(seed)
    s = rng.integers(0, 2, n)
    m = 1.0 * s + rng.normal(size=n)
    w = rng.normal(size=n)
    y = 0.8 * s + 1.5 * m + w + rng.normal(size=n)
    return pd.DataFrame({"s": s, "m": m, "w": w, "y": y})


@pytest.fixture(scope="module")
def linear_scm() -> ds.DeepSCM:
    return ds.DeepSCM(GRAPH, mechanisms="linear").fit(linear_data(2000, 0), epochs=2, progress=False, seed=0)


def ols(frame: pd.DataFrame, y: str, xs: list[str]) -> np.ndarray:
    design = np.column_stack([frame[x].to_numpy(float) for x in xs] + [np.ones(len(frame))])
    return np.linalg.lstsq(design, frame[y].to_numpy(float), rcond=None)[0]


# ---------------------------------------------------------------------- which edges
def test_edges_per_level_follow_decaf() -> None:
    assert fairness_edges(GRAPH, "s", "y", "ftu") == [("s", "y")]
    # DP: the last edge of every directed path s -> ... -> y; w (independent of s) is kept
    assert sorted(fairness_edges(GRAPH, "s", "y", "dp")) == [("m", "y"), ("s", "y")]
    # CF with m admissible: the path through m is kept
    assert fairness_edges(GRAPH, "s", "y", "cf", admissible=["m"]) == [("s", "y")]
    # a confounder c of s and y also carries dependence, so DP cuts c -> y as well
    confounded = "c -> s; c -> y; s -> y; w -> y"
    assert sorted(fairness_edges(confounded, "s", "y", "dp")) == [("c", "y"), ("s", "y")]


# ---------------------------------------------------------------------- generated data
def test_ftu_data_outcome_ignores_sensitive_given_the_rest(linear_scm: ds.DeepSCM) -> None:
    base = linear_scm.sample(20_000, seed=1)
    fair = debiased_data(linear_scm, "s", "y", level="ftu", n=20_000, seed=1)
    assert fair.attrs["removed_edges"] == [("s", "y")]
    # y = 0.8 s + 1.5 m + w + e: the coefficient of s given (m, w) is 0.8 in the model and 0
    # after FTU (standard error ~0.016 at n = 20,000; the bound is ~4 of them)
    assert ols(base, "y", ["s", "m", "w"])[0] > 0.6
    coef = ols(fair, "y", ["s", "m", "w"])
    assert abs(coef[0]) < 0.06
    assert abs(coef[1] - 1.5) < 0.05  # the mediated path still works
    # only y is regenerated: with the same seed every other column is the unedited model's
    pd.testing.assert_frame_equal(fair[["s", "m", "w"]], base[["s", "m", "w"]])


def test_dp_data_outcome_independent_of_sensitive(linear_scm: ds.DeepSCM) -> None:
    base = linear_scm.sample(20_000, seed=2)
    fair = debiased_data(linear_scm, "s", "y", level="dp", n=20_000, seed=2)
    # corr(y, s) is ~0.5 in the model and 0 after DP (standard error ~0.007)
    assert np.corrcoef(base.s, base.y)[0, 1] > 0.4
    assert abs(np.corrcoef(fair.s, fair.y)[0, 1]) < 0.03
    # w -> y was kept: y still depends on w with slope 1
    assert abs(ols(fair, "y", ["w"])[0] - 1.0) < 0.05
    same = debiased_data(linear_scm, "s", "y", level="dp", n=20_000, seed=2)
    pd.testing.assert_frame_equal(fair, same)


def test_credit_scm_is_unfair_and_has_the_documented_graph() -> None:
    data = load_credit(4000, seed=0)
    assert set(data[SENSITIVE].unique()) == {0, 1} and set(data[OUTCOME].unique()) == {0, 1}
    g = ds.CausalGraph(credit_scm().graph)
    assert sorted(g.parents(OUTCOME)) == ["age", "history", "income", "sex"]
    assert sorted(fairness_edges(g, SENSITIVE, OUTCOME, "dp")) == [("income", "credit"), ("sex", "credit")]
    rate = data.groupby(SENSITIVE)[OUTCOME].mean()
    assert rate[1] - rate[0] > 0.3


# ---------------------------------------------------------------------- metrics by hand
class _Fixed(BaseEstimator, ClassifierMixin):
    """p(y=1 | s, m) = sigmoid(ln 3 · s + m), whatever it is fitted on."""

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        p = 1.0 / (1.0 + np.exp(-(np.log(3.0) * X[:, 0] + X[:, 1])))
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def test_metrics_equal_hand_computed_values() -> None:
    data = pd.DataFrame({"s": [0, 1], "m": [0.0, np.log(3.0)], "y": [0, 1]})
    clf = fit_classifier(data, "y", classifier=_Fixed())
    # row 1: sigmoid(ln3) - sigmoid(0) = 0.25; row 2: sigmoid(2 ln3) - sigmoid(ln3) = 0.9 - 0.75
    assert ftu(clf, data, "s") == pytest.approx((0.25 + 0.15) / 2)
    s = pd.DataFrame({"s": [1, 1, 1, 0, 0, 0]})
    assert demographic_parity(np.array([1, 1, 0, 0, 1, 0]), s, "s") == pytest.approx(1 / 3)
    # the classifier predicts 1 iff ln3 s + m >= 0: rows → 1, 1, 0, 1; P(1|s=1) - P(1|s=0) = 0.5
    frame = pd.DataFrame({"s": [1, 1, 0, 0], "m": [0.0, 0.0, -2.0, 0.0], "y": [1, 0, 0, 1]})
    assert demographic_parity(clf, frame, "s") == pytest.approx(0.5)
    # AUROC: scores 0.75, 0.75, 0.119, 0.5 for labels 1, 0, 0, 1; positive-negative pairs
    # (0.75, 0.75) tie ½, (0.75, 0.119) 1, (0.5, 0.75) 0, (0.5, 0.119) 1 → 2.5 / 4
    assert auroc(clf, frame, "y") == pytest.approx(0.625)


# ---------------------------------------------------------------------- bad input
def test_bad_input_is_refused_clearly(linear_scm: ds.DeepSCM) -> None:
    with pytest.raises(GraphError, match="sensitive attribute 'sex' is not a node"):
        debiased_data(linear_scm, "sex", "y")
    with pytest.raises(GraphError, match="outcome 'income' is not a node"):
        debiased_data(linear_scm, "s", "income")
    with pytest.raises(GraphError, match="no direct edge w -> m"):
        fairness_edges(GRAPH, "w", "m", "ftu")
    with pytest.raises(GraphError, match="no directed path w"):
        fairness_edges(GRAPH, "w", "m", "dp")
    with pytest.raises(GraphError, match="admissible"):
        fairness_edges(GRAPH, "s", "y", "cf", admissible=["education"])
    with pytest.raises(GraphError, match="already holds"):
        fairness_edges("s -> m; m -> y", "s", "y", "cf", admissible=["m"])
    with pytest.raises(ConfigError, match="unknown fairness level"):
        fairness_edges(GRAPH, "s", "y", "parity")
    with pytest.raises(ConfigError, match="admissible"):
        fairness_edges(GRAPH, "s", "y", "cf")
    with pytest.raises(NotFittedError):
        debiased_data(ds.DeepSCM(GRAPH), "s", "y")
    with pytest.raises(DataError, match="hard predictions"):
        demographic_parity(np.array([0.2, 0.9]), pd.DataFrame({"s": [0, 1]}), "s")
    with pytest.raises(DataError, match="binary"):
        demographic_parity(np.array([0, 1, 1]), pd.DataFrame({"s": [0, 1, 2]}), "s")
