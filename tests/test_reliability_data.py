"""Bad data never escapes as a raw numpy/pandas/torch error, and never encodes silently wrong.

Hypothesis throws generated bad DataFrames (wrong dtypes, NaN/inf, unseen labels, 0/1 vs bool
mixes, numbers stored as text, missing/extra columns, empty frames) and bad intervention values
at ``Schema.infer``, ``Schema.check``, ``Variable.encode`` and ``Variable.encode_values``: each
either succeeds with valid codes or raises a :class:`deepscm.DeepSCMError`.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepscm import DataError, DeepSCMError, Variable
from deepscm.datasets import list_scms, load_scm
from deepscm.variables import Schema

NODES = ["x", "t", "g", "c", "v"]


def good_frame(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "t": rng.choice([False, True], n),
            "g": rng.choice([0, 1, 2], n),
            "c": rng.choice(["a", "b", "c"], n),
            "v": np.exp(rng.normal(size=n)),
        }
    )


@functools.cache
def fitted_schema() -> Schema:
    return Schema.infer(good_frame(), NODES, {"v": "positive"})


CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-3, 3),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.sampled_from(["a", "b", "c", "z", "1", "2.5", "?", "", "True", " nan"]),
    st.none(),
    st.just([0, 1]),
    st.just({"k": 1}),
    st.just(np.zeros((2, 2))),
    st.just(np.float32("nan")),
    st.just(np.int64(1)),
    st.just(np.bool_(True)),
)


@st.composite
def columns(draw, n: int) -> pd.Series:
    """One column: a well-typed column with a few bad cells, or cells of any mix of types."""
    how = draw(st.sampled_from(["float", "int", "bool", "text", "numeric_text", "category", "mixed"]))
    if how == "float":
        values = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=n, max_size=n))
        return pd.Series(values, dtype=float)
    if how == "int":
        return pd.Series(draw(st.lists(st.integers(-2, 5), min_size=n, max_size=n)), dtype="int64")
    if how == "bool":
        return pd.Series(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    if how == "text":
        return pd.Series(draw(st.lists(st.sampled_from(["a", "b", "c", "z"]), min_size=n, max_size=n)))
    if how == "numeric_text":
        numbers = draw(st.lists(st.floats(-5, 5).map(lambda x: f"{x:.3g}"), min_size=n, max_size=n))
        return pd.Series(numbers)
    if how == "category":
        labels = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n))
        return pd.Series(pd.Categorical(labels, categories=["a", "b", "c", "unused"]))
    cells = draw(st.lists(CELLS, min_size=n, max_size=n))
    series = pd.Series([None] * n, dtype=object)
    for i, cell in enumerate(cells):
        series.iloc[i] = cell
    return series


@st.composite
def bad_frames(draw) -> pd.DataFrame:
    n = draw(st.integers(0, 12))
    names = draw(st.lists(st.sampled_from(NODES + ["extra"]), unique=True, max_size=6))
    frame = pd.DataFrame(index=range(n))
    for name in names:
        frame[name] = draw(columns(n)).values if n else pd.Series([], dtype=object)
    return frame


def assert_valid_codes(var: Variable, encoded: torch.Tensor) -> None:
    if var.discrete:
        assert encoded.dtype == torch.int64
        assert ((encoded >= 0) & (encoded < len(var.categories))).all(), encoded
    else:
        assert torch.isfinite(encoded).all()


SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@SETTINGS
@given(bad_frames())
def test_check_and_encode_raise_only_deepscm_errors(frame):
    try:
        fitted_schema().check(frame, "test")
    except DeepSCMError:
        pass
    for var in fitted_schema():
        try:
            encoded = var.encode(frame)
        except DeepSCMError:
            continue
        assert_valid_codes(var, encoded)


@SETTINGS
@given(bad_frames(), st.booleans())
def test_infer_raises_only_deepscm_errors(frame, declare):
    nodes = [c for c in frame.columns if c in NODES] or ["x"]
    overrides = {"v": "positive", "c": "categorical"} if declare else None
    overrides = {k: s for k, s in (overrides or {}).items() if k in nodes}
    try:
        schema = Schema.infer(frame, nodes, overrides)
    except DeepSCMError:
        return
    for var in schema:  # what inference accepted, it encodes into valid codes
        assert_valid_codes(var, var.encode(frame))


VALUES = st.one_of(
    CELLS,
    st.lists(CELLS, min_size=0, max_size=4),
    st.just(np.array([0, 1, 1])),
    st.just(np.array([True, False, True])),
    st.just(np.array(["a", "b", "c"])),
    st.just(pd.Series([1.0, 2.0, 3.0])),
    st.just(np.ones((3, 2))),
    st.just(1j),
)


@SETTINGS
@given(VALUES)
def test_encode_values_raises_only_deepscm_errors(value):
    for var in fitted_schema():
        try:
            encoded = var.encode_values(value, 3)
        except DeepSCMError:
            continue
        assert_valid_codes(var, encoded)


@SETTINGS
@given(st.lists(st.sampled_from([0, 1, 0.0, 1.0, True, False, np.int64(1), np.bool_(False)]),
                min_size=1, max_size=8))
def test_bool_and_int_mixes_follow_one_rule(values):
    """A bool node maps 0/1 to False/True; an integer node refuses True/False, never miscodes."""
    frame = pd.DataFrame({"t": pd.Series(values, dtype=object), "g": pd.Series(values, dtype=object)})
    want = [int(bool(v)) for v in values]
    assert fitted_schema()["t"].encode(frame).tolist() == want
    has_bool = any(isinstance(v, (bool, np.bool_)) for v in values)
    if has_bool:
        with pytest.raises(DataError, match=r"knows \[0, 1, 2\]"):
            fitted_schema()["g"].encode(frame)
    else:
        assert fitted_schema()["g"].encode(frame).tolist() == want


def test_load_scm_with_an_unknown_name_is_a_data_error_listing_the_names():
    with pytest.raises(DataError, match=r"unknown SCM 'nope'; valid names: .*textbook") as info:
        load_scm("nope")
    assert isinstance(info.value, ValueError)
    with pytest.raises(DataError, match="valid kinds"):
        list_scms("nope")


def test_bool_treatment_given_as_0_and_1_through_the_model():
    """do(t=0)/do(t=1) and units whose bool column arrives as int 0/1 (issue items 1 and 9)."""
    import deepscm as ds

    rng = np.random.default_rng(0)
    t = rng.random(300) < 0.5
    data = pd.DataFrame({"t": t, "y": 2.0 * t + 0.1 * rng.normal(size=300)})
    scm = ds.DeepSCM("t -> y", mechanisms="additive").fit(data, epochs=20, progress=False, device="cpu")
    control, treated = (scm.sample(2000, do={"t": v}, seed=0) for v in (0, 1))
    assert not control["t"].any() and treated["t"].all()
    assert abs(treated["y"].mean() - control["y"].mean() - 2.0) < 0.3
    units = data.head(5).assign(t=lambda d: d["t"].astype(int))
    cf = scm.counterfactual(units, do={"t": 1})
    assert cf["t"].tolist() == [True] * 5
    np.testing.assert_allclose(scm.log_prob(units), scm.log_prob(data.head(5)))
    # ate's defaults are the node's own labels (True vs False), never an invalid code
    assert scm.ate("t", "y") == pytest.approx(2.0, abs=0.3)
    with pytest.raises(ds.DataError, match="labels"):
        scm.ate("t", "y", treated="yes", control=False)
