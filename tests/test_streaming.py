"""Streamed fits from Parquet (deepscm.streaming): a sample fixes the schema and the mechanisms,
the gradient-trained ones then train on every chunk, and every chunk is checked."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pandas as pd
import pytest

import deepscm.streaming as streaming
from deepscm import DeepSCM
from deepscm.errors import ConfigError, DataError

#: tests that read Parquet (pyarrow is the optional extra deepscm[parquet], in deepscm[test]).
needs_pyarrow = pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None,
                                   reason="pyarrow is not installed: pip install deepscm[parquet]")


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """A 200-row sample and 300-row chunks, so a 1,200-row file streams in several chunks."""
    monkeypatch.setattr(streaming, "SAMPLE_ROWS", 200)
    monkeypatch.setattr(streaming, "CHUNK_ROWS", 300)


def _data(n: int = 1200, seed: int = 0) -> pd.DataFrame:
    """``x → y`` linear-Gaussian (y = 2x + ε, sd 0.5) and ``x → c`` logistic; the file is
    sorted by nothing, but its largest |x| lie after the sample."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    x[3 * n // 4] = 4.5
    y = 2 * x + 0.5 * rng.normal(size=n)
    c = np.where(x + rng.normal(size=n) > 0, "hi", "lo")
    return pd.DataFrame({"x": x, "y": y, "c": c})


def _write(df: pd.DataFrame, path) -> str:
    df.to_parquet(path, row_group_size=150)
    return str(path)


@needs_pyarrow
def test_streamed_fit_trains_on_every_chunk_and_learns_the_mechanism(tmp_path) -> None:
    df = _data()
    scm = DeepSCM("x -> y; x -> c", mechanisms={"y": "additive"})
    scm.fit(_write(df, tmp_path / "d.parquet"), epochs=6, batch_size=64, lr=1e-2, seed=0, progress=False)
    info = scm.fit_info["stream"]
    assert info["sample_rows"] == 200 and info["held_out_rows"] == 20
    assert info["streamed_rows"] == 1200 - 20 and scm.fit_info["rows"] == 1200
    assert info["streamed_nodes"] == ["c", "y"]  # x: linear (closed form) on the sample
    # ranges come from the whole file, not the sample
    assert scm.ranges["x"] == ([df.x.min()], [df.x.max()])
    # E[y | do(x = 1)] = 2 and the held-out log-likelihood of y near log N(0; 0, 0.5²) = -0.73
    assert scm.sample(4000, do={"x": 1.0}, seed=0)["y"].mean() == pytest.approx(2.0, abs=0.2)
    assert scm.fit_info["val_log_prob"]["y"] == pytest.approx(-0.73, abs=0.2)


@needs_pyarrow
def test_pyarrow_dataset_is_streamed_like_the_file(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.dataset as pads

    df = _data(600)
    options = dict(mechanisms={"y": "additive"})
    fit = dict(epochs=2, batch_size=64, seed=0, progress=False)
    from_file = DeepSCM("x -> y", **options).fit(_write(df[["x", "y"]], tmp_path / "d.parquet"), **fit)
    from_table = DeepSCM("x -> y", **options).fit(pads.dataset(pa.Table.from_pandas(df[["x", "y"]])), **fit)
    assert from_table.fit_info["stream"]["streamed_rows"] == 600 - 20
    assert from_table.fit_info["val_log_prob"]["y"] == pytest.approx(from_file.fit_info["val_log_prob"]["y"], abs=0.05)


@needs_pyarrow
@pytest.mark.parametrize(("row", "column", "value", "message"), [
    (1033, "c", "mid", "unseen category 'mid'"),
    (745, "y", np.nan, "missing value"),
])
def test_a_bad_row_after_the_sample_is_named(tmp_path, row, column, value, message) -> None:
    df = _data()
    df[column] = df[column].astype(object)
    df.loc[row, column] = value
    if column == "y":
        df[column] = df[column].astype(float)
    scm = DeepSCM("x -> y; x -> c", mechanisms="linear").fit(_data(300), progress=False)
    before = dict(scm.__dict__)
    with pytest.raises(DataError, match=message) as info:
        scm.fit(_write(df, tmp_path / "bad.parquet"), epochs=1, progress=False)
    assert f"first at row {row} of the dataset" in str(info.value)
    assert scm.__dict__ == before  # a failed fit leaves the model as it was


@needs_pyarrow
def test_a_file_lacking_a_column_is_named(tmp_path) -> None:
    df = _data(600)
    (tmp_path / "parts").mkdir()
    df.iloc[:300].to_parquet(tmp_path / "parts" / "a.parquet")
    df.iloc[300:].drop(columns="c").to_parquet(tmp_path / "parts" / "b.parquet")
    with pytest.raises(DataError, match=r"b\.parquet \(from row 300\) lacks column\(s\) \['c'\]"):
        DeepSCM("x -> y; x -> c").fit(str(tmp_path / "parts"), epochs=1, progress=False)


def test_missing_pyarrow_names_the_extra(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow.dataset", None)  # import pyarrow.dataset fails
    with pytest.raises(ConfigError, match=r"pip install deepscm\[parquet\]"):
        DeepSCM("x -> y").fit(str(tmp_path / "d.parquet"), progress=False)


@needs_pyarrow
def test_a_missing_path_is_a_data_error(tmp_path) -> None:
    with pytest.raises(DataError, match="no Parquet file"):
        DeepSCM("x -> y").fit(tmp_path / "nothing.parquet", progress=False)


@needs_pyarrow
def test_two_processes_stream_the_same_file_like_one(tmp_path) -> None:
    """Every process reads the stream and trains on its share of each mini-batch; the result
    agrees with one process within the data-parallel tolerance (tests/test_distributed.py)."""
    path = _write(_data(), tmp_path / "d.parquet")
    fits = [
        DeepSCM("x -> y; x -> c", mechanisms={"y": "additive"}).fit(
            path, epochs=3, batch_size=64, lr=1e-2, seed=0, progress=False, devices=devices)
        for devices in (1, 2)
    ]
    assert fits[1].fit_info["distributed"]["world_size"] == 2
    assert fits[1].fit_info["stream"]["streamed_rows"] == fits[0].fit_info["stream"]["streamed_rows"]
    for node in ("x", "y", "c"):
        assert fits[1].fit_info["val_log_prob"][node] == pytest.approx(fits[0].fit_info["val_log_prob"][node], abs=0.01)


def test_streamed_terms_keep_the_mechanisms_patience_factor() -> None:
    """The streamed stage waits as long as an in-memory fit: a diffusion node's term carries its
    ten-times patience (:attr:`Diffusion.patience_factor`), a flow's the fit's own."""
    import torch

    from deepscm.mechanisms import ConditionalFlow, Diffusion
    from deepscm.mechanisms.base import MechanismSpec

    spec = MechanismSpec(x_dim=1, context_dim=1)
    for mech in (Diffusion(), ConditionalFlow()):
        mech.build(spec)
        term = streaming._term(mech, "y", stream=None, val_x={}, val_ctx={}, lr=1e-3,
                               generator=torch.Generator())
        assert term.patience_factor == type(mech).patience_factor
    assert Diffusion.patience_factor == 10 and ConditionalFlow.patience_factor == 1
