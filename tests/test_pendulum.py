"""The pendulum generator: grid, split, the shadow geometry and exact counterfactual images."""

import numpy as np
import pytest

from deepscm.datasets.pendulum import (
    LABEL_RANGES, LABELS, PendulumGenerator, denormalise_labels, load_pendulum, measure_shadow,
    normalise_labels, pendulum_grid, shadow,
)
from deepscm.errors import ConfigError, DataError, GraphError


def test_grid_counts_and_split():
    grid = pendulum_grid()
    assert len(grid) == 84 * 87 == 7308
    train, test = load_pendulum("train", size=16), load_pendulum("test", size=16)
    assert (len(train), len(test)) == (5482, 1826)
    keys = lambda f: set(zip(f.pendulum_angle.round(9), f.light_angle.round(9)))  # noqa: E731
    assert keys(train).isdisjoint(keys(test)) and len(keys(train) | keys(test)) == 7308
    again = load_pendulum("test", size=16, seed=0)
    other = load_pendulum("test", size=16, seed=1)
    assert keys(again) == keys(test) and keys(other) != keys(test)
    assert train.image.iloc[0].shape == (16, 16) and train.image.iloc[0].dtype == np.float32
    # ranges quoted from the original generator (methods-next §6.3)
    assert LABEL_RANGES["shadow_position"] == pytest.approx((2.01, 19.61), abs=0.01)
    assert LABEL_RANGES["shadow_width"] == pytest.approx((3.0, 12.58), abs=0.01)
    assert LABEL_RANGES["sun_position"] == pytest.approx((0.90, 17.27), abs=0.01)


def test_hand_computed_shadow():
    # θ = π/10 (i = 20), φ = 3π/8 (j = 75): cot φ = √2 − 1
    cot = np.sqrt(2) - 1
    p0 = 10 - 11 * cot
    tip_x, tip_y = 10 + 9.5 * np.sin(np.pi / 10), 10.5 - 9.5 * np.cos(np.pi / 10)
    p1 = tip_x + (-0.5 - tip_y) * cot
    width, position = shadow(np.pi / 10, 3 * np.pi / 8)
    assert position == pytest.approx(8.782699, abs=1e-5) == pytest.approx((p0 + p1) / 2)
    assert width == pytest.approx(6.678096, abs=1e-5)
    labels = PendulumGenerator(32).labels(np.pi / 10, 3 * np.pi / 8)
    assert labels.sun_position[0] == pytest.approx(10 + 10 * cot)
    assert shadow(0.0, np.pi / 2)[0] == 3.0  # the width's floor


def test_measured_shadow_matches_labels():
    gen = PendulumGenerator(96)
    labels = gen.labels([0.0, 0.3, -0.4], [1.2, 1.8, 2.2])
    measured = measure_shadow(gen.render(labels))
    assert np.allclose(measured.shadow_position, labels.shadow_position, atol=0.05)
    assert np.allclose(measured.shadow_width, labels.shadow_width, atol=0.1)


def test_counterfactual_images_differ_exactly_where_they_should():
    gen = PendulumGenerator(48)
    factual = gen.frame(gen.labels([0.1, -0.3], [1.3, 2.0]))
    ground = np.arange(48) >= 48 * 21 / 22  # pixel rows with centre y < 0
    # do(θ) with both shadow edges from θ removed: only the rod and ball move
    cf = gen.counterfactual(factual, do={"pendulum_angle": 0.5},
                            without_edges=[("pendulum_angle", "shadow_width"), ("pendulum_angle", "shadow_position")])
    diff = np.abs(np.stack(cf.image) - np.stack(factual.image))
    assert diff[:, ground].max() == 0 and diff[:, ~ground].max() > 0.5
    # do(θ) alone moves the shadow; removing only θ -> position keeps it centred where it was
    moved = gen.counterfactual(factual, do={"pendulum_angle": 0.5})
    kept = gen.counterfactual(factual, do={"pendulum_angle": 0.5}, without_edges=[("pendulum_angle", "shadow_position")])
    assert not np.allclose(moved.shadow_position, factual.shadow_position)
    assert np.allclose(kept.shadow_position, factual.shadow_position)
    assert np.allclose(kept.shadow_width, moved.shadow_width)
    # do(sun) without the sun's shadow edges: the shadow and the rod are untouched
    sun = gen.counterfactual(factual, do={"sun_position": 12.0},
                             without_edges=[("sun_position", "shadow_width"), ("light_angle", "shadow_position")])
    diff = np.abs(np.stack(sun.image) - np.stack(factual.image))
    assert diff[:, 48 // 2:].max() == 0 and diff[:, :48 // 4].max() > 0.2
    # a reference value instead of the factual one
    ref = gen.counterfactual(factual, without_edges=[("pendulum_angle", "shadow_position")], reference=0.0, images=False)
    assert np.allclose(ref.shadow_position, shadow(0.0, factual.light_angle)[1])


def test_normalisation_round_trip():
    grid = pendulum_grid()
    u = normalise_labels(grid)
    assert u.min() == pytest.approx(-1) and u.max() == pytest.approx(1)
    assert np.allclose(denormalise_labels(u)[list(LABELS)], grid[list(LABELS)])


def test_bad_input():
    gen = PendulumGenerator(16)
    factual = gen.labels([0.1], [1.0])
    with pytest.raises(GraphError, match="not an edge"):
        gen.counterfactual(factual, without_edges=[("shadow_width", "shadow_position")])
    with pytest.raises(GraphError, match="cannot intervene"):
        gen.counterfactual(factual, do={"gravity": 1.0})
    with pytest.raises(DataError):
        gen.counterfactual(factual, do={"pendulum_angle": [1.0, 2.0]})
    with pytest.raises(DataError):
        gen.labels(0.0, 4.0)
    with pytest.raises(ConfigError):
        load_pendulum("validation")
    with pytest.raises(ConfigError):
        PendulumGenerator(8)
    with pytest.raises(DataError, match="lack"):
        gen.render(factual.drop(columns="shadow_width"))
    with pytest.raises(DataError, match="shape"):
        measure_shadow(np.zeros((2, 16, 20)))
