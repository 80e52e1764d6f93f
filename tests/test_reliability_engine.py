"""Reliability of the engine: no silent wrong answers, every failure a clear deepscm error."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deepscm as ds
from deepscm.mechanisms import ConditionalFlow

TINY = ConditionalFlow(hidden_features=(8,))


def linear(n, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.normal(size=n)
    return pd.DataFrame({"t": t, "y": 2 * t + rng.normal(size=n)})


@pytest.fixture(scope="module")
def model():
    return ds.DeepSCM("t -> y", mechanisms="additive").fit(linear(800), epochs=15, progress=False)


def test_diverging_training_raises_naming_the_node():
    with pytest.raises(ds.TrainingError, match=r"'(t|y)'.*lower learning rate"):
        ds.DeepSCM("t -> y", mechanisms=TINY).fit(linear(400), lr=1e3, epochs=30, progress=False)


def test_intervention_outside_the_training_range_warns_and_is_marked(model):
    with pytest.warns(ds.ExtrapolationWarning, match="'t' is set to values outside"):
        out = model.sample(200, do={"t": 5.0}, seed=0)
    assert out.attrs["extrapolated"] == {"t": 1.0}
    with warnings.catch_warnings():
        warnings.simplefilter("error", ds.ExtrapolationWarning)
        inside = model.sample(200, do={"t": 0.5}, seed=0)
        model.counterfactual(linear(5, seed=1), do={"t": 0.5})
    assert inside.attrs["extrapolated"] == {}
    with pytest.warns(ds.ExtrapolationWarning):
        cf = model.counterfactual(linear(4, seed=1), do={"t": np.array([0.0, 0.0, 9.0, 0.0])})
    assert cf.attrs["extrapolated"] == {"t": 0.25}


def test_per_unit_intervention_values(model):
    units = linear(5, seed=3)
    values = np.arange(5.0) / 2
    together = model.counterfactual(units, do={"t": values})
    for i, v in enumerate(values):
        alone = model.counterfactual(units.iloc[[i]], do={"t": v})
        assert together["y"].iloc[i] == pytest.approx(alone["y"].iloc[0], abs=1e-5)
    np.testing.assert_array_equal(together["t"], values)
    draws = model.sample(4, do={"t": [0.1, 0.2, 0.3, 0.4]}, seed=0)
    np.testing.assert_array_equal(draws["t"], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ds.DataError, match=r"one per unit \(5 values\)"):
        model.counterfactual(units, do={"t": np.arange(3.0)})


@pytest.mark.parametrize(
    "do, message",
    [
        ({"t": "high"}, "give a number"),
        ([("t", 1.0)], "do= must be a mapping"),
        ({"nope": 1.0}, "unknown node in do"),
        ({"t": None}, "is None"),
        ({"t": {"a": 1}}, "constant or an array"),
        ({"t": lambda t: "x"}, "give a number"),
        ({"t": lambda t: np.array(["a"] * len(t))}, "cannot use"),
        ({"t": lambda t: t[:2]}, "returned 2 values"),
        ({"t": lambda t: 1 / 0}, "raised ZeroDivisionError"),
        ({"t": ds.FromParents(lambda z: z)}, "not parents of the node"),
    ],
)
def test_bad_interventions_are_data_errors(model, do, message):
    with pytest.raises(ds.DataError, match=message):
        model.sample(10, do=do, seed=0)


def test_intervention_classes_check_their_argument():
    with pytest.raises(ds.DataError, match="Shift takes a function"):
        ds.Shift(1.0)
    with pytest.raises(ds.DataError, match="Set takes a value"):
        ds.Set(lambda t: t)
    with pytest.raises(ds.DataError, match="FromParents takes a function"):
        ds.FromParents(2)


def test_configuration_errors_are_deepscm_errors_and_value_errors():
    for bad in (
        lambda: ConditionalFlow(hidden_features=(-1,)),
        lambda: ConditionalFlow(flow="glow"),
        lambda: ConditionalFlow(bins=0.5),
        lambda: ds.mechanisms.ConditionalVAE(beta="big"),
        lambda: ds.DeepSCM("t -> y", mechanisms="nope"),
        lambda: ds.DeepSCM("t -> y").fit(linear(50), device="tpu", progress=False),
        lambda: ds.DeepSCM("t -> y").fit(linear(50), lr=0, progress=False),
        lambda: ds.DeepSCM("t -> y").fit(linear(50), epochs=0, progress=False),
    ):
        with pytest.raises(ds.ConfigError) as err:
            bad()
        assert isinstance(err.value, ValueError)


def test_too_few_rows_are_refused_with_the_minimum():
    with pytest.raises(ds.DataError, match="at least 10"):
        ds.DeepSCM("t -> y").fit(linear(3), progress=False)
    with pytest.raises(ds.DataError, match="at least 10"):
        ds.DeepSCM("t -> y").fit(linear(1), progress=False)


def test_repr_shows_kinds_and_mechanisms(model):
    assert "t: continuous ~ AdditiveNoise" in repr(model)


# ------------------------------------------------------------------ property test
_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3), st.none(),
    st.lists(st.floats(-3, 3), max_size=7), st.booleans(), st.integers(-5, 5),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    call=st.sampled_from(["sample", "counterfactual", "log_prob", "ate", "worlds"]),
    node=st.sampled_from(["t", "y", "z", 3]),
    value=_values,
    n=st.one_of(st.integers(-2, 20), st.floats(-1, 5), st.none(), st.text(max_size=2)),
    column=st.sampled_from(["t", "y"]),
    cell=_values,
)
def test_bad_inputs_raise_only_deepscm_errors(model, tmp_path, call, node, value, n, column, cell):
    units = linear(6, seed=2)
    if cell is not None:
        units[column] = pd.Series([cell] * len(units), dtype=object)
    before = sorted(tmp_path.rglob("*"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ds.DeepSCMWarning)
            if call == "sample":
                model.sample(n, do={node: value}, seed=0)
            elif call == "counterfactual":
                model.counterfactual(units, do={node: value}, n_samples=n if n is not None else 1)
            elif call == "log_prob":
                model.log_prob(units)
            elif call == "ate":
                model.ate(node, "y", treated=value, control=0.0, n=n if n is not None else 10)
            else:
                model.worlds({"a": {node: value}}, n=n)
    except ds.DeepSCMError:
        pass
    assert sorted(tmp_path.rglob("*")) == before


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(damage=st.binary(max_size=40), where=st.sampled_from(["model.json", "weights"]),
       offset=st.integers(0, 400))
def test_damaged_model_files_raise_only_model_file_errors(model, tmp_path_factory, damage, where, offset):
    path = model.save(tmp_path_factory.mktemp("m") / "model")
    target = path / "model.json" if where == "model.json" else next(path.glob("weights-*"))
    data = target.read_bytes()
    target.write_bytes(data[:offset] + damage + data[offset + len(damage):])
    try:
        loaded = ds.DeepSCM.load(path)
    except ds.ModelFileError:
        return
    if where == "model.json":  # only an unchanged file may load (whitespace is not content)
        assert json.loads(target.read_bytes()) == json.loads(data)
    else:
        assert target.read_bytes() == data
    pd.testing.assert_frame_equal(loaded.sample(5, seed=0), model.sample(5, seed=0))


# ------------------------------------------------------------------ fit and the CLI
@settings(max_examples=30, deadline=None)
@given(
    frame=st.builds(
        lambda n, t, y: pd.DataFrame({"t": t[:n], "y": y[:n]}) if min(len(t), len(y)) >= n else pd.DataFrame({"t": t}),
        st.integers(0, 30),
        st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=2), st.booleans()),
                 min_size=0, max_size=30),
        st.lists(st.one_of(st.floats(-1e300, 1e300), st.integers(-3, 3), st.none()), min_size=0, max_size=30),
    ),
    options=st.fixed_dictionaries({
        "epochs": st.sampled_from([1, 2, 0, -1, 1.5]),
        "lr": st.sampled_from([1e-3, 0.0, -1.0, float("nan"), "x"]),
        "batch_size": st.sampled_from([8, 0, 2.5]),
        "val_fraction": st.sampled_from([0.2, 0.0, 1.0, -0.1]),
    }),
    mechanism=st.sampled_from([None, "linear", "additive", "auto", "nope", 3]),
)
def test_fit_raises_only_deepscm_errors(frame, options, mechanism):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ds.DeepSCMWarning)
            ds.DeepSCM("t -> y", mechanisms=mechanism).fit(frame, progress=False, **options)
    except ds.DeepSCMError:
        pass


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    command=st.sampled_from(["fit", "sample", "counterfactual"]),
    do=st.sampled_from(["t=2", "t=", "=2", "nope=1", "t=abc", "t=t+", "t=1e999", "t"]),
    n=st.sampled_from(["5", "0", "-3", "x"]),
    graph=st.sampled_from(["t -> y", "t -> y; y -> t", "t -> ", "a -> b"]),
)
def test_cli_failures_are_one_line_errors(model, tmp_path, command, do, n, graph):
    from click.testing import CliRunner

    from deepscm.cli import main

    data = tmp_path / "data.csv"
    linear(40).to_csv(data, index=False)
    saved = tmp_path / "model"
    if not saved.exists():
        model.save(saved)
    args = {
        "fit": ["fit", "--graph", graph, "--data", str(data), "--out", str(tmp_path / "new"), "--epochs", n],
        "sample": ["sample", str(saved), "-n", n, "--do", do],
        "counterfactual": ["counterfactual", str(saved), "--data", str(data), "--do", do],
    }[command]
    before = {p: p.stat().st_mtime_ns for p in saved.iterdir()}
    result = CliRunner().invoke(main, args)
    assert result.exit_code in (0, 2), (args, result.exit_code, result.output)
    if result.exit_code == 2:
        assert "Traceback" not in result.output
        assert result.stderr.strip().startswith("error: ") and "\n" not in result.stderr.strip()
    assert {p: p.stat().st_mtime_ns for p in saved.iterdir()} == before  # the model is untouched
