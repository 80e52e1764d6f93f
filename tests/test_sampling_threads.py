"""Sampling on several CPU threads (deepscm.scm.chunks): the chunks' propagation runs on
worker threads, and a seeded sample is the same on one thread and on two."""

import threading
import warnings

import numpy as np
import pytest
import torch

import deepscm as ds
from deepscm import ExtrapolationWarning
from deepscm.datasets import load_scm
from deepscm.scm import engine
from deepscm.scm import model as scm_model

pytestmark = [pytest.mark.filterwarnings("ignore::deepscm.ExtrapolationWarning"),
              pytest.mark.usefixtures("one_thread")]  # the tests set their own counts


@pytest.fixture(scope="module")
def fitted():
    truth = load_scm("dcm_triangle_nonlinear")
    return ds.DeepSCM(truth.graph, mechanisms="flow").fit(truth.sample(600, seed=0), epochs=2, seed=0, progress=False)


@pytest.fixture
def small_chunks(monkeypatch):
    """512-row chunks, so a few thousand rows are several chunks."""
    monkeypatch.setattr(scm_model, "_CHUNK", 512)


def _thread_names(monkeypatch) -> list[str]:
    names: list[str] = []
    propagate = engine.propagate

    def recording(*args, **kwargs):
        names.append(threading.current_thread().name)
        return propagate(*args, **kwargs)

    monkeypatch.setattr(engine, "propagate", recording)
    return names


def test_same_sample_on_one_and_two_threads(fitted, small_chunks, monkeypatch):
    names = _thread_names(monkeypatch)
    torch.set_num_threads(1)
    one = fitted.sample(5000, do={"x1": 0.5}, seed=3)
    assert set(names) == {threading.current_thread().name}  # one thread: no workers
    names.clear()
    torch.set_num_threads(2)
    two = fitted.sample(5000, do={"x1": 0.5}, seed=3)
    assert len(names) == 10 and all(n.startswith("deepscm-chunk") for n in names)
    assert torch.get_num_threads() == 2  # restored
    assert two.equals(one)
    assert not two.equals(fitted.sample(5000, do={"x1": 0.5}, seed=4))


def test_worlds_share_noise_across_threads(fitted, small_chunks):
    torch.set_num_threads(2)
    worlds = fitted.worlds({"a": {"x1": 0.0}, "b": {"x1": 0.0}}, n=3000, seed=1)
    assert worlds["a"].equals(worlds["b"])  # same noise, same intervention: same rows


def test_a_failing_chunk_raises_and_restores_threads(fitted, small_chunks, monkeypatch):
    propagate, calls = engine.propagate, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("chunk 3 failed")
        return propagate(*args, **kwargs)

    monkeypatch.setattr(engine, "propagate", failing)
    torch.set_num_threads(2)
    with pytest.raises(RuntimeError, match="chunk 3 failed"):
        fitted.sample(20_000, seed=0)
    assert torch.get_num_threads() == 2


def test_extrapolation_share_is_over_all_chunks_and_warned_once(fitted, small_chunks):
    torch.set_num_threads(2)
    high = fitted.ranges["x1"][1][0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = fitted.sample(5000, do={"x1": high + 3.0}, seed=0)
    assert len([w for w in caught if issubclass(w.category, ExtrapolationWarning)]) == 1
    assert frame.attrs["extrapolated"]["x1"] == pytest.approx(1.0)
    # a propagated parent: the share of all 5,000 rows outside x2's range (1 % slack)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        frame = fitted.sample(5000, do={"x1": 0.5}, seed=0)
    low, top = (np.asarray(b)[0] for b in fitted.ranges["x2"])
    slack = 0.01 * (top - low)
    outside = float(((frame["x2"] < low - slack) | (frame["x2"] > top + slack)).mean())
    assert outside > 0.01
    assert frame.attrs["extrapolated"]["x2"] == pytest.approx(outside, abs=1e-9)
