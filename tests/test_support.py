"""The joint-support check of each node's parents (deepscm.scm.support)."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import deepscm as ds
from deepscm.scm.support import FACTOR, ParentSupport, fit_support


def _curve(n: int, seed: int) -> np.ndarray:
    """Points near the parabola ``b = a²`` (noise sd 0.1)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    return np.stack([a, a**2 + 0.1 * rng.normal(size=n)], axis=1)


def test_flags_a_combination_inside_both_marginal_ranges_but_off_the_joint_support():
    support = fit_support(torch.tensor(_curve(4000, 0)), seed=0)
    fresh = _curve(4000, 1)
    assert support.outside(fresh).mean() < 0.01  # held-out rows of the same distribution
    on_curve = np.array([[0.5, 0.25], [-1.0, 1.0], [1.5, 2.25]])
    # each coordinate well inside its own training range, but far from b = a²
    off_curve = np.array([[0.0, 2.0], [0.5, 2.5], [-1.5, 0.2]])
    assert not support.outside(on_curve).any()
    assert support.outside(off_curve).all()
    # the score is the scaled distance to the nearest cluster: on the curve below the
    # threshold, off it several times above
    assert support.score(off_curve).min() > 2 * FACTOR


def test_robust_scaling_resolves_the_bulk_of_a_heavy_tailed_parent():
    """With a heavy-tailed parent the standard deviation squashes the bulk; the IQR scaling
    keeps a gap of the bulk visible."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=4000)
    b = np.where(a > 0, 1.0, -1.0) + 0.05 * rng.normal(size=4000)  # two bands
    b[:40] = rng.standard_cauchy(40) * 50  # a heavy tail
    support = fit_support(torch.tensor(np.stack([a, b], axis=1)), seed=0)
    # the gap between the bands, on the wrong side for a
    assert support.outside(np.array([[1.0, -1.0], [-1.0, 1.0]])).all()
    assert not support.outside(np.array([[1.0, 1.0], [-1.0, -1.0]])).any()


def test_no_summary_for_one_column_or_too_few_rows():
    assert fit_support(torch.randn(500, 1)) is None
    assert fit_support(torch.randn(5, 3)) is None


def test_summary_round_trips_and_rejects_bad_shapes():
    support = fit_support(torch.tensor(_curve(2000, 0)))
    again = ParentSupport.from_dict(json.loads(json.dumps(support.to_dict())))
    points = _curve(100, 3)
    np.testing.assert_array_equal(again.score(points), support.score(points))
    bad = support.to_dict()
    bad["radius"] = bad["radius"][:-1]
    with pytest.raises(ValueError, match="inconsistent shapes"):
        ParentSupport.from_dict(bad)


def _confounded(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    """``x1 → x2 → y ← x1`` with ``x2 ≈ x1``: the parents of ``y`` lie near a line."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = x1 + 0.2 * rng.normal(size=n)
    y = x1 + x2 + 0.1 * rng.normal(size=n)
    return pd.DataFrame({"x1": x1, "x2": x2, "y": y})


@pytest.fixture(scope="module")
def fitted() -> ds.DeepSCM:
    return ds.DeepSCM("x1 -> x2; x1 -> y; x2 -> y", mechanisms="linear").fit(
        _confounded(), seed=0, progress=False)


def test_counterfactual_off_the_joint_support_warns_and_reports_the_share(fitted):
    units = _confounded(200, seed=1)
    low = units[units["x1"] < -1]  # do(x2 := 1.5) with x1 < -1: never seen together
    with pytest.warns(ds.ExtrapolationWarning, match=r"'y' reads a combination of its parents \(x1, x2\)"):
        cf = fitted.counterfactual(low, do={"x2": 1.5})
    assert cf.attrs["off_support"]["y"] == 1.0
    assert cf.attrs["extrapolated"] == {}  # 1.5 is inside x2's own range
    assert fitted.outside_support(cf)["y"].all()
    # units for which x2 = 1.5 is ordinary: no warning, nothing flagged
    near = units[(units["x1"] > 1.2) & (units["x1"] < 1.8)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ds.ExtrapolationWarning)
        cf = fitted.counterfactual(near, do={"x2": 1.5})
    assert cf.attrs["off_support"]["y"] == 0.0


def test_interventional_samples_report_the_share_and_observational_rows_pass(fitted):
    with pytest.warns(ds.ExtrapolationWarning, match="unlike any in the training data"):
        sample = fitted.sample(4000, do={"x2": 2.5}, seed=0)
    # do(x2 := 2.5) is ordinary only where x1 is near 2.5: most rows are off the support
    assert sample.attrs["off_support"]["y"] > 0.9
    share = fitted.outside_support(_confounded(4000, seed=5))["y"].mean()
    assert share < 0.01


def test_summary_lists_the_clusters_of_each_checked_node(fitted):
    clusters = fitted.summary()["support clusters"]
    assert clusters["x1"] == 0 and clusters["x2"] == 0  # no parent, one parent column
    assert clusters["y"] == len(fitted.support["y"].radius) >= 2


def test_support_is_saved_without_pickle_and_checked_on_load(fitted, tmp_path):
    path = fitted.save(tmp_path / "m")
    loaded = ds.DeepSCM.load(path)
    frame = _confounded(300, seed=2)
    pd.testing.assert_frame_equal(loaded.outside_support(frame), fitted.outside_support(frame))
    meta_file = next(p for p in path.iterdir() if p.suffix == ".json")
    meta = json.loads(meta_file.read_text())
    assert set(meta["support"]) == {"y"}


def test_cli_flag_support_names_the_nodes_outside_per_row(fitted, tmp_path):
    """``--flag-support`` appends, per row, the checked nodes whose parents lie outside: for
    do(x2 := 1.5), 'y' exactly on the units with x1 far below 1.5, and nothing on the others."""
    from click.testing import CliRunner

    from deepscm.cli import csv_read_options, main

    model = fitted.save(tmp_path / "m")
    units = _confounded(200, seed=1)
    units = units[(units["x1"] < -1) | ((units["x1"] > 1.2) & (units["x1"] < 1.8))]
    units.to_csv(tmp_path / "units.csv", index=False)
    run = CliRunner().invoke(main, ["counterfactual", str(model), "--data", str(tmp_path / "units.csv"),
                                    "--do", "x2=1.5", "--flag-support"], catch_exceptions=False)
    assert run.exit_code == 0, run.output
    cf = pd.read_csv(io.StringIO(run.stdout), **csv_read_options())
    assert list(cf.columns) == ["x1", "x2", "y", "outside_support"]
    flagged = (cf["outside_support"] == "y").to_numpy()
    np.testing.assert_array_equal(flagged, units["x1"].to_numpy() < -1)
    assert cf["outside_support"][~flagged].isna().all()  # an empty field: nothing outside
    assert f"{flagged.sum()} of {len(units)} row(s) outside the training support" in run.stderr
    sample = CliRunner().invoke(main, ["sample", str(model), "-n", 2000, "--do", "x2=2.5", "--seed", 0,
                                       "--flag-support"], catch_exceptions=False)
    assert sample.exit_code == 0, sample.output
    drawn = pd.read_csv(io.StringIO(sample.stdout), **csv_read_options())
    assert (drawn["outside_support"] == "y").mean() > 0.9


def test_cli_flag_support_refuses_a_model_with_a_column_of_its_name(tmp_path):
    from click.testing import CliRunner

    from deepscm.cli import main

    data = _confounded(300).rename(columns={"y": "outside_support"})
    model = ds.DeepSCM("x1 -> x2; x1 -> outside_support; x2 -> outside_support",
                       mechanisms="linear").fit(data, seed=0, progress=False).save(tmp_path / "m")
    run = CliRunner().invoke(main, ["sample", str(model), "-n", 10, "--flag-support"])
    assert run.exit_code == 2 and "already a column of the model" in run.stderr
