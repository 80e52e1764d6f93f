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


# --------------------------------------------------------------------------- labels: value and type
def bool_and_int_schema():
    df = pd.DataFrame({"t": [False, True] * 10, "g": [0, 1] * 10})
    return Schema.infer(df, ["t", "g"])


def test_bool_node_maps_0_and_1_to_false_and_true():
    t = bool_and_int_schema()["t"]
    assert t.categories == [False, True]
    units = pd.DataFrame({"t": [1, 0, 1]})  # a bool column that arrives as int 0/1
    t.check(units, "counterfactual")
    assert t.encode(units).tolist() == [1, 0, 1]
    assert t.encode(pd.DataFrame({"t": [1.0, 0.0]})).tolist() == [1, 0]
    assert t.encode_values(0, 3).tolist() == [0, 0, 0]  # do(t=0) means do(t=False)
    assert t.encode_values(1, 2).tolist() == [1, 1]
    assert t.encode_values(np.array([0, 1, True]), 3).tolist() == [0, 1, 1]


def test_integer_node_refuses_true_and_false_naming_the_labels():
    g = bool_and_int_schema()["g"]
    with pytest.raises(DataError, match=r"unseen category True.*knows \[0, 1\].*numbers"):
        g.encode_values(True, 2)
    with pytest.raises(DataError, match=r"'g' has 2 row\(s\).*True, False"):
        g.check(pd.DataFrame({"g": [True, False]}), "log_prob")
    assert g.encode_values(1.0, 1).tolist() == [1]  # 1.0 is the number 1


@pytest.mark.parametrize("value", [2, 0.5, "True", "1", None, [0, 1, 0]])
def test_encoding_never_produces_an_invalid_code(value):
    t = bool_and_int_schema()["t"]
    with pytest.raises(DataError, match="'t'"):
        t.encode_values(value, 2)
    with pytest.raises(DataError, match=r"\[False, True\]"):
        t.encode(pd.DataFrame({"t": pd.Series([value, value], dtype=object)}))


def test_inferred_object_column_mixing_true_and_1_is_boolean_other_mixes_are_refused():
    mixed = pd.DataFrame({"t": pd.Series([True, 0, 1, False] * 5, dtype=object)})
    var = Schema.infer(mixed, ["t"])["t"]
    assert var.categories == [False, True] and var.encode(mixed).tolist()[:4] == [1, 0, 1, 0]
    with pytest.raises(DataError, match="mixes label types"):
        Schema.infer(pd.DataFrame({"c": pd.Series(["a", 1] * 10, dtype=object)}), ["c"])


def test_default_contrast_uses_the_nodes_own_labels():
    schema = bool_and_int_schema()
    assert schema["t"].default_contrast() == (True, False)
    assert schema["g"].default_contrast() == (1, 0)
    assert Variable.categorical("s", ["no", "yes"]).default_contrast() == ("yes", "no")
    assert Variable.continuous("x").default_contrast() == (1.0, 0.0)
    with pytest.raises(DataError, match=r"labels \['a', 'b', 'c'\].*treated= and control="):
        Variable.categorical("c", ["a", "b", "c"]).default_contrast()
    with pytest.raises(DataError, match="treated= and control="):
        Variable.continuous("v", support="positive").default_contrast()


# --------------------------------------------------------------------------- suspicious categoricals
def test_numbers_stored_as_text_are_refused_with_the_fix():
    values = [f"{x:.2f}" for x in np.random.default_rng(0).normal(size=200)]
    values[7] = "?"
    df = pd.DataFrame({"t": values})
    with pytest.raises(DataError, match=r"199 of its 200 values look like numbers.*'\?'.*pd\.to_numeric"):
        Schema.infer(df, ["t"])
    assert Schema.infer(df, ["t"], {"t": "categorical"})["t"].n_categories == df["t"].nunique()


def test_a_text_column_with_about_one_level_per_row_is_refused():
    df = pd.DataFrame({"id": [f"patient-{i}" for i in range(100)]})
    with pytest.raises(DataError, match=r"100 distinct text values in 100 rows.*'patient-0'"):
        Schema.infer(df, ["id"])
    few = pd.DataFrame({"city": [f"c{i % 20}" for i in range(40)]})  # 20 levels are allowed
    assert Schema.infer(few, ["city"])["city"].n_categories == 20


def test_pandas_categorical_with_an_unused_level_uses_the_levels_it_has():
    df = pd.DataFrame({"s": pd.Categorical(["f", "m"] * 10, categories=["f", "m", "x"])})
    var = Schema.infer(df, ["s"])["s"]
    assert var.kind == "binary" and var.categories == ["f", "m"]
    decoded = var.decode(var.encode(df))["s"]
    assert list(decoded) == list(df["s"])


# --------------------------------------------------------------------------- support
def lognormal(n=400):
    return pd.DataFrame({"v": np.exp(np.random.default_rng(1).normal(1.0, 0.5, n))})


@pytest.mark.parametrize("declared", ["shorthand", "variable"])
def test_positive_support_models_log_x_and_never_decodes_negative(declared):
    spec = "positive" if declared == "shorthand" else Variable.continuous("v", support="positive")
    var = Schema.infer(lognormal(), ["v"], {"v": spec})["v"]
    assert var.support == "positive"
    np.testing.assert_allclose(var.loc, [1.0], atol=0.1)  # standardises log v
    z = torch.linspace(-40, 40, 101).reshape(-1, 1)
    assert (var.decode(z)["v"] > 0).all()
    df = lognormal(5)
    np.testing.assert_allclose(var.decode(var.encode(df))["v"], df["v"], rtol=1e-5)
    with pytest.raises(DataError, match=r"outside the declared support x > 0"):
        var.check(pd.DataFrame({"v": [1.0, -0.5]}), "training")
    with pytest.raises(DataError, match="intervention value for 'v'.*x > 0"):
        var.encode_values(0.0, 3)
    assert Variable.from_dict(var.to_dict()) == var


def test_log_jacobian_rows_gives_the_density_in_user_units():
    var = Schema.infer(lognormal(), ["v"], {"v": "positive"})["v"]
    x = np.array([0.3, 1.0, 2.7, 9.0])
    z = var.encode(pd.DataFrame({"v": x}))
    got = torch.distributions.Normal(0.0, 1.0).log_prob(z[:, 0]) + var.log_jacobian_rows(z)
    # z standard normal ⇔ log x ~ N(loc, scale): x is log-normal
    loc, scale = var.loc[0], var.scale[0]
    want = -np.log(x * scale * np.sqrt(2 * np.pi)) - (np.log(x) - loc) ** 2 / (2 * scale**2)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4)
    with pytest.raises(DataError, match="log_jacobian_rows"):
        var.log_jacobian()
    plain = Schema.infer(lognormal(), ["v"])["v"]
    rows = plain.log_jacobian_rows(plain.encode(lognormal(3)))
    np.testing.assert_allclose(rows.numpy(), [plain.log_jacobian()] * 3, rtol=1e-6)


def test_bounded_support_stays_inside_and_its_jacobian_matches_the_derivative():
    df = pd.DataFrame({"p": np.random.default_rng(2).uniform(0.0, 100.0, 300)})
    var = Schema.infer(df, ["p"], {"p": Variable.continuous("p", support=(0, 100))})["p"]
    decoded = var.decode(torch.tensor([[-1e4], [0.0], [1e4]]))["p"]
    assert ((decoded > 0) & (decoded < 100)).all()
    x, h = np.array([1.0, 50.0, 99.0]), 1e-4
    z = var.encode(pd.DataFrame({"p": x}))
    up = var.encode(pd.DataFrame({"p": x + h})).double()
    down = var.encode(pd.DataFrame({"p": x - h})).double()
    numeric = np.log(((up - down) / (2 * h))[:, 0].numpy())
    np.testing.assert_allclose(var.log_jacobian_rows(z).numpy(), numeric, atol=2e-2)
    with pytest.raises(DataError, match="0 < x < 100"):
        var.encode_values(100.0, 1)
    with pytest.raises(DataError, match="finite low < high"):
        Variable.continuous("p", support=(1, 0))
    with pytest.raises(DataError, match="only a continuous node"):
        Variable("b", "binary", support="positive")
