"""deepscm.evaluation.soundness: exact abduction composes and reverses to float precision, a
model with known counterfactual noise scores its analytic values, a model that changes
nothing composes perfectly and is not effective, and bad oracles are refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import deepscm as ds
from deepscm.errors import ConfigError, DataError, NotFittedError
from deepscm.evaluation.soundness import (
    composition,
    effectiveness,
    effectiveness_index,
    minimality,
    reversibility,
    soundness,
)

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


# ---------------------------------------------------------------------- effectiveness index
def binary_data(n: int, seed: int) -> pd.DataFrame:
    """b ~ Bernoulli(½), y = 3 b + u with u ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    b = rng.integers(0, 2, size=n)
    return pd.DataFrame({"b": b, "y": 3.0 * b + rng.normal(size=n)})


class BinaryTruth:
    """The true SCM of :func:`binary_data`: exact abduction u = y − 3b."""

    graph = "b -> y"

    def counterfactual(self, units: pd.DataFrame, do: dict) -> pd.DataFrame:
        out = units.copy()
        out["b"] = do["b"]
        out["y"] = units["y"] + 3.0 * (np.asarray(do["b"]) - units["b"].to_numpy())
        return out


def test_effectiveness_index_for_mae_and_accuracy() -> None:
    assert effectiveness_index("mae", 0.4, 0.2, 1.0) == pytest.approx(0.25)
    # accuracy: higher is better, the unchanged rows score below the floor
    assert effectiveness_index("accuracy", 0.8, 0.9, 0.1) == pytest.approx(0.125)
    assert effectiveness_index("accuracy", 0.1, 0.9, 0.1) == pytest.approx(1.0)
    assert np.isnan(effectiveness_index("accuracy", 0.7, 0.7, 0.7))  # the attribute does not move
    assert np.isnan(effectiveness_index("mae", 0.3, 0.2, 0.2))
    with pytest.raises(ConfigError, match="measure"):
        effectiveness_index("auroc", 0.5, 0.5, 0.5)


def test_accuracy_rows_get_an_index() -> None:
    data = binary_data(4000, 0)
    oracle = {"b": lambda f: (f["y"].to_numpy() > 1.5).astype(int)}
    true = effectiveness(BinaryTruth(), data, oracles=oracle, seed=0).iloc[0]
    lazy = effectiveness(DoNothing("b -> y"), data, oracles=oracle, seed=0).iloc[0]
    assert true["measure"] == "accuracy"
    # floor P(u < 1.5) = Φ(1.5) = 0.933; flipping a binary b turns every hit into a miss
    assert true["oracle_floor"] == pytest.approx(0.9332, abs=0.015)
    assert true["unchanged"] == pytest.approx(1.0 - true["oracle_floor"])
    assert lazy["index"] == pytest.approx(1.0)  # ignores the intervention
    assert abs(true["index"]) < 0.05  # the true SCM: as effective as real data


def test_truth_replaces_the_models_own_labels() -> None:
    data = binary_data(500, 1)
    oracle = {"y": lambda f: f["y"].to_numpy()}
    # a model that leaves y alone agrees with itself ...
    own = effectiveness(DoNothing("b -> y"), data, oracles=oracle, seed=0).iloc[0]
    assert own["mean"] == 0.0
    # ... but the true counterfactual y' = y ± 3 is 3 away from it
    truth = lambda units, do: BinaryTruth().counterfactual(units, do)  # noqa: E731
    vs_truth = effectiveness(DoNothing("b -> y"), data, oracles=oracle, seed=0, truth=truth).iloc[0]
    assert vs_truth["mean"] == pytest.approx(3.0)
    assert vs_truth["index"] == pytest.approx(1.0)


# ---------------------------------------------------------------------- minimality (CLD)
def _identity_embedding(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """μ = the pixels, σ = 1: KL(q(a) ‖ q(b)) = ½‖a − b‖²."""
    flat = np.asarray(images, float).reshape(len(images), -1)
    return flat, np.ones_like(flat)


class Shift:
    """Images 5 t + noise (2 × 2); the counterfactual adds ``gain · 5 (t' − t)`` per pixel."""

    graph = "t -> x"

    def __init__(self, gain: float) -> None:
        self.gain = gain

    def counterfactual(self, units: pd.DataFrame, do: dict) -> pd.DataFrame:
        out = units.copy()
        delta = np.asarray(do["t"], float) - units["t"].to_numpy(float)
        out["x"] = [x + self.gain * 5.0 * d for x, d in zip(units["x"], delta)]
        out["t"] = do["t"]
        return out


def image_data(n: int, seed: int, discrete: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 2, size=n) if discrete else rng.uniform(0, 2, size=n)
    return pd.DataFrame({"t": t, "x": [5.0 * v + 0.3 * rng.normal(size=(2, 2)) for v in t]})


def test_minimality_known_ends_and_a_good_model() -> None:
    data, reference = image_data(200, 0), image_data(400, 1)
    unchanged = minimality(Shift(0.0), data, _identity_embedding, reference=reference).iloc[0]
    # x̃ = x: div 0, no target-class image at 0, every factual-class image at ≥ 0
    assert unchanged["mean"] == pytest.approx(np.log(1 + np.e)) and unchanged["mean"] == unchanged["unchanged"]
    far = minimality(Shift(10.0), data, _identity_embedding, reference=reference).iloc[0]
    # x̃ beyond every reference image: P(S_CF ≤ div) = 1, P(S_F ≥ div) = 0
    assert far["mean"] == pytest.approx(np.log(np.e + 1)) and far["p_cf"] == 1.0 and far["p_f"] == 0.0
    good = minimality(Shift(1.0), data, _identity_embedding, reference=reference).iloc[0]
    # x̃ a target-class image with the unit's own noise: about half the target-class images
    # are farther, no factual-class image is as far
    assert good["p_f"] == 0.0 and 0.3 < good["p_cf"] < 0.7
    assert good["best"] < good["mean"] < unchanged["mean"] - 0.2
    assert (good["metric"], good["do"], good["column"], good["measure"]) == ("minimality", "t", "x", "cld")


def test_minimality_bins_a_continuous_parent_and_refuses_tabular_data() -> None:
    data = image_data(100, 2, discrete=False)
    table = minimality(Shift(1.0), data, _identity_embedding, bins=2, seed=0)
    assert table["n"].iloc[0] == 100 and np.isfinite(table["mean"].iloc[0])
    with pytest.raises(DataError, match="tabular"):
        minimality(DoNothing("b -> y"), binary_data(50, 0), _identity_embedding)
    with pytest.raises(ConfigError, match="bins"):
        minimality(Shift(1.0), data, _identity_embedding, bins=1)


def test_pendulum_oracles_read_the_labels_off_the_images() -> None:
    from deepscm.datasets.pendulum import PendulumGenerator, pendulum_grid
    from deepscm.evaluation.soundness import pendulum_oracles

    gen = PendulumGenerator(size=32)
    frame = gen.frame(pendulum_grid().sample(40, random_state=0))
    oracles = pendulum_oracles("image")
    # θ from the rod/ball centroid, x_sun from the sun's; canvas 20 units wide, 0.625 per pixel
    for name, tol in (("pendulum_angle", 0.01), ("sun_position", 1.0), ("shadow_position", 0.1)):
        err = np.abs(oracles[name](frame) - frame[name].to_numpy())
        assert err.max() < tol, (name, err.max())
    # a sun (radius 3) inside the canvas is read to a fraction of a pixel; one cut by the
    # edge reads towards the centre
    inside = (frame["sun_position"] - 3 > 0) & (frame["sun_position"] + 3 < 20)
    assert inside.sum() > 20
    err = np.abs(oracles["sun_position"](frame) - frame["sun_position"].to_numpy())[inside.to_numpy()]
    assert err.max() < 0.3
    blank = pd.DataFrame({"image": [np.ones((32, 32), np.float32)]})
    assert np.isnan(oracles["pendulum_angle"](blank)).all() and np.isnan(oracles["sun_position"](blank)).all()
