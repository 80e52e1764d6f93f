"""Variable schema: inference, user-unit round trips, validation messages."""

import numpy as np
import pandas as pd
import pytest
import torch

from deepscm import DataError, Variable
from deepscm.variables import Schema


def frame(n=100):
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "height": rng.normal(170, 10, n),
            "smoker": rng.choice([True, False], n),
            "grade": rng.choice([1, 2, 3], n),
            "city": rng.choice(["Oslo", "Rome", "Lima"], n),
            "visits": rng.integers(0, 50, n),
            "flag": rng.choice([0.0, 1.0], n),
        }
    )


def test_inference_of_kinds():
    schema = Schema.infer(frame(), list(frame().columns))
    kinds = {v.name: v.kind for v in schema}
    assert kinds == {
        "height": "continuous", "smoker": "binary", "grade": "categorical",
        "city": "categorical", "visits": "continuous", "flag": "binary",
    }
    assert schema["city"].categories == ["Lima", "Oslo", "Rome"]


def test_overrides_and_vectors():
    df = frame().assign(h2=lambda d: d.height * 2)[["height", "h2", "grade"]]
    schema = Schema.infer(df, ["height", "grade"], {"height": ["height", "h2"], "grade": "continuous"})
    assert schema["height"].columns == ["height", "h2"] and schema["height"].dim == 2
    assert schema["grade"].kind == "continuous"
    with pytest.raises(DataError, match="unknown node"):
        Schema.infer(df, ["height"], {"weight": "continuous"})


@pytest.mark.parametrize("column", ["height", "smoker", "grade", "city", "flag"])
def test_encode_decode_round_trip_in_user_units(column):
    df = frame()[[column]]
    var = Schema.infer(df, [column])[column]
    decoded = var.decode(var.encode(df))[column]
    if var.discrete:
        assert list(decoded) == list(df[column])
        assert np.asarray(decoded).dtype == df[column].to_numpy().dtype
    else:
        np.testing.assert_allclose(decoded, df[column], rtol=1e-6)


def test_context_encodings():
    df = frame()[["city", "smoker"]]
    schema = Schema.infer(df, ["city", "smoker"])
    assert schema["city"].to_context(schema["city"].encode(df)).shape == (100, 3)
    assert schema["smoker"].to_context(schema["smoker"].encode(df)).shape == (100, 1)
    assert schema["city"].encode(df).dtype == torch.int64


def test_constant_and_single_level_columns_are_refused():
    with pytest.raises(DataError, match=r"\['c'\] are constant"):
        Schema.infer(pd.DataFrame({"c": [1.5] * 20}), ["c"])
    with pytest.raises(DataError, match="single level"):
        Schema.infer(pd.DataFrame({"c": ["x"] * 20}), ["c"])


def test_non_numeric_continuous_column():
    with pytest.raises(DataError, match="declared continuous but holds"):
        Schema.infer(pd.DataFrame({"c": ["a", "b"] * 10}), ["c"], {"c": Variable("c", "continuous")})
