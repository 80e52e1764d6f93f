"""Model files: pickle-free round trip, clear errors on damaged files, atomic saves."""

import json

import numpy as np
import pandas as pd
import pytest

import deepscm as ds
import deepscm.io as dio
from deepscm.mechanisms import AdditiveNoise


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    n = 600
    age = rng.uniform(20, 80, n)
    group = pd.Categorical(rng.choice(["a", "b", "c"], n))
    y = 0.1 * age + (group == "b") + rng.normal(size=n)
    df = pd.DataFrame({"age": age, "group": group, "y": y})
    scm = ds.DeepSCM("age -> group; age -> y; group -> y", mechanisms={"y": AdditiveNoise()})
    return scm.fit(df, epochs=3, progress=False), df


def test_round_trip_reproduces_samples_counterfactuals_and_labels(fitted, tmp_path):
    scm, df = fitted
    path = scm.save(tmp_path / "model")
    assert sorted(p.name for p in path.iterdir()) == ["model.json", "weights.safetensors"]
    loaded = ds.DeepSCM.load(path)
    a, b = scm.sample(200, seed=3), loaded.sample(200, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert isinstance(b["group"].dtype, pd.CategoricalDtype)
    units = df.head(20)
    pd.testing.assert_frame_equal(
        scm.counterfactual(units, do={"age": 50.0}, seed=1),
        loaded.counterfactual(units, do={"age": 50.0}, seed=1),
    )
    np.testing.assert_allclose(scm.log_prob(units), loaded.log_prob(units), rtol=1e-6)
    assert type(loaded.mechanisms["y"]).__name__ == "AdditiveNoise"


def test_files_contain_no_pickle(fitted, tmp_path):
    scm, _ = fitted
    path = scm.save(tmp_path / "m")
    meta = json.loads((path / "model.json").read_text())
    assert meta["format_version"] == dio.FORMAT_VERSION
    assert b"\x80\x04" not in (path / "weights.safetensors").read_bytes()[:64]  # no pickle protocol header


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: (p / "model.json").write_text("{not json"), "not valid JSON"),
        (lambda p: (p / "model.json").unlink(), "model.json is missing"),
        (lambda p: (p / "weights.safetensors").unlink(), "weights.safetensors is missing"),
        (
            lambda p: (p / "weights.safetensors").write_bytes((p / "weights.safetensors").read_bytes()[:100]),
            "truncated, corrupt or from another model",
        ),
        (
            lambda p: (p / "model.json").write_text(
                json.dumps({**json.loads((p / "model.json").read_text()), "format_version": 99})
            ),
            "format version 99",
        ),
    ],
)
def test_damaged_files_give_clear_errors(fitted, tmp_path, damage, message):
    scm, _ = fitted
    path = scm.save(tmp_path / "m")
    damage(path)
    with pytest.raises(ds.ModelFileError, match=message):
        ds.DeepSCM.load(path)


def test_mismatched_weights_are_detected(fitted, tmp_path):
    scm, df = fitted
    other = ds.DeepSCM("age -> group; age -> y; group -> y").fit(df, epochs=1, progress=False)
    a, b = scm.save(tmp_path / "a"), other.save(tmp_path / "b")
    (a / "weights.safetensors").write_bytes((b / "weights.safetensors").read_bytes())
    with pytest.raises(ds.ModelFileError, match="does not match"):
        ds.DeepSCM.load(a)
    meta = json.loads((a / "model.json").read_text())
    meta["weights_sha256"] = dio._sha256(a / "weights.safetensors")
    (a / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ds.ModelFileError, match="weights of node 'y' do not match"):
        ds.DeepSCM.load(a)


def test_interrupted_save_keeps_the_previous_model(fitted, tmp_path, monkeypatch):
    scm, _ = fitted
    path = scm.save(tmp_path / "m")
    before = ds.DeepSCM.load(path).sample(50, seed=0)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dio, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        scm.save(path)
    pd.testing.assert_frame_equal(ds.DeepSCM.load(path).sample(50, seed=0), before)
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no staging debris left


def test_refuses_to_overwrite_a_foreign_directory(fitted, tmp_path):
    scm, _ = fitted
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.txt").write_text("precious")
    with pytest.raises(ds.ModelFileError, match="not a deepscm model directory"):
        scm.save(tmp_path / "notes")
    assert (tmp_path / "notes" / "thesis.txt").read_text() == "precious"
