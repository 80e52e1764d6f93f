"""Training data larger than memory: :meth:`DeepSCM.fit` on a Parquet file or directory, or a
``pyarrow.dataset.Dataset``, streamed in chunks (needs ``pip install deepscm[parquet]``).

A streamed fit has two stages:

1. **Sample.** The first :data:`SAMPLE_ROWS` rows are read into memory. A random
   ``val_fraction`` of them is held out (never trained on); the rest are fitted in memory
   exactly as ``fit(df)`` would: the schema (kinds, categories, standardisation) is inferred,
   ``mechanisms="auto"`` selects per node, and closed-form mechanisms (linear, boosted trees)
   are fitted. Closed-form mechanisms stay fitted on this sample.
2. **Stream.** The gradient-trained mechanisms (flows, VAEs, diffusion, …) keep training from
   those weights on mini-batches drawn from the whole dataset, read :data:`CHUNK_ROWS` rows at
   a time and shuffled within each chunk, for ``epochs`` passes with early stopping on the
   held-out sample rows. Every chunk is checked against the schema: a missing column, NaN, a
   value outside the support or an unseen category raises :class:`DataError` naming the chunk
   and the first offending row (0-based, in dataset order).

Rows are shuffled only within a chunk: shuffle a file that is sorted (by time, by group)
before streaming it. With ``devices=2, strategy="ddp"`` every process reads the stream and
trains on its share of each mini-batch (:mod:`deepscm.distributed`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .errors import ConfigError, DataError
from .graph import CausalGraph
from .mechanisms.base import Mechanism
from .scm.engine import parent_context
from .training import Term, evaluate, train
from .variables import Schema

__all__ = ["CHUNK_ROWS", "SAMPLE_ROWS", "Stream", "check", "chunks", "fit", "is_source", "open_dataset"]

#: rows read into memory for the schema, mechanism selection, closed-form fits and held-out rows.
SAMPLE_ROWS = 20_000
#: rows read, checked, encoded and shuffled at once while streaming.
CHUNK_ROWS = 65_536


def is_source(data: Any) -> bool:
    """Whether ``fit`` should stream ``data``: a path, or a pyarrow dataset or table."""
    return isinstance(data, (str, Path)) or type(data).__module__.startswith("pyarrow")


def open_dataset(source: Any) -> Any:
    """A ``pyarrow.dataset.Dataset`` for a Parquet path (file or directory) or a pyarrow
    object; :class:`ConfigError` when pyarrow is not installed."""
    try:
        import pyarrow.dataset as pads
    except ImportError:
        raise ConfigError(
            "streaming training data from Parquet needs pyarrow: pip install deepscm[parquet] "
            "(or pass a pandas DataFrame)"
        ) from None
    if isinstance(source, pads.Dataset):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise DataError(f"no Parquet file or directory at {str(path)!r}")
        try:
            return pads.dataset(str(path), format="parquet")
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read {str(path)!r} as Parquet: {err}") from None
    try:
        return pads.dataset(source)
    except (TypeError, ValueError) as err:
        raise DataError(f"cannot stream a {type(source).__name__}: {err}") from None


def chunks(dataset: Any, rows: int | None = None) -> Iterator[tuple[int, pd.DataFrame]]:
    """``(offset, frame)`` of about ``rows`` rows at a time, in dataset order; a part of the
    dataset (file) that lacks one of the dataset's columns is a :class:`DataError`."""
    import pyarrow as pa

    rows = rows or CHUNK_ROWS
    columns = dataset.schema.names
    pending, count, offset = [], 0, 0
    for i, fragment in enumerate(dataset.get_fragments()):
        missing = [c for c in columns if c not in fragment.physical_schema.names]
        if missing:
            where = getattr(fragment, "path", f"part {i}")
            raise DataError(
                f"{where} (from row {offset + count}) lacks column(s) {missing}; every part of "
                "the dataset needs the same columns"
            )
        for batch in fragment.to_batches(columns=columns, batch_size=rows):
            pending.append(batch)
            count += batch.num_rows
            if count >= rows:
                yield offset, pa.Table.from_batches(pending).to_pandas()
                pending, offset, count = [], offset + count, 0
    if count:
        yield offset, pa.Table.from_batches(pending).to_pandas()


def check(schema: Schema, frame: pd.DataFrame, offset: int) -> None:
    """:meth:`Schema.check` of one streamed chunk, naming it and its first bad row."""
    role = f"streamed chunk (rows {offset}-{offset + len(frame) - 1})"
    try:
        schema.check(frame, role)
    except DataError as err:
        if any(c not in frame.columns for c in schema.columns):
            raise
        lo, hi = 1, len(frame)  # the shortest failing prefix ends at the first bad row
        while lo < hi:
            mid = (lo + hi) // 2
            try:
                schema.check(frame.iloc[:mid], role)
                lo = mid + 1
            except DataError:
                hi = mid
        raise DataError(f"{err} (first at row {offset + lo - 1} of the dataset)") from None


class Stream:
    """One epoch of mini-batches per call (a :data:`deepscm.training.Batches` source): each
    chunk is checked, encoded into :attr:`values`/:attr:`contexts`, shuffled, and its rows
    yielded ``batch_size`` at a time; rows in ``exclude`` (held out) are skipped."""

    def __init__(self, dataset: Any, schema: Schema, graph: CausalGraph, device: torch.device,
                 batch_size: int, exclude: np.ndarray, chunk_rows: int | None = None) -> None:
        self.dataset, self.schema, self.graph, self.device = dataset, schema, graph, device
        self.batch_size, self.exclude = batch_size, np.sort(exclude)
        self.chunk_rows = chunk_rows or CHUNK_ROWS
        self.values: dict[str, torch.Tensor] = {}
        self.contexts: dict[str, torch.Tensor] = {}
        self.rows = 0  # rows trained on per epoch (after the first epoch)
        self.ranges: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, generator: torch.Generator) -> Iterator[torch.Tensor]:
        rows = 0
        for offset, frame in chunks(self.dataset, self.chunk_rows):
            check(self.schema, frame, offset)
            self._track_ranges(frame)
            held = self.exclude[(self.exclude >= offset) & (self.exclude < offset + len(frame))] - offset
            if len(held):
                frame = frame.drop(index=frame.index[held])
            if not len(frame):
                continue
            self.values = {v.name: v.encode(frame, self.device) for v in self.schema}
            self.contexts = {
                n: parent_context(self.graph, self.schema, n, self.values, len(frame), self.device)
                for n in self.graph.nodes
            }
            rows += len(frame)
            order = torch.randperm(len(frame), generator=generator, device=generator.device)
            for first in range(0, len(order), self.batch_size):
                yield order[first : first + self.batch_size]
        self.rows = rows

    def _track_ranges(self, frame: pd.DataFrame) -> None:
        for v in self.schema:
            if v.kind == "continuous":
                x = frame[v.columns].to_numpy(np.float64)
                lo, hi = x.min(axis=0), x.max(axis=0)
                if v.name in self.ranges:
                    lo, hi = np.minimum(lo, self.ranges[v.name][0]), np.maximum(hi, self.ranges[v.name][1])
                self.ranges[v.name] = (lo, hi)


def fit(scm: Any, source: Any, options: Mapping[str, Any]) -> Any:
    """The streamed :meth:`DeepSCM.fit` (see the module docstring); returns ``scm``, or
    leaves it as it was when the fit fails."""
    dataset = open_dataset(source)
    saved = dict(scm.__dict__)
    try:
        return _fit(scm, dataset, dict(options))
    except BaseException:
        scm.__dict__.clear()
        scm.__dict__.update(saved)
        raise


def _fit(scm: Any, dataset: Any, options: dict[str, Any]) -> Any:
    from .scm.model import _closed_form

    started = time.perf_counter()
    seed, val_fraction = options["seed"], options["val_fraction"]
    head = []
    for _, frame in chunks(dataset, min(CHUNK_ROWS, SAMPLE_ROWS)):
        head.append(frame)
        if sum(map(len, head)) >= SAMPLE_ROWS:
            break
    if not head:
        raise DataError("the training data has no rows")
    sample = pd.concat(head, ignore_index=True).iloc[:SAMPLE_ROWS]
    order = np.random.default_rng(seed).permutation(len(sample))
    n_val = int(round(val_fraction * len(sample)))
    held, fitted = np.sort(order[:n_val]), np.sort(order[n_val:])
    scm.fit(sample.iloc[fitted].reset_index(drop=True), **options)  # selection, closed forms, warm start
    schema, dev, graph = scm.schema, scm.device, scm.graph
    sample_info = scm.fit_info

    def encoded(frame: pd.DataFrame) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        values = {v.name: v.encode(frame, dev) for v in schema}
        return values, {n: parent_context(graph, schema, n, values, len(frame), dev) for n in graph.nodes}

    val_x, val_ctx = encoded(sample.iloc[held]) if n_val else ({}, {})
    stream = Stream(dataset, schema, graph, dev, options["batch_size"], held)
    trained = {n: m for n, m in scm.mechanisms.items() if not _closed_form(m)}
    generator = torch.Generator(device=dev).manual_seed(seed)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        terms = {n: _term(m, n, stream, val_x, val_ctx, options["lr"], generator) for n, m in trained.items()}
        if terms:
            history = train(
                terms, stream, torch.arange(n_val, device=dev) if n_val else None,
                epochs=options["epochs"], batch_size=options["batch_size"], lr=options["lr"],
                generator=generator, patience=options["patience"], lr_decay=options["lr_decay"],
                progress=options["progress"],
                desc="fitting DeepSCM (streamed)",
            )
        else:  # nothing to train: one pass still checks every chunk and finds the ranges
            for _ in stream(generator):
                pass
            history = scm.history
        fit_x, fit_ctx = encoded(sample.iloc[fitted])
        for n, mech in trained.items():
            mech.after_fit(fit_x[n], fit_ctx[n])
            mech.eval()
    scm.history = history
    scm.ranges = {n: (lo.tolist(), hi.tolist()) for n, (lo, hi) in stream.ranges.items()}
    info = dict(sample_info)
    info.update({
        "rows": stream.rows + n_val,
        "epochs_run": history.epochs_run,
        "seconds": round(time.perf_counter() - started, 3),
        "stream": {
            "sample_rows": len(sample), "held_out_rows": n_val, "streamed_rows": stream.rows,
            "chunk_rows": stream.chunk_rows, "streamed_nodes": sorted(trained),
            "sample_epochs_run": sample_info.get("epochs_run"),
        },
    })
    if n_val:  # held-out scores of the final model on the held-out sample rows
        scores = {
            n: evaluate(m, lambda r, m=m, n=n: m.validation_score(val_x[n][r], val_ctx[n][r]),
                        torch.arange(n_val, device=dev))
            for n, m in scm.mechanisms.items()
        }
        info["validation"] = {
            n: {"metric": scm.mechanisms[n].validation_metric, "score": s} for n, s in scores.items()
        }
        info["val_log_prob"] = {
            n: -s + float(schema[n].log_jacobian_rows(val_x[n]).mean())
            for n, s in scores.items()
            if scm.mechanisms[n].likelihood != "none" and scm.mechanisms[n].validation_metric == "nll"
        }
    scm.fit_info = info
    return scm


def _term(mech: Mechanism, node: str, stream: Stream, val_x: Mapping[str, torch.Tensor],
          val_ctx: Mapping[str, torch.Tensor], lr: float, generator: torch.Generator) -> Term:
    """A node's training term on the stream's current chunk, scored on the held-out rows, with
    the mechanism's patience factor as in an in-memory fit."""
    score = lambda r: mech.validation_score(val_x[node][r], val_ctx[node][r])  # noqa: E731
    if mech.uses_default_step:
        return Term(mech, score=score, loss=lambda r: mech.loss(stream.values[node][r], stream.contexts[node][r]),
                    patience_factor=mech.patience_factor)
    optimizers = mech.configure_optimizers(lr)
    return Term(mech, score=score, step=lambda r: mech.training_step(
        stream.values[node][r], stream.contexts[node][r], optimizers, generator),
        patience_factor=mech.patience_factor)
