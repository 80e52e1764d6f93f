"""The command line: fit → sample → counterfactual round trips, one-line errors, help, the demo."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from deepscm import __version__
from deepscm.cli import csv_read_options, main
from deepscm.datasets import load_scm

GRAPH = "x1 -> x2"


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def read(text_or_path) -> pd.DataFrame:
    if isinstance(text_or_path, Path):
        return pd.read_csv(text_or_path, **csv_read_options())
    return pd.read_csv(io.StringIO(text_or_path), **csv_read_options())


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    err = result.stderr.strip()
    assert err.startswith("error: "), err
    assert "\n" not in err, err
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in err, (fragment, err)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A tiny textbook dataset (x1 := u1 + 1, x2 := 3 x1 + u2) and a model fitted by the CLI."""
    root = tmp_path_factory.mktemp("cli")
    data = load_scm("textbook").sample(300, seed=0)
    data.to_csv(root / "data.csv", index=False)
    data.head(10).to_csv(root / "units.csv", index=False)
    result = run("fit", "--graph", GRAPH, "--data", root / "data.csv", "--out", root / "model",
                 "--epochs", 3, "--no-progress", "--seed", 1)
    assert result.exit_code == 0, result.output
    return {"root": root, "data": root / "data.csv", "units": root / "units.csv",
            "model": root / "model", "fit_stdout": result.stdout}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "deepscm-demo"
    result = run("demo", "--out", out, "--rows", 500, "--epochs", 3, "--eval-samples", 500,
                 "--no-progress")
    assert result.exit_code == 0, result.output
    assert "total" in result.stdout and "deepscm sample" in result.stdout
    return out


# --------------------------------------------------------------------------- help and version
@pytest.mark.parametrize("command", [[], ["fit"], ["sample"], ["counterfactual"], ["demo"]])
def test_help_works_for_every_command(command):
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.stdout


def test_bare_deepscm_prints_the_normal_help():
    result = run()
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: ") and "\nCommands:\n" in result.stdout
    assert "error:" not in result.output


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.stdout


# --------------------------------------------------------------------------- round trip
def test_fit_writes_a_model_and_prints_a_summary(files):
    assert (files["model"] / "model.json").is_file()
    out = files["fit_stdout"]
    assert "300 rows" in out and "held-out log-lik" in out
    # the default selects per node: the textbook SCM is linear-Gaussian
    assert "x1" in out and "x2" in out and "LinearGaussian" in out


def test_sample_respects_a_constant_intervention(files, tmp_path):
    path = tmp_path / "samples.csv"
    result = run("sample", files["model"], "-n", 50, "--do", "x1=5", "--seed", 0, "--out", path)
    assert result.exit_code == 0, result.output
    frame = read(path)
    assert frame.shape == (50, 2) and list(frame.columns) == ["x1", "x2"]
    assert (frame["x1"] == 5.0).all()
    assert np.isfinite(frame["x2"]).all()


def test_sample_to_stdout_is_reproducible_with_a_seed(files):
    first = run("sample", files["model"], "-n", 20, "--seed", 3)
    second = run("sample", files["model"], "-n", 20, "--seed", 3)
    assert first.exit_code == 0, first.output
    assert first.stdout == second.stdout
    assert read(first.stdout).shape == (20, 2)


def test_shift_syntaxes_agree(files):
    a = run("sample", files["model"], "-n", 30, "--seed", 0, "--do", "x1=x1+1").stdout
    b = run("sample", files["model"], "-n", 30, "--seed", 0, "--shift", "x1=+1").stdout
    natural = read(run("sample", files["model"], "-n", 30, "--seed", 0).stdout)
    assert a == b
    np.testing.assert_allclose(read(a)["x1"], natural["x1"] + 1, atol=1e-4)


def test_counterfactual_keeps_non_descendants_exactly(files, tmp_path):
    path = tmp_path / "cf.csv"
    result = run("counterfactual", files["model"], "--data", files["units"], "--do", "x2=0",
                 "--out", path)
    assert result.exit_code == 0, result.output
    units, cf = read(files["units"]), read(path)
    assert cf.shape == units.shape and list(cf.columns) == list(units.columns)
    assert (cf["x1"].to_numpy() == units["x1"].to_numpy()).all()  # bit-for-bit
    assert (cf["x2"] == 0).all()
    assert "factual: x1" in result.stderr


def test_counterfactual_recomputes_descendants(files):
    result = run("counterfactual", files["model"], "--data", files["units"], "--do", "x1=5")
    assert result.exit_code == 0, result.output
    units, cf = read(files["units"]), read(result.stdout)
    assert (cf["x1"] == 5).all()
    assert not np.allclose(cf["x2"], units["x2"])
    assert "exact: x1, x2" in result.stderr


def test_a_deepscm_warning_is_one_line_on_stderr(files):
    """do(x1 := 5) leaves x1's training range: the warning is one 'warning: ' line, without
    Python's source location."""
    result = run("counterfactual", files["model"], "--data", files["units"], "--do", "x1=5")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(lines) == 1 and "'x1' is set to values outside its training range" in lines[0], result.stderr
    assert "ExtrapolationWarning" not in result.stderr and ".py:" not in result.stderr


def test_counterfactual_with_several_draws_has_unit_and_draw_columns(files):
    result = run("counterfactual", files["model"], "--data", files["units"], "--do", "x1=5",
                 "--n-samples", 3)
    assert result.exit_code == 0, result.output
    cf = read(result.stdout)
    assert list(cf.columns) == ["unit", "draw", "x1", "x2"] and len(cf) == 30


def test_graph_file_with_comments_and_additive_mechanism(files, tmp_path):
    graph = tmp_path / "graph.txt"
    graph.write_text("# the textbook SCM\nx1 -> x2  # one edge\n")
    result = run("fit", "--graph-file", graph, "--data", files["data"], "--out", tmp_path / "m",
                 "--epochs", 2, "--mechanism", "additive", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "AdditiveNoise" in result.stdout


def test_graph_file_with_quoted_names_keeps_a_quoted_hash(tmp_path):
    from deepscm.cli import _read_graph
    from deepscm.graph import CausalGraph

    path = tmp_path / "graph.txt"
    path.write_text('"blood pressure" -> "y #2"  # the outcome\nx-1 -> y  # a dash\n')
    graph = CausalGraph(_read_graph(None, str(path)))
    assert graph.directed_edges == [("blood pressure", "y #2"), ("x-1", "y")]


# --------------------------------------------------------------------------- one-line errors
def test_cyclic_graph(files, tmp_path):
    result = run("fit", "--graph", "x1 -> x2; x2 -> x1", "--data", files["data"],
                 "--out", tmp_path / "m", "--no-progress")
    assert_one_line_error(result, "cycle")


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_unwritable_out_is_refused_before_training(files, tmp_path, where):
    blocker = tmp_path / "occupied"
    blocker.write_text("not a directory")
    out = blocker if where == "file" else blocker / "model"
    result = run("fit", "--graph", GRAPH, "--data", files["data"], "--out", out, "--no-progress")
    assert_one_line_error(result, str(out), "not a directory")
    assert "fitted" not in result.stdout and "bug" not in result.stderr
    assert blocker.read_text() == "not a directory"
    # checked first: before the data is even read, so long before any training
    late = run("fit", "--graph", GRAPH, "--data", tmp_path / "absent.csv", "--out", out)
    assert_one_line_error(late, str(out))
    assert "absent.csv" not in late.stderr


def test_bool_nodes_take_0_and_1_and_integer_nodes_refuse_true(tmp_path):
    from deepscm.cli import CLIError, parse_interventions
    from deepscm.variables import Schema

    schema = Schema.infer(pd.DataFrame({"t": [True, False] * 5, "g": [0, 1] * 5}), ["t", "g"])
    assert parse_interventions(schema, ["t=1"])[0] == {"t": True}
    assert parse_interventions(schema, ["t=0", "g=1"])[0] == {"t": False, "g": 1}
    with pytest.raises(CLIError, match=r"no category 'True'; its categories are \[0, 1\]"):
        parse_interventions(schema, ["g=True"])


def test_do_names_a_node_with_spaces_plainly_or_quoted():
    from deepscm.cli import parse_interventions
    from deepscm.variables import Schema

    frame = pd.DataFrame({"blood pressure": np.linspace(90, 150, 20), "a=b": [0, 1] * 10})
    schema = Schema.infer(frame, list(frame.columns))
    out, texts = parse_interventions(schema, ["blood pressure=120", "'a=b'=1"])
    assert out == {"blood pressure": 120.0, "a=b": 1}
    _, texts = parse_interventions(schema, ['"blood pressure"="blood pressure"+5'])
    assert texts == ["blood pressure := blood pressure + 5"]


def test_unknown_node_in_do(files):
    assert_one_line_error(run("sample", files["model"], "-n", 5, "--do", "z=1"), "unknown node 'z'")


@pytest.mark.parametrize("spec", ["x1", "x1=", "=3", "x1=abc", "x1=x2+1"])
def test_unparsable_do(files, spec):
    assert_one_line_error(run("sample", files["model"], "-n", 5, "--do", spec), "--do")


def test_same_node_twice(files):
    result = run("sample", files["model"], "-n", 5, "--do", "x1=1", "--shift", "x1=+1")
    assert_one_line_error(result, "twice")


def test_missing_csv(files, tmp_path):
    result = run("fit", "--graph", GRAPH, "--data", tmp_path / "nope.csv", "--out", tmp_path / "m")
    assert_one_line_error(result, "does not exist")


def test_csv_with_an_extra_column(files, tmp_path):
    frame = read(files["data"]).assign(z=1.0)
    frame.to_csv(tmp_path / "extra.csv", index=False)
    result = run("fit", "--graph", GRAPH, "--data", tmp_path / "extra.csv", "--out", tmp_path / "m",
                 "--no-progress")
    assert_one_line_error(result, "'z'")
    assert not (tmp_path / "m").exists()


def test_csv_with_nan(files, tmp_path):
    frame = read(files["data"])
    frame.loc[[3, 7], "x2"] = np.nan
    frame.to_csv(tmp_path / "nan.csv", index=False)
    result = run("fit", "--graph", GRAPH, "--data", tmp_path / "nan.csv", "--out", tmp_path / "m",
                 "--no-progress")
    assert_one_line_error(result, "'x2'", "2 missing")


def test_units_with_nan_or_missing_column(files, tmp_path):
    units = read(files["units"])
    units.loc[0, "x1"] = np.nan
    units.to_csv(tmp_path / "nan.csv", index=False)
    units[["x1"]].to_csv(tmp_path / "short.csv", index=False)
    for path in ("nan.csv", "short.csv"):
        result = run("counterfactual", files["model"], "--data", tmp_path / path, "--do", "x1=1")
        assert_one_line_error(result)


def test_empty_csv(files, tmp_path):
    (tmp_path / "empty.csv").write_text("")
    result = run("fit", "--graph", GRAPH, "--data", tmp_path / "empty.csv", "--out", tmp_path / "m")
    assert_one_line_error(result, "empty")


def test_counterfactual_needs_an_intervention(files):
    assert_one_line_error(run("counterfactual", files["model"], "--data", files["units"]), "intervention")


def test_not_a_model(tmp_path):
    assert_one_line_error(run("sample", tmp_path / "missing", "-n", 5), "does not exist")
    (tmp_path / "junk").mkdir()
    assert_one_line_error(run("sample", tmp_path / "junk", "-n", 5), "model.json")


def test_graph_given_twice_or_not_at_all(files, tmp_path):
    args = ["--data", files["data"], "--out", tmp_path / "m"]
    assert_one_line_error(run("fit", *args), "--graph")
    assert_one_line_error(run("fit", "--graph", GRAPH, "--graph-file", files["data"], *args), "--graph")


@pytest.mark.parametrize(
    "args",
    [["fit", "--graph", GRAPH], ["sample"], ["sample", "m", "-n", "0"], ["sample", "m", "-n", "x"],
     ["nope"], ["fit", "--bogus"]],
)
def test_usage_errors_are_one_line(args):
    assert_one_line_error(run(*args))


# --------------------------------------------------------------------------- the demo
def test_demo_writes_report_plots_and_model(demo_dir):
    report = (demo_dir / "report.md").read_text()
    for png in ("observational.png", "interventional.png", "counterfactual.png", "graph.png"):
        assert (demo_dir / png).stat().st_size > 1000
        assert f"]({png})" in report
    for heading in ("Rung 1", "Rung 2", "Rung 3", "do(age = 80)"):
        assert heading in report
    results = json.loads((demo_dir / "results.json").read_text())
    assert {"association", "intervention", "counterfactual", "timings_s"} <= set(results)
    assert (demo_dir / "demo_model" / "model.json").is_file()


def test_demo_model_takes_categorical_interventions(demo_dir):
    model = demo_dir / "demo_model"
    result = run("sample", model, "-n", 20, "--do", "sex=male", "--seed", 0)
    assert result.exit_code == 0, result.output
    assert (read(result.stdout)["sex"] == "male").all()
    assert_one_line_error(run("sample", model, "-n", 5, "--do", "sex=other"), "female", "male")
    assert_one_line_error(run("sample", model, "-n", 5, "--shift", "sex=+1"), "continuous")
    cf = run("counterfactual", model, "--data", demo_dir / "patients.csv", "--do", "sex=female")
    assert cf.exit_code == 0, cf.output
    units, out = read(demo_dir / "patients.csv"), read(cf.stdout)
    assert (out["age"].to_numpy() == units["age"].to_numpy()).all()
    assert (out["sex"] == "female").all()


def test_the_demo_s_suggested_queries_run(demo_dir, tmp_path, monkeypatch):
    """Every sample and counterfactual command the demo prints works as printed."""
    import shlex

    from deepscm.studies.demo import _follow_ups

    monkeypatch.chdir(tmp_path)  # one of them writes shifted.csv to the working directory
    commands = [shlex.split(c) for c in _follow_ups(demo_dir, "unused")]
    queries = [c[1:] for c in commands if c[1] in ("sample", "counterfactual")]
    assert len(queries) == 5
    for args in queries:
        result = run(*args)
        assert result.exit_code == 0, (args, result.output)
    flagged = run(*next(q for q in queries if "--flag-support" in q))
    assert read(flagged.stdout).columns[-1] == "outside_support"
    assert "outside the training support" in flagged.stderr


def test_demo_refuses_a_foreign_non_empty_directory(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    result = run("demo", "--out", tmp_path, "--rows", 200, "--epochs", 1, "--no-progress")
    assert_one_line_error(result, "not empty")
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_identify_prints_the_estimand_or_the_hedge():
    runner = CliRunner()
    ok = runner.invoke(main, ["identify", "--graph", "s -> t; t -> c; s <-> c", "--query", "p(c | do(s))"])
    assert ok.exit_code == 0, ok.output
    assert "Σ_t P(t|s) Σ_s' P(c|s',t) P(s')" in ok.output
    assert "front-door" in ok.output
    bow = runner.invoke(main, ["identify", "--graph", "x -> y; x <-> y", "--query", "p(y | do(x))"])
    assert bow.exit_code == 3
    assert "not identifiable" in bow.output and "x <-> y" in bow.output
    bad = runner.invoke(main, ["identify", "--graph", "x -> y", "--query", "p(q | do(x))"])
    assert bad.exit_code == 2 and "'q'" in bad.output


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="needs pyarrow (deepscm[parquet])")
def test_fit_streams_a_parquet_file(tmp_path):
    """``--data file.parquet`` streams it: the fitted slope of x1 → x2 is the data's (3)."""
    df = load_scm("textbook").sample(1500, seed=1)
    path = tmp_path / "train.parquet"
    df.to_parquet(path)
    result = run("fit", "--graph", GRAPH, "--data", path, "--out", tmp_path / "m", "--epochs", 3,
                 "--mechanism", "linear", "--no-progress")
    assert result.exit_code == 0, result.output
    from deepscm import DeepSCM

    scm = DeepSCM.load(tmp_path / "m")
    assert scm.fit_info["rows"] == 1500 and scm.fit_info["stream"]["sample_rows"] >= 1
    slope = scm.sample(4000, do={"x1": 1.0}, seed=0)["x2"].mean() - scm.sample(4000, do={"x1": 0.0}, seed=0)["x2"].mean()
    assert slope == pytest.approx(3.0, abs=0.15)


def test_fit_lr_decay_is_checked_and_passed_on(files, tmp_path):
    """--lr-decay reaches DeepSCM.fit: a rate outside (0, 1] is refused by name, and the saved
    model equals the Python API's fit with the same lr_decay and seed."""
    bad = run("fit", "--graph", GRAPH, "--data", files["data"], "--out", tmp_path / "bad", "--lr-decay", 0)
    assert bad.exit_code != 0 and "lr-decay" in bad.output
    result = run("fit", "--graph", GRAPH, "--data", files["data"], "--out", tmp_path / "m", "--epochs", 3,
                 "--mechanism", "flow", "--lr-decay", 1, "--patience", 1, "--no-progress", "--seed", 2)
    assert result.exit_code == 0, result.output
    import deepscm as ds

    api = ds.DeepSCM(GRAPH, mechanisms="flow").fit(pd.read_csv(files["data"]), epochs=3, patience=1,
                                                  lr_decay=1.0, seed=2, progress=False)
    saved = ds.DeepSCM.load(tmp_path / "m")
    for node, mech in api.mechanisms.items():
        for a, b in zip(mech.state_dict().values(), saved.mechanisms[node].state_dict().values(), strict=True):
            assert torch.equal(a, b)
