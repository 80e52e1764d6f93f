"""Model files: pickle-free round trip, checksummed metadata, clear errors on damaged files,
atomic saves that never touch files the model did not write."""

import json
import os

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


def weights_of(path):
    (weights,) = path.glob("weights-*.safetensors")
    return weights


def rewrite_meta(path, edit, resign=False):
    """Edit model.json; with ``resign`` also recompute its checksum (a tool that knows the
    format), so that only the field validation can catch the edit."""
    meta = json.loads((path / "model.json").read_text())
    edit(meta)
    if resign:
        meta["sha256"] = dio._bundle_sha(meta, dio._sha256_file(weights_of(path)))
    (path / "model.json").write_text(json.dumps(meta))


def test_round_trip_reproduces_samples_counterfactuals_and_labels(fitted, tmp_path):
    scm, df = fitted
    path = scm.save(tmp_path / "model")
    assert sorted(p.name for p in path.iterdir()) == ["model.json", weights_of(path).name]
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
    assert loaded.ranges == scm.ranges


def test_files_contain_no_pickle_and_follow_the_umask(fitted, tmp_path):
    scm, _ = fitted
    old = os.umask(0o022)
    try:
        path = scm.save(tmp_path / "m")
    finally:
        os.umask(old)
    meta = json.loads((path / "model.json").read_text())
    assert meta["format_version"] == dio.FORMAT_VERSION
    assert b"\x80\x04" not in weights_of(path).read_bytes()[:64]  # no pickle protocol header
    assert (path / "model.json").stat().st_mode & 0o777 == 0o644
    assert weights_of(path).stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: (p / "model.json").write_text("{not json"), "not valid JSON"),
        (lambda p: (p / "model.json").unlink(), "model.json is missing"),
        (lambda p: weights_of(p).unlink(), r"weights-\w+\.safetensors is missing"),
        (lambda p: weights_of(p).write_bytes(weights_of(p).read_bytes()[:100]), "fails its checksum"),
        (lambda p: rewrite_meta(p, lambda m: m.update(format_version=99)), "format version 99"),
        (lambda p: rewrite_meta(p, lambda m: m.update(format_version=1)), "older format 1"),
        (lambda p: rewrite_meta(p, lambda m: m.update(weights_file="../x")), "no valid weights file"),
    ],
)
def test_damaged_files_give_clear_errors(fitted, tmp_path, damage, message):
    scm, _ = fitted
    path = scm.save(tmp_path / "m")
    damage(path)
    with pytest.raises(ds.ModelFileError, match=message):
        ds.DeepSCM.load(path)


def test_edited_metadata_is_refused(fitted, tmp_path):
    """A negated scale would silently flip the sign of y: the checksum covers the metadata."""
    scm, _ = fitted
    path = scm.save(tmp_path / "m")

    def negate_scale(meta):
        for var in meta["schema"]:
            if var["name"] == "y":
                var["scale"] = [-s for s in var["scale"]]

    rewrite_meta(path, negate_scale)
    with pytest.raises(ds.ModelFileError, match="fails its checksum"):
        ds.DeepSCM.load(path)


def test_metadata_is_validated_against_the_weights(fitted, tmp_path):
    """Even with a recomputed checksum, an edited graph is a ModelFileError, not a torch error."""
    scm, _ = fitted
    path = scm.save(tmp_path / "m")
    rewrite_meta(path, lambda m: m.update(graph="age -> y; group -> y"), resign=True)
    with pytest.raises(ds.ModelFileError, match="does not match the graph and schema"):
        ds.DeepSCM.load(path)
    path = scm.save(tmp_path / "n")
    rewrite_meta(path, lambda m: m["mechanisms"]["y"].update(type="os.system"), resign=True)
    with pytest.raises(ds.ModelFileError, match="does not know"):
        ds.DeepSCM.load(path)


def test_mismatched_weights_are_detected(fitted, tmp_path):
    scm, df = fitted
    other = ds.DeepSCM("age -> group; age -> y; group -> y").fit(df, epochs=1, progress=False)
    a, b = scm.save(tmp_path / "a"), other.save(tmp_path / "b")
    weights_of(a).write_bytes(weights_of(b).read_bytes())
    with pytest.raises(ds.ModelFileError, match="fails its checksum"):
        ds.DeepSCM.load(a)
    rewrite_meta(a, lambda m: None, resign=True)
    with pytest.raises(ds.ModelFileError, match="weights of node 'y' do not match"):
        ds.DeepSCM.load(a)


def test_interrupted_save_keeps_the_previous_model(fitted, tmp_path, monkeypatch):
    scm, _ = fitted
    path = scm.save(tmp_path / "m")
    before = ds.DeepSCM.load(path).sample(50, seed=0)
    files = sorted(p.name for p in path.iterdir())

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dio, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        scm.save(path)
    pd.testing.assert_frame_equal(ds.DeepSCM.load(path).sample(50, seed=0), before)
    assert sorted(p.name for p in path.iterdir()) == files  # no staging debris left


def test_interrupted_commit_keeps_the_previous_model(fitted, tmp_path, monkeypatch):
    """A crash after the new weights are in place but before model.json is replaced."""
    scm, df = fitted
    path = scm.save(tmp_path / "m")
    before = ds.DeepSCM.load(path).sample(50, seed=0)
    other = ds.DeepSCM("age -> group; age -> y; group -> y").fit(df, epochs=1, progress=False, seed=4)
    real = dio._publish

    def crash_on_meta(staging, final):
        if final.name == dio.META_FILE:
            raise KeyboardInterrupt
        real(staging, final)

    monkeypatch.setattr(dio, "_publish", crash_on_meta)
    with pytest.raises(KeyboardInterrupt):
        other.save(path)
    pd.testing.assert_frame_equal(ds.DeepSCM.load(path).sample(50, seed=0), before)


def test_saving_keeps_the_users_other_files(fitted, tmp_path):
    scm, _ = fitted
    folder = tmp_path / "notes"
    (folder / "plots").mkdir(parents=True)
    (folder / "NOTES.txt").write_text("precious")
    (folder / "plots" / "fig.png").write_bytes(b"png")
    scm.save(folder)
    scm.save(folder)  # re-saving too
    assert (folder / "NOTES.txt").read_text() == "precious"
    assert (folder / "plots" / "fig.png").read_bytes() == b"png"
    assert len(list(folder.glob("weights-*.safetensors"))) == 1
    ds.DeepSCM.load(folder)


def test_unwritable_target_is_a_model_file_error_naming_the_path(fitted, tmp_path):
    scm, _ = fitted
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ds.ModelFileError, match="a_file is a file"):
        scm.save(tmp_path / "a_file" / "model")
    with pytest.raises(ds.ModelFileError, match="a_file is a file"):
        dio.check_writable(tmp_path / "a_file" / "model")


def test_a_bundle_read_as_another_model_names_the_class_that_wrote_it(tmp_path) -> None:
    import torch

    dio.write_bundle(tmp_path / "ccgm", {"w": torch.zeros(2)}, {"model": "CCGM"})
    dio.write_bundle(tmp_path / "plain", {"w": torch.zeros(2)}, {})
    tensors, meta = dio.read_bundle(tmp_path / "ccgm", model="CCGM")
    assert meta["model"] == "CCGM" and torch.equal(tensors["w"], torch.zeros(2))
    with pytest.raises(ds.ModelFileError, match="holds a 'CCGM' model, not DECAF"):
        dio.read_bundle(tmp_path / "ccgm", model="DECAF")
    with pytest.raises(ds.ModelFileError, match="holds a 'DeepSCM' model, not CCGM"):
        dio.read_bundle(tmp_path / "plain", model="CCGM")
