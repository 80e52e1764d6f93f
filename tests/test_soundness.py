"""deepscm.evaluation.soundness: exact abduction composes and reverses to float precision, a
model with known counterfactual noise scores its analytic values, a model that changes
nothing composes perfectly and is not effective, and bad oracles are refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import deepscm as ds
from deepscm.errors import ConfigError, DataError, NotFittedError
from deepscm.evaluation.soundness import composition, effectiveness, reversibility, soundness

GRAPH = "x1 -> x2; x2 -> x3; x1 -> x3"
ROOT_2_OVER_PI = np.sqrt(2 / np.pi)  # E|N(0, 1)|
# test rows slightly beyond the training range are expected here
pytestmark = pytest.mark.filterwarnings("ignore::deepscm.errors.ExtrapolationWarning")


def linear_data(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = 2.0 * x1 + 0.5 * rng.normal(size=n)
    x3 = -x2 + 0.5 * x1 + 0.5 * rng.normal(size=n)
    return pd.DataFrame({"x1": x1, "x2": x2, "x3": x3})


@pytest.fixture(scope="module")
def exact() -> ds.DeepSCM:
    return ds.DeepSCM(GRAPH, mechanisms="linear").fit(linear_data(2000, 0), epochs=1, progress=False)


class Noisy:
    """Wraps a model; every counterfactual adds N(0, σ²) to each recomputed column (a model
    whose abduction loses information, like a VAE's posterior draw)."""

    def __init__(self, model: ds.DeepSCM, sigma: float) -> None:
        self.model, self.sigma, self.graph = model, sigma, model.graph

    def counterfactual(self, units: pd.DataFrame, do: dict, seed: int | None = None) -> pd.DataFrame:
        out = self.model.counterfactual(units, do=do, seed=seed)
        rng = np.random.default_rng(seed)
        for col in self.graph.descendants(set(do), include_self=False):
            out[col] = out[col] + self.sigma * rng.normal(size=len(out))
        return out


class DoNothing:
    """A model that sets the intervened column and changes nothing else."""

    def __init__(self, graph: str) -> None:
        self.graph = graph

    def counterfactual(self, units: pd.DataFrame, do: dict) -> pd.DataFrame:
        out = units.copy()
        for k, v in do.items():
            out[k] = v
        return out


def _value(table: pd.DataFrame, metric: str, step: int, column: str, do: str | None = None) -> float:
    rows = table[(table.metric == metric) & (table.step == step) & (table.column == column)]
    if do is not None:
        rows = rows[rows["do"] == do]
    assert len(rows) == 1, rows
    return float(rows["mean"].iloc[0])


def test_exact_abduction_composes_and_reverses(exact: ds.DeepSCM) -> None:
    data = linear_data(500, 1)
    table = soundness(exact, data, seed=0)
    comp, rev = table[table.metric == "composition"], table[table.metric == "reversibility"]
    assert set(comp.step) == {1, 10} and set(comp.column) == {"x2", "x3"}
    assert set(rev.step) == {2, 10}
    # float32 round-off only: x2, x3 have sd ~2 and ~0.8; 1e-4 relative is 100x round-off
    # and far below the noisy model's 0.1 sd below
    assert (comp["relative"] < 1e-4).all() and (rev["relative"] < 1e-4).all()


def test_noisy_model_scores_its_analytic_values(exact: ds.DeepSCM) -> None:
    data = linear_data(4000, 2)
    sigma = 0.1
    noisy = Noisy(exact, sigma)
    comp = composition(noisy, data, seed=0)
    # x2 after m null interventions is x2 + a sum of m N(0, σ²): E|·| = σ √m √(2/π)
    for m in (1, 10):
        assert _value(comp, "composition", m, "x2") == pytest.approx(sigma * np.sqrt(m) * ROOT_2_OVER_PI, rel=0.06)
    rev = reversibility(noisy, data, cycles=[1], seed=0)
    # to the counterfactual and back: two counterfactuals, two noise draws
    assert _value(rev, "reversibility", 2, "x2") == pytest.approx(sigma * np.sqrt(2) * ROOT_2_OVER_PI, rel=0.06)
    assert _value(comp, "composition", 10, "x3") > _value(composition(exact, data), "composition", 10, "x3") + 0.1


def test_composition_effectiveness_trade_off(exact: ds.DeepSCM) -> None:
    train, data = linear_data(3000, 3), linear_data(1000, 4)
    good = effectiveness(exact, data, train=train, seed=0)
    lazy_model = DoNothing(GRAPH)
    lazy = effectiveness(lazy_model, data, train=train, seed=0)
    row_good, row_lazy = good.iloc[0], lazy.iloc[0]
    assert (row_good["do"], row_good["column"], row_good["measure"]) == ("x1", "x1", "mae")
    # the exact model's counterfactuals are distributed like real data: the oracle (x1 from
    # x2, x3; floor ~0.2) reads them as well as real rows, far better than unchanged rows
    assert row_good["mean"] == pytest.approx(row_good["oracle_floor"], rel=0.2)
    assert row_good["mean"] < 0.3 * row_good["unchanged"]
    # the do-nothing model: perfect composition, and exactly the "unchanged" score
    assert (composition(lazy_model, data)["mean"] == 0).all()
    assert row_lazy["mean"] == pytest.approx(row_lazy["unchanged"])


def test_image_columns_are_compared_in_pixel_units() -> None:
    rng = np.random.default_rng(0)
    n = 200
    t = rng.normal(size=n)
    images = [np.full((4, 4), 100.0 + 10 * v) + rng.normal(size=(4, 4)) for v in t]
    data = pd.DataFrame({"t": t, "x": images})

    class Shifter:
        """x := 10 t + u per pixel (exact), plus N(0, 2²) per pixel on each counterfactual."""

        graph = "t -> x"

        def counterfactual(self, units, do, seed=None):
            out = units.copy()
            noise = np.random.default_rng(seed).normal(0.0, 2.0, size=(len(units), 4, 4))
            out["x"] = [x + 10 * (new - old) + e for x, new, old, e in zip(units.x, do["t"], units.t, noise)]
            out["t"] = do["t"]
            return out

    comp = composition(Shifter(), data, steps=[1], seed=0)
    assert comp["measure"].tolist() == ["l1 (pixels)"]
    assert comp["mean"].iloc[0] == pytest.approx(2.0 * ROOT_2_OVER_PI, rel=0.05)
    oracle = {"t": lambda f: np.array([(x.mean() - 100.0) / 10 for x in f.x])}
    eff = effectiveness(Shifter(), data, oracles=oracle, seed=0)
    # oracle error: the mean of 16 pixels of N(0, 1 + 2²) noise, / 10: E|·| = √(5/16) / 10 √(2/π)
    assert eff["mean"].iloc[0] == pytest.approx(np.sqrt(5 / 16) / 10 * ROOT_2_OVER_PI, rel=0.15)
    assert eff["unchanged"].iloc[0] > 0.5  # |t' - t| for t' a shuffled t


def test_bad_input_is_refused(exact: ds.DeepSCM) -> None:
    data = linear_data(50, 5)
    with pytest.raises(DataError, match=r"shape \(50, 3\)"):
        effectiveness(exact, data, oracles={"x1": lambda f: np.zeros((len(f), 3))})
    with pytest.raises(DataError, match="one prediction per row"):
        effectiveness(exact, data, oracles={"x1": lambda f: np.zeros(3)})
    with pytest.raises(DataError, match="not a column"):
        effectiveness(exact, data, oracles={"age": lambda f: np.zeros(len(f))})
    with pytest.raises(ConfigError, match="callable"):
        effectiveness(exact, data, oracles={"x1": 3.0})
    with pytest.raises(ds.GraphError):
        composition(exact, data, do_nodes=["x9"])
    with pytest.raises(NotFittedError):
        composition(ds.DeepSCM(GRAPH), data)
    with pytest.raises(ConfigError, match="counterfactual"):
        composition(object(), data)
    with pytest.raises(DataError, match="one row per unit"):
        composition(exact, data, n_samples=2)
