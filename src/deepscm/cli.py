"""The ``deepscm`` command line: fit, sample, counterfactual and the demo.

Every command reads and writes plain CSV files (pandas) and model directories written by
:meth:`deepscm.DeepSCM.save`. Bad input of any kind — an invalid graph, a missing or malformed
file, a data column the graph does not know, an unparsable ``--do`` — ends with a one-line
``error: ...`` on stderr and exit status 2, never a traceback.

Interventions on the command line (``--do``, repeatable; no ``eval`` anywhere):

- ``--do "t=2"``: a hard intervention ``do(t := 2)``; for a discrete node the value is one of its
  category labels (``--do "sex=male"``, ``--do "treated=1"``; a True/False node also takes
  ``true``/``false`` in any case and ``1``/``0``);
- ``--do "t=t+1"`` (also ``t-1``, ``t*1.5``, ``t/2``): a shift of the node's natural value,
  ``t := f(pa, u) + 1`` (continuous nodes only); ``--shift "t=+1"`` is the same as ``t=t+1``.
- a node name with spaces is written as is (``--do "blood pressure=120"``) or quoted, which it
  must be when it holds ``=`` (``--do '"a=b"=1'``).

Adding a command: write a function decorated with ``@main.command()`` in the "commands"
section below; raise :class:`CLIError` (or let a :class:`~deepscm.errors.DeepSCMError`
propagate) for bad input — :class:`_Group` turns both into the one-line message.
"""

from __future__ import annotations

import math
import operator
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ._version import __version__
from .errors import DeepSCMError, DeepSCMWarning
from .mechanisms import registry

__all__ = ["CLIError", "csv_read_options", "main", "parse_interventions"]

#: exit status for bad input (click uses 2 for usage errors too).
EXIT_BAD_INPUT = 2
#: exit status for an unexpected internal error (a bug): see ``DEEPSCM_DEBUG``.
EXIT_INTERNAL = 1

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# =============================================================================== error handling
class CLIError(click.ClickException):
    """Bad input found by the CLI itself; shown as one line ``error: ...``, exit status 2."""

    exit_code = EXIT_BAD_INPUT


def _one_line(message: object) -> str:
    return " ".join(str(message).split()) or "(no message)"


def _fail(message: object, code: int = EXIT_BAD_INPUT) -> None:
    click.echo(f"error: {_one_line(message)}", err=True)
    sys.exit(code)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """deepscm's own warnings as one ``warning: ...`` line on stderr (no source location);
    any other warning as Python shows it."""
    if issubclass(category, DeepSCMWarning):
        click.echo(f"warning: {_one_line(message)}", err=True)
    else:
        _PYTHON_SHOWWARNING(message, category, filename, lineno, file, line)


_PYTHON_SHOWWARNING = warnings.showwarning


class _Group(click.Group):
    """A click group whose every failure is one line on stderr, as is each of deepscm's
    warnings (e.g. an :class:`~deepscm.ExtrapolationWarning`).

    A bare ``deepscm`` prints the help (exit status 0). Click's usage errors, :class:`CLIError`
    and the library's :class:`DeepSCMError` exit with status 2; an unexpected exception (a bug) exits with status 1 and a one-line summary, or
    re-raises with its traceback when the environment variable ``DEEPSCM_DEBUG`` is set.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as err:  # bare `deepscm`: the normal help
            click.echo(err.ctx.get_help())
            sys.exit(0)
        except click.UsageError as err:
            hint = f" (see '{err.ctx.command_path} --help')" if err.ctx is not None else ""
            _fail(f"{err.format_message()}{hint}", err.exit_code)
        except click.ClickException as err:
            _fail(err.format_message(), err.exit_code)
        except DeepSCMError as err:
            _fail(err)
        except (click.Abort, KeyboardInterrupt):
            _fail("interrupted", 130)
        except Exception as err:  # a bug: summarise it unless debugging
            if os.environ.get("DEEPSCM_DEBUG"):
                raise
            _fail(
                f"unexpected {type(err).__name__}: {err} — this is probably a bug in deepscm; "
                "rerun with DEEPSCM_DEBUG=1 for the traceback",
                EXIT_INTERNAL,
            )
        sys.exit(code if isinstance(code, int) else 0)


# =============================================================================== file helpers
def _read_csv(path: str | Path, what: str):
    """A CSV as a DataFrame; any failure becomes a :class:`CLIError` naming the file."""
    import pandas as pd

    path = Path(path)
    try:
        frame = pd.read_csv(path, **csv_read_options())
    except FileNotFoundError:
        raise CLIError(f"{what} file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise CLIError(f"{what} path {str(path)!r} is a directory, not a CSV file") from None
    except PermissionError:
        raise CLIError(f"cannot read {what} file {str(path)!r}: permission denied") from None
    except pd.errors.EmptyDataError:
        raise CLIError(f"{what} file {str(path)!r} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise CLIError(f"cannot parse {what} file {str(path)!r} as CSV: {err}") from None
    except OSError as err:
        raise CLIError(f"cannot read {what} file {str(path)!r}: {err.strerror or err}") from None
    unnamed = [c for c in frame.columns if str(c).startswith("Unnamed: ")]
    if unnamed:
        raise CLIError(
            f"{what} file {str(path)!r} has column(s) without a header {unnamed} (an index "
            "written by to_csv? write it with index=False)"
        )
    return frame


def csv_read_options() -> dict[str, Any]:
    """``read_csv`` options that read back exactly the floats ``to_csv`` wrote.

    pandas < 3 needs the round-trip parser for that; pandas 3 parses exactly by default and
    deprecates the option.
    """
    import pandas as pd

    return {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


def _write_csv(frame, out: str | None, index: bool = False) -> None:
    """Write ``frame`` to ``out``, or to stdout when ``out`` is ``None`` or ``-``."""
    if out is None or out == "-":
        frame.to_csv(sys.stdout, index=index)
        return
    path = Path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=index)
    except OSError as err:
        raise CLIError(f"cannot write {str(path)!r}: {err.strerror or err}") from None


def _check_out_dir(out: str) -> None:
    """Raise :class:`CLIError` unless ``out`` is a writable directory or can be created as one.

    Creates nothing, so a fit that fails on its data leaves no empty directory behind.
    """
    path = Path(out)
    real = Path(os.path.abspath(path))
    shown = repr(str(path)) + (f" ({str(real)!r})" if str(real) != str(path) else "")
    if path.exists() and not path.is_dir():
        raise CLIError(f"--out {shown} is a file, not a directory; give a directory for the model")
    parent = real
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise CLIError(f"cannot create --out {shown}: {str(parent)!r} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        what = "write to" if parent == real else f"create {str(real)!r} in"
        raise CLIError(f"cannot save the model to --out {shown}: no permission to {what} {str(parent)!r}")


def _read_graph(graph: str | None, graph_file: str | None) -> str:
    if (graph is None) == (graph_file is None):
        raise CLIError("give the causal graph with exactly one of --graph or --graph-file")
    if graph is not None:
        return graph
    try:
        text = Path(graph_file).read_text()
    except FileNotFoundError:
        raise CLIError(f"graph file {graph_file!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise CLIError(f"cannot read graph file {graph_file!r}: {err}") from None
    # '#' outside quotes starts a comment; statements are separated by newlines or ';'
    return "\n".join(_COMMENT_RE.sub(lambda m: m.group(1) or "", line) for line in text.splitlines())


_COMMENT_RE = re.compile(r"""#.*$|("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")


def _load_model(path: str, device: str = "cpu"):
    from .scm import DeepSCM

    if not Path(path).exists():
        raise CLIError(f"model directory {path!r} does not exist (write one with 'deepscm fit')")
    scm = DeepSCM.load(path, device=_device(device))
    images = [v.name for v in scm.schema if v.is_image]
    if images:
        raise CLIError(
            f"the model has image node(s) {images}, which a CSV file cannot hold; use the Python "
            f"API: deepscm.DeepSCM.load({path!r}).sample(...) returns the images as arrays"
        )
    return scm


def _device(device: str):
    """Resolve ``--device`` and check that it is usable, as a CLI error if not."""
    import torch

    from .training import resolve_device

    try:
        dev = resolve_device(device)
        torch.zeros(1, device=dev)
    except (RuntimeError, AssertionError, ValueError) as err:
        raise CLIError(f"device {device!r} is not usable here: {_one_line(err)}") from None
    return dev


# =============================================================================== interventions
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
# NODE=VALUE; NODE may be quoted ("blood pressure"=120) and then hold '=' itself
_ASSIGN_RE = re.compile(
    r"""^\s*(?:"(?P<dq>(?:[^"\\]|\\.)*)"|'(?P<sq>(?:[^'\\]|\\.)*)'|(?P<bare>[^=]*?))\s*=\s*(?P<rhs>.*?)\s*$""",
    re.DOTALL,
)
_OPS: dict[str, Callable[[Any, float], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}


@dataclass(frozen=True)
class _ParsedDo:
    node: str
    value: Any  # a constant, or a deepscm.Shift
    text: str  # how it reads in messages, e.g. "age := age + 10"


def parse_interventions(
    schema, do: Sequence[str] = (), shift: Sequence[str] = ()
) -> tuple[dict[str, Any], list[str]]:
    """Turn ``--do``/``--shift`` strings into ``{node: value or Shift}`` for ``schema``.

    Returns the mapping and a readable description of each intervention. Raises
    :class:`CLIError` naming the offending string on any problem.
    """
    parsed = [_parse_do(schema, s) for s in do] + [_parse_shift(schema, s) for s in shift]
    out: dict[str, Any] = {}
    for item in parsed:
        if item.node in out:
            raise CLIError(f"node {item.node!r} is intervened on twice; give one --do/--shift per node")
        out[item.node] = item.value
    return out, [p.text for p in parsed]


def _split(spec: str, flag: str, schema) -> tuple[str, str]:
    match = _ASSIGN_RE.match(spec)
    node = None
    if match is not None:
        quoted = match["dq"] if match["dq"] is not None else match["sq"]
        node = match["bare"] if quoted is None else re.sub(r"\\(.)", r"\1", quoted)
    if not node or not match["rhs"]:
        raise CLIError(f"cannot parse {flag} {spec!r}: write NODE=VALUE, e.g. {flag} \"t=2\"")
    rhs = match["rhs"]
    names = list(schema.variables)
    if node not in schema.variables:
        raise CLIError(f"{flag} {spec!r} names unknown node {node!r}; the model's nodes are {names}")
    return node, rhs


def _parse_do(schema, spec: str) -> _ParsedDo:
    from .interventions import Shift

    node, rhs = _split(spec, "--do", schema)
    var = schema[node]
    name = re.escape(node)
    shift = re.fullmatch(rf"(?:{name}|\"{name}\"|'{name}')\s*([-+*/])\s*({_NUMBER})", rhs)
    if shift:
        op, number = shift.group(1), float(shift.group(2))
        if var.discrete:
            raise CLIError(f"--do {spec!r}: {node!r} is {var.kind}; arithmetic needs a continuous node")
        if op == "/" and number == 0:
            raise CLIError(f"--do {spec!r} divides by zero")
        fn = _OPS[op]
        return _ParsedDo(node, Shift(lambda x, fn=fn, c=number: fn(x, c)), f"{node} := {node} {op} {number:g}")
    if var.discrete:
        label = _match_category(var, rhs.strip("'\""), spec)
        return _ParsedDo(node, label, f"{node} := {label}")
    if var.dim > 1:
        raise CLIError(f"--do {spec!r}: {node!r} is a vector of {var.dim} columns; the CLI sets scalars only")
    try:
        value = float(rhs)
    except ValueError:
        raise CLIError(
            f"--do {spec!r}: {node!r} is continuous and {rhs!r} is not a number (a shift is "
            f"written '{node}={node}+1' or --shift '{node}=+1')"
        ) from None
    if not math.isfinite(value):
        raise CLIError(f"--do {spec!r}: the value must be a finite number")
    return _ParsedDo(node, value, f"{node} := {value:g}")


def _parse_shift(schema, spec: str) -> _ParsedDo:
    from .interventions import Shift

    node, rhs = _split(spec, "--shift", schema)
    var = schema[node]
    if var.discrete:
        raise CLIError(f"--shift {spec!r}: {node!r} is {var.kind}; a shift needs a continuous node")
    if not re.fullmatch(_NUMBER, rhs):
        raise CLIError(f"--shift {spec!r}: write NODE=+DELTA or NODE=-DELTA, e.g. --shift \"{node}=+1\"")
    delta = float(rhs)
    sign = "-" if delta < 0 else "+"
    return _ParsedDo(node, Shift(lambda x, d=delta: x + d), f"{node} := {node} {sign} {abs(delta):g}")


def _match_category(var, text: str, spec: str) -> Any:
    """The category label of ``var`` that ``text`` names (by its printed form, or by number)."""
    cats = list(var.categories or [])
    for cat in cats:
        if str(cat) == text:
            return cat
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:
        for cat in cats:
            if isinstance(cat, (int, float)) and not isinstance(cat, bool) and cat == number:
                return cat
    for cat in cats:  # booleans read from CSV as True/False; accept any case
        if isinstance(cat, bool) and str(cat).lower() == text.lower():
            return cat
    if cats and all(isinstance(c, bool) for c in cats) and number in (0.0, 1.0):
        return bool(number)  # a bool node takes 0/1, like the Python API
    raise CLIError(f"--do {spec!r}: {var.name!r} has no category {text!r}; its categories are {cats}")


# =============================================================================== option helpers
_do_option = click.option(
    "--do", "do", multiple=True, metavar="NODE=VALUE",
    help="Intervention, repeatable: a constant ('t=2', 'sex=male') or a shift of the natural "
    "value ('t=t+1', 't=t*1.1').",
)
_shift_option = click.option(
    "--shift", "shift", multiple=True, metavar="NODE=±DELTA",
    help="Shift intervention, repeatable: 't=+1' means t := t + 1 (same as --do 't=t+1').",
)
_device_option = click.option(
    "--device", default="cpu", show_default=True, help="torch device: cpu, cuda, cuda:1, mps or auto."
)


def _threads_option(default: int | None = None):
    return click.option(
        "--threads", type=click.IntRange(min=1), default=default, show_default=default is not None,
        help="torch CPU threads (default: torch's choice). Small networks train fastest on one, "
        "especially when other processes share the cores.",
    )


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


SUPPORT_COLUMN = "outside_support"

_flag_support_option = click.option(
    "--flag-support", is_flag=True, default=False,
    help=f"Append a column '{SUPPORT_COLUMN}' naming, per row, the nodes whose parents take a "
         "combination unlike any in the training data (';'-separated; empty when none): the "
         "rows where those nodes' mechanisms extrapolate.")


def _check_support_column(scm) -> None:
    """Refuse ``--flag-support`` before any work when the model has a column of its name."""
    if SUPPORT_COLUMN in scm.schema.columns:
        raise CLIError(f"--flag-support writes a column {SUPPORT_COLUMN!r}, which is already a "
                       "column of the model; leave out --flag-support")


def _flag_support(scm, frame):
    """``frame`` with the :data:`SUPPORT_COLUMN` column: per row, the nodes that the query
    changes through their parents (those of ``frame.attrs["off_support"]``) whose parent
    combination :meth:`deepscm.DeepSCM.outside_support` puts outside the training support."""
    checked = list(frame.attrs.get("off_support", {}))
    out = frame.copy()
    if not checked:
        out[SUPPORT_COLUMN] = ""
        return out
    flags = scm.outside_support(frame)[checked].to_numpy()
    out[SUPPORT_COLUMN] = [";".join(n for n, f in zip(checked, row) if f) for row in flags]
    return out


def _flag_note(frame) -> str:
    """`` (K row(s) outside ...)`` for the stderr line of a --flag-support query."""
    if SUPPORT_COLUMN not in frame.columns:
        return ""
    flagged = int((frame[SUPPORT_COLUMN] != "").sum())
    return f"; {flagged} of {len(frame)} row(s) outside the training support (column {SUPPORT_COLUMN!r})"


def _describe(texts: list[str]) -> str:
    return f"do({', '.join(texts)})" if texts else "no intervention"


# =============================================================================== commands
@click.group(cls=_Group, context_settings=_CONTEXT)
@click.version_option(__version__, "--version", "-V", prog_name="deepscm")
def main() -> None:
    """deepscm: deep structural causal models.

    Fit one neural mechanism per node of a causal graph to a CSV file, then sample from it
    observationally or under interventions, and compute counterfactuals of observed units.

    \b
    Start with the demo:  deepscm demo
    Then, on your data:   deepscm fit --graph "t -> y" --data data.csv --out model/
                          deepscm sample model/ -n 1000 --do "t=2" --out samples.csv
                          deepscm counterfactual model/ --data units.csv --do "t=5"
    """


@main.command(context_settings=_CONTEXT)
@click.option("--graph", "graph", metavar="EDGES",
              help="Causal graph, e.g. 'a -> b; b -> c; a -> c'; quote names with spaces: "
              "'\"blood pressure\" -> y'.")
@click.option("--graph-file", "graph_file", metavar="FILE",
              help="File holding the graph (one edge statement per line; '#' comments).")
@click.option("--data", "data", required=True, metavar="CSV|PARQUET",
              help="Training data; one column per node. A .parquet file or a directory of them is "
                   "streamed in chunks (needs pyarrow).")
@click.option("--out", "out", required=True, metavar="DIR", help="Directory to save the fitted model to.")
@click.option("--epochs", type=click.IntRange(min=1), default=300, show_default=True,
              help="Maximum epochs (each node stops early on held-out likelihood).")
@click.option("--batch-size", type=click.IntRange(min=1), default=512, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=5e-3, show_default=True,
              help="Adam learning rate.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.1,
              show_default=True, help="Rows held out for early stopping.")
@click.option("--patience", type=click.IntRange(min=1), default=20, show_default=True,
              help="Epochs without held-out improvement before a node stops.")
@click.option("--lr-decay", type=click.FloatRange(0, 1, min_open=True), default=0.5, show_default=True,
              help="Factor on a node's learning rate after each patience/4 epochs without "
                   "improvement (at most 3 times); 1 keeps it constant.")
@click.option("--mechanism", type=click.Choice(registry.names(), case_sensitive=False), default="auto",
              show_default=True,
              help="Mechanism of every node it can model, from the registry; 'auto' (and every "
                   "node it cannot model) selects per node by held-out likelihood.")
@click.option("--categorical", multiple=True, metavar="NODE",
              help="Treat NODE as categorical (repeatable); overrides the inferred kind.")
@click.option("--continuous", multiple=True, metavar="NODE",
              help="Treat NODE as continuous (repeatable); overrides the inferred kind.")
@_device_option
@click.option("--devices", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes (CPU) or GPUs for a data-parallel fit; under torchrun, the launcher's.")
@click.option("--strategy", type=click.Choice(["auto", "ddp"]), default="auto", show_default=True,
              help="'ddp': data-parallel even with --devices 1 (e.g. under torchrun).")
@_threads_option()
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Show a progress bar on stderr.")
def fit(graph, graph_file, data, out, epochs, batch_size, lr, seed, val_fraction, patience,
        lr_decay, mechanism, categorical, continuous, device, devices, strategy, threads, progress) -> None:
    """Fit a deep SCM to a CSV file and save it to a directory.

    \b
    Example:
      deepscm fit --graph "age -> brain; age -> ventricles; brain -> ventricles" \\
                  --data patients.csv --out model/
    """
    from .graph import CausalGraph
    from .scm import DeepSCM

    started = time.perf_counter()
    _check_out_dir(out)
    cgraph = CausalGraph(_read_graph(graph, graph_file))
    both = set(categorical) & set(continuous)
    if both:
        raise CLIError(f"node(s) {sorted(both)} are given both --categorical and --continuous")
    variables = dict.fromkeys(categorical, "categorical") | dict.fromkeys(continuous, "continuous")
    unknown = sorted(set(variables) - set(cgraph.nodes))
    if unknown:
        raise CLIError(f"--categorical/--continuous name unknown node(s) {unknown}; the graph has {cgraph.nodes}")
    streamed = Path(data).suffix == ".parquet" or Path(data).is_dir()
    source = data if streamed else _read_csv(data, "data")
    dev = _device(device)
    _set_threads(threads)
    scm = DeepSCM(cgraph, mechanisms=mechanism, variables=variables)
    scm.fit(source, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=dev,
            val_fraction=val_fraction, patience=patience, lr_decay=lr_decay, progress=progress,
            devices=devices, strategy=strategy)
    if os.environ.get("RANK", "0") != "0":  # under torchrun every rank fits; rank 0 saves
        return
    scm.to("cpu").save(out)
    click.echo(_fit_summary(scm, out, time.perf_counter() - started))


def _fit_summary(scm, out: str, seconds: float) -> str:
    info, history = scm.fit_info, scm.history
    lines = [
        (
            f"fitted {len(scm.graph.nodes)} node(s) on {info['rows']} rows: "
            f"{info['epochs_run']} epoch(s) run, {info['seconds']:.1f} s training, "
            f"{seconds:.1f} s in all"
        ),
        f"graph: {scm.graph}",
        "",
        f"{'node':<20} {'kind':<12} {'mechanism':<16} {'best epoch':>10} {'held-out log-lik':>17}",
    ]
    for node in scm.graph.nodes:
        var = scm.schema[node]
        ll = info.get("val_log_prob", {}).get(node)
        ll_text = "-" if ll is None else f"{ll:.3f}"
        selection = info.get("selection", {}).get(node)
        term = node if selection is None else f"{node} [{selection['chosen']}]"
        best = history.best_epoch.get(term) if history is not None else None
        lines.append(
            f"{node:<20} {var.kind:<12} {type(scm.mechanisms[node]).__name__:<16} "
            f"{'-' if best is None else best + 1:>10} {ll_text:>17}"
        )
    lines += ["(held-out log-lik: mean log p(x_i | pa_i) per row, nats, in the data's units)",
              f"saved to {out}"]
    return "\n".join(lines)


@main.command(context_settings=_CONTEXT)
@click.argument("model", metavar="MODEL_DIR")
@click.option("-n", "n", type=click.IntRange(min=1), required=True, help="Number of samples.")
@_do_option
@_shift_option
@click.option("--seed", type=int, default=None, help="Random seed (default: fresh randomness).")
@click.option("--out", "out", metavar="CSV", default=None, help="Output CSV (default: stdout).")
@_flag_support_option
@_device_option
def sample(model, n, do, shift, seed, out, flag_support, device) -> None:
    """Draw samples from a fitted model, observational or under --do/--shift.

    \b
    Examples:
      deepscm sample model/ -n 1000 --out samples.csv
      deepscm sample model/ -n 1000 --do "t=2" --do "sex=female"
      deepscm sample model/ -n 1000 --do "age=age+10"      (or --shift "age=+10")
      deepscm sample model/ -n 1000 --do "age=80" --flag-support
    """
    scm = _load_model(model, device)
    if flag_support:
        _check_support_column(scm)
    interventions, texts = parse_interventions(scm.schema, do, shift)
    frame = scm.sample(n, do=interventions or None, seed=seed)
    if flag_support:
        frame = _flag_support(scm, frame)
    _write_csv(frame, out)
    if out not in (None, "-"):
        click.echo(f"wrote {len(frame)} samples under {_describe(texts)} to {out}{_flag_note(frame)}", err=True)


@main.command(context_settings=_CONTEXT)
@click.argument("model", metavar="MODEL_DIR")
@click.option("--data", "data", required=True, metavar="CSV",
              help="Observed units (every column of the model).")
@_do_option
@_shift_option
@click.option("--n-samples", type=click.IntRange(min=1), default=1, show_default=True,
              help="Draws per unit; >1 matters where abduction is stochastic (categorical nodes).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out", metavar="CSV", default=None, help="Output CSV (default: stdout).")
@_flag_support_option
@_device_option
def counterfactual(model, data, do, shift, n_samples, seed, out, flag_support, device) -> None:
    """Counterfactuals of observed units: what would they have been under --do/--shift?

    Abduction, action, prediction: each unit's noise is inferred from its observed values, the
    intervention is applied, and the descendants of the intervened nodes are recomputed; every
    other column is returned unchanged. With --n-samples K > 1 the output has K rows per unit
    and leading 'unit' and 'draw' columns. A one-line note on stderr says which columns are
    unchanged (factual), unique (point) or draws from a distribution (draws). With
    --flag-support a last column names the nodes whose counterfactual parents were never seen
    together in the training data (e.g. "ventricle_volume"), per row.

    \b
    Example:
      deepscm counterfactual model/ --data units.csv --do "age=80" --out cf.csv
      deepscm counterfactual model/ --data units.csv --do "age=80" --flag-support
    """
    scm = _load_model(model, device)
    if flag_support:
        _check_support_column(scm)
    interventions, texts = parse_interventions(scm.schema, do, shift)
    if not interventions:
        raise CLIError("counterfactual needs an intervention: give --do NODE=VALUE or --shift NODE=+DELTA")
    units = _read_csv(data, "units")
    result = scm.counterfactual(units, do=interventions, n_samples=n_samples, seed=seed)
    kinds = result.attrs.get("abduction", {})
    if flag_support:
        result = _flag_support(scm, result)
    if n_samples > 1:
        result = result.reset_index()
        result = result.rename(columns={result.columns[0]: "unit"})
    _write_csv(result, out)
    groups = {k: [c for c, v in kinds.items() if v == k] for k in ("factual", "exact", "approximate", "draws")}
    note = "; ".join(f"{k}: {', '.join(cols)}" for k, cols in groups.items() if cols)
    where = f" to {out}" if out not in (None, "-") else ""
    click.echo(f"wrote counterfactuals of {len(units)} unit(s) under {_describe(texts)}{where} ({note})"
               f"{_flag_note(result)}", err=True)


@main.command(context_settings=_CONTEXT)
@click.option("--example", type=click.Choice(["medical", "morpho"]), default="medical", show_default=True,
              help="medical: brain-MRI volumes (tabular); morpho: the Morpho-digits image case study "
                   "of Deep SCMs (three models, counterfactual images).")
@click.option("--out", "out", default=None, metavar="DIR",
              help="Output directory (default: deepscm-demo, or deepscm-morpho for --example morpho).")
@click.option("--rows", type=click.IntRange(min=100), default=None,
              help="Training rows drawn from the ground-truth SCM (default 5000; morpho 12000).")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Maximum epochs; early stopping usually ends the fit before (default 300; morpho 40).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the data split, fit and samples.")
@click.option("--eval-samples", type=click.IntRange(min=100), default=20_000, show_default=True,
              help="Samples per distribution compared with the truth (medical).")
@click.option("--source", type=click.Path(exists=True), default=None,
              help="morpho: MNIST IDX images (file or folder) instead of scikit-learn's digits.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads (default: 1 for medical, whose small networks train fastest on "
                   "one; torch's choice for morpho's convolutions).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def demo(example, out, rows, epochs, seed, eval_samples, source, threads, progress) -> None:
    """Fit a deep SCM to data from a known SCM and check all three rungs against the truth.

    medical (default): sex, age, brain and ventricle volume from a known structural causal
    model, so every answer — observational, interventional, counterfactual — is printed beside
    the exact one. Writes report.md, PNG plots, the data and the fitted model (demo_model/) to
    --out. Takes about half a minute on two CPU cores.

    morpho: the Morpho-digits case study of Pawlowski et al. 2020 — independent, conditional
    and full models with a conditional VAE for the image; log-likelihoods, counterfactual
    image error against the true counterfactual, interventional densities and an image grid.
    The full study takes up to half an hour on two CPU cores; --rows 2000 --epochs 5 gives a
    quick look.
    """
    if example == "morpho":
        from .studies.morpho import MorphoSettings, run_morpho_study

        defaults = MorphoSettings()
        run_morpho_study(
            MorphoSettings(out=out or "deepscm-morpho", n_train=rows or defaults.n_train,
                           epochs=epochs or defaults.epochs, seed=seed, source=source,
                           threads=threads, progress=progress),
            echo=click.echo,
        )
        return
    from .studies.demo import DemoSettings, run_demo

    run_demo(DemoSettings(out=Path(out or "deepscm-demo"), rows=rows or 5000, epochs=epochs or 300,
                         seed=seed, progress=progress, eval_samples=eval_samples, threads=threads or 1),
             echo=click.echo)


EXIT_NOT_IDENTIFIABLE = 3


@main.command()
@click.option("--graph", "graph", default=None, help='Edges, e.g. "x -> m; m -> y; x <-> y".')
@click.option("--graph-file", type=click.Path(dir_okay=False), default=None,
              help="A file holding the edges (one per line or ';'-separated).")
@click.option("--query", required=True, help='The causal query, e.g. "p(y | do(x))" or "p(y | do(x), z)".')
@click.option("--latex", is_flag=True, help="Also print the estimand as LaTeX.")
def identify(graph, graph_file, query, latex) -> None:
    """Say whether a causal query is identifiable from observational data, and by which formula.

    Runs the ID/IDC algorithm (Shpitser & Pearl 2006). Prints the estimand and, when one
    applies, the back-door or front-door shortcut; exit status 0. When the query is not
    identifiable, prints the hedge (which latent confounders block it) and exits with status 3.
    """
    from .errors import NotIdentifiableError
    from .identification import identify as run_identify

    try:
        estimand = run_identify(_read_graph(graph, graph_file), query)
    except NotIdentifiableError as err:
        click.echo(f"not identifiable: {err}")
        raise SystemExit(EXIT_NOT_IDENTIFIABLE) from None
    click.echo(str(estimand))
    if estimand.shortcut_text:
        click.echo(estimand.shortcut_text)
    if latex:
        click.echo(estimand.to_latex())


if __name__ == "__main__":  # pragma: no cover
    main()
