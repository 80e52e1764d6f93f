"""DeepSCM: a causal graph with one learned mechanism per node, ``x_i := f_i(pa_i, u_i)``.

The three rungs of Pearl's ladder are compositions of the engine's primitives
(:mod:`deepscm.scm.engine`; Pawlowski et al. 2020, §2):

- **association** — draw ``u`` from the noise priors and :func:`~.engine.propagate`;
- **intervention** — propagate through a world whose interventions replace mechanisms;
- **counterfactual** — :func:`~.engine.abduct` every needed ``u`` from a unit's observed
  values, then propagate through the intervened world with the factual values kept for every
  node the intervention does not reach (bit-for-bit).

Several worlds share one draw of the noise (:meth:`DeepSCM.worlds`), which the rung-3
queries of :mod:`deepscm.scm.queries` (mediation, path-specific effects, ETT, probabilities
of causation) and the edge-removed models of :meth:`DeepSCM.without_edges` are built on.
"""

from __future__ import annotations

import contextlib
import copy
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import io
from .._version import __version__
from ..bank import bank_groups, merge_histories, train_bank
from ..errors import AbductionWarning, ConfigError, DataError, DeepSCMError, GraphError, ModelFileError, NotFittedError, UnsupportedGraphError
from ..graph import CausalGraph, GraphLike
from ..interventions import Intervention, Set, as_intervention
from ..mechanisms import registry
from ..mechanisms.base import Mechanism, MechanismSpec
from ..mechanisms.flow import ConditionalFlow, sampling_precision
from ..mechanisms.linear import LinearGaussian
from ..training import Term, TrainingHistory, evaluate, resolve_device, train
from ..variables import Schema, Variable, VariableSpec, stack_images
from . import chunks, engine
from .engine import Independent, Noise, World, parent_context
from .support import ParentSupport, fit_supports

__all__ = ["AUTO_TOLERANCE", "DeepSCM", "MIN_ROWS", "NOISE_TEST_LEVEL", "NOISE_TEST_PERMUTATIONS", "NOISE_TEST_ROWS"]

#: scalars processed at once per node when sampling, to bound memory.
_CHUNK = 1 << 16
#: fewest rows :meth:`DeepSCM.fit` accepts.
MIN_ROWS = 10
#: under ``mechanisms="auto"``, a simpler candidate is kept while its held-out negative
#: log-likelihood is within this many nats per row of the best candidate's.
AUTO_TOLERANCE = 0.01
#: under automatic selection, a node's gradient-trained candidates (flows) are skipped when
#: the HSIC test of its simplest (linear) candidate's noise against its parents has a p-value
#: of at least this: the linear model then explains how the parents act.
NOISE_TEST_LEVEL = 0.05
#: ... on at most this many training rows, with this many permutations. The test's power
#: grows with the rows: on ``medical_brain``'s brain volume (a quadratic decline of up to 15 %
#: with age under 6 % noise) the p-values of 6 data seeds were 0.045–0.38 on 1,000 rows with
#: 200 permutations (the earlier setting) and 0.010–0.040 on 2,000 with 100, at 18–20 ms a
#: test against 17–19; on linear data both reject at or below the 5 % level
#: (``benchmarks/noise_test_rows.py``).
NOISE_TEST_ROWS = 2000
NOISE_TEST_PERMUTATIONS = 100


class DeepSCM:
    """A deep structural causal model.

    Args:
        graph: the causal DAG (a :class:`CausalGraph`, an edge string or a networkx DiGraph).
        mechanisms: per node a :class:`~deepscm.mechanisms.Mechanism` instance, class or
            registered name (see ``deepscm.mechanisms.registry.names()``: ``"flow"``,
            ``"additive"``, ``"vae"``, ``"categorical"``, …); or one such value used for every
            node of a kind it handles. ``"auto"`` — the default, and what every unspecified
            node gets — selects per node at :meth:`fit`: for a continuous node the linear
            candidates (Gaussian or kernel-density noise, closed form), and only when the
            linear noise depends on the parents (HSIC test) also the spline flow and
            gradient-boosted additive noise, keeping the first candidate in that order whose
            held-out likelihood is within :data:`AUTO_TOLERANCE` of the best
            (``fit_info["selection"]``, :meth:`summary`); a chosen closed-form mechanism is then
            refitted on all rows. Gumbel-max for a discrete node, a VAE for an image.
            Instances are copied, never mutated.
        variables: per node a :class:`~deepscm.variables.Variable`, a kind (``"continuous"``,
            ``"binary"``, ``"categorical"``, ``"image"``) or a list of columns (a continuous
            vector); everything else is inferred from the data at :meth:`fit`. An image node
            is one column of equal-shape arrays (``df["x"] = list(images)``).

    Example:
        >>> scm = DeepSCM("age -> brain; age -> ventricles; brain -> ventricles")
        >>> scm.fit(df, epochs=50, seed=0)                     # doctest: +SKIP
        >>> scm.sample(1000, do={"age": lambda a: a + 10})     # doctest: +SKIP
        >>> scm.counterfactual(df.head(5), do={"age": 70})     # doctest: +SKIP
    """

    def __init__(
        self,
        graph: GraphLike,
        mechanisms: Mapping[str, registry.MechanismChoice] | registry.MechanismChoice | None = None,
        variables: Mapping[str, VariableSpec] | None = None,
    ) -> None:
        self.graph = graph if isinstance(graph, CausalGraph) else CausalGraph(graph)
        if self.graph.has_latent_confounders:
            pairs = ", ".join(f"{a} <-> {b}" for a, b in self.graph.bidirected_edges)
            raise UnsupportedGraphError(
                f"the graph has latent confounders ({pairs}); these mechanisms assume independent "
                "noise per node and would fit a wrong model. Use deepscm.identification.identify "
                "to check whether your query is identifiable, or model the confounder explicitly"
            )
        choices = mechanisms.values() if isinstance(mechanisms, Mapping) else [mechanisms]
        if isinstance(mechanisms, Mapping):
            self.graph.check_nodes(mechanisms.keys(), "mechanisms")
        for choice in choices:
            if choice is not None and not (isinstance(choice, str) and choice.lower() == registry.AUTO):
                registry.make(choice)  # reject unknown names and bad values now
        self._mechanism_choice = mechanisms
        self._variable_overrides = dict(variables or {})
        self.schema: Schema | None = None
        self.mechanisms: dict[str, Mechanism] = {}
        self.history: TrainingHistory | None = None
        self.fit_info: dict[str, Any] = {}
        self.device = torch.device("cpu")
        #: per continuous node, the training range of each column (user units).
        self.ranges: dict[str, tuple[list[float], list[float]]] = {}
        #: per node with a multi-column parent context, the summary of where the training
        #: data's parent combinations lie (deepscm.scm.support).
        self.support: dict[str, ParentSupport] = {}
        self._interventions: dict[str, Any] = {}
        self._edges: dict[tuple[str, str], Any] = {}

    # ------------------------------------------------------------------ training
    def fit(
        self,
        data: pd.DataFrame | str | Path,
        epochs: int = 300,
        batch_size: int = 512,
        lr: float = 5e-3,
        seed: int = 0,
        device: str | torch.device = "auto",
        val_fraction: float = 0.1,
        patience: int = 20,
        lr_decay: float = 0.5,
        progress: bool = True,
        devices: int = 1,
        strategy: str = "auto",
    ) -> DeepSCM:
        """Fit every mechanism to its term of ``log p(x) = Σ_i log p(x_i | pa_i)``.

        The terms are independent, so all nodes train concurrently on shared mini-batches,
        each through its mechanism's own training step and with early stopping on its
        held-out validation score (``val_fraction`` of the rows, ``patience`` epochs). A
        node's learning rate is multiplied by ``lr_decay`` after each ``patience // 4`` epochs
        without improvement, at most three times, and the node stops at the plateau after its
        last decay (:class:`deepscm.training.Plateau`; ``lr_decay=1`` keeps ``lr`` constant
        and stops after ``patience`` epochs only). A failed fit leaves the model as it was.
        Returns ``self``.

        Scale-out (docs/guide/scale-out.md): ``devices=2, strategy="ddp"`` trains data-parallel
        on that many processes (CPU or one per GPU; joins the group under ``torchrun``,
        :mod:`deepscm.distributed`); ``data`` may be a Parquet path or a
        ``pyarrow.dataset.Dataset``, streamed in mini-batches (:mod:`deepscm.streaming`).
        """
        if self._interventions or self._edges:
            raise DeepSCMError("fit the base model, not a copy made by do() or without_edges()")
        scale_out = self._fit_scaled(data, devices, strategy, dict(
            epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device,
            val_fraction=val_fraction, patience=patience, lr_decay=lr_decay, progress=progress))
        if scale_out is not None:
            return scale_out
        if not (isinstance(val_fraction, (int, float)) and 0 <= val_fraction < 1):
            raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
        if isinstance(data, pd.DataFrame) and len(data) < MIN_ROWS:
            raise DataError(
                f"the training data has {len(data)} row(s); a deep SCM needs at least {MIN_ROWS} "
                "(and a few hundred for useful answers)"
            )
        schema = Schema.infer(data, self.graph.nodes, self._variable_overrides)
        schema.check(data, "training")
        dev = resolve_device(device)
        started = time.perf_counter()
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(seed)
            options = {n: self._make_candidates(n, schema) for n in self.graph.nodes}
            for pairs in options.values():
                for _, mech in pairs:
                    mech.to(dev)
            values = {v.name: v.encode(data, dev) for v in schema}
            contexts = {
                n: parent_context(self.graph, schema, n, values, len(data), dev) for n in self.graph.nodes
            }
            generator = torch.Generator(device=dev).manual_seed(seed)
            rows = torch.randperm(len(data), generator=generator, device=dev)
            n_val = int(round(val_fraction * len(data)))
            val_rows, train_rows = rows[:n_val], rows[n_val:]
            if n_val == 0 and any(len(pairs) > 1 for pairs in options.values()):
                raise ConfigError(
                    "automatic mechanism selection compares candidates on held-out rows: give "
                    "val_fraction > 0, or choose the mechanisms (mechanisms=...)"
                )
            # the linear candidates first (closed form); a node's non-linear candidates are
            # fitted only when the linear model leaves its noise dependent on its parents
            noise_test, prefitted = {}, set()
            for n, pairs in options.items():
                if len(pairs) == 1:
                    continue
                for label, mech in pairs:
                    if not registry.nonlinear_candidate(label) and _closed_form(mech):
                        mech.after_fit(values[n][train_rows], contexts[n][train_rows])
                        prefitted.add(id(mech))
                noise_test[n] = _noise_independence(pairs[0][1], values[n], contexts[n], train_rows, seed)
                if noise_test[n]["independent"]:
                    options[n] = [(label, m) for label, m in pairs if not registry.nonlinear_candidate(label)]
                else:
                    _start_flows_linear(options[n])
            mechs = {
                _term_name(n, label, len(pairs)): (n, mech)
                for n, pairs in options.items() for label, mech in pairs
            }
            # scalar spline flows with parents train stacked (deepscm.bank): the same per-node
            # optimisation as one batched module
            groups = bank_groups({t: m for t, (_, m) in mechs.items()})
            banked = {t for group in groups for t in group}
            terms = {
                t: _term(m, values[n], contexts[n], lr, generator)
                for t, (n, m) in mechs.items() if t not in banked
            }
            common = dict(epochs=epochs, batch_size=batch_size, lr=lr, generator=generator,
                          patience=patience, lr_decay=lr_decay, progress=progress)
            held_out = val_rows if n_val else None
            history = train(terms, train_rows, held_out, desc="fitting DeepSCM", **common)
            for group in groups:
                merge_histories(history, train_bank(
                    {t: mechs[t][1] for t in group},
                    {t: values[mechs[t][0]] for t in group},
                    {t: contexts[mechs[t][0]] for t in group},
                    train_rows, held_out, desc="fitting DeepSCM (flow bank)", **common,
                ))
            scores: dict[str, dict[str, float]] = {}
            for n, pairs in options.items():
                for label, mech in pairs:
                    if id(mech) not in prefitted:
                        mech.after_fit(values[n][train_rows], contexts[n][train_rows])
                    if n_val:
                        score = lambda r, m=mech, n=n: m.validation_score(values[n][r], contexts[n][r])  # noqa: E731
                        scores.setdefault(n, {})[label] = evaluate(mech, score, val_rows)
                    mech.eval()
            chosen = {n: _select(pairs, scores.get(n, {})) for n, pairs in options.items()}
            # a closed-form mechanism needs no held-out rows once chosen: refit it on all rows
            everything = torch.cat([train_rows, val_rows])
            for n, (_, mech) in chosen.items():
                if n_val and _closed_form(mech):
                    mech.after_fit(values[n][everything], contexts[n][everything])
            support = fit_supports(contexts, everything, seed)
        mechanisms = {n: mech for n, (_, mech) in chosen.items()}
        self.schema, self.mechanisms, self.history, self.device = schema, mechanisms, history, dev
        self.support = support
        columns = {v.name: data[v.columns].to_numpy(np.float64) for v in schema if v.kind == "continuous"}
        self.ranges = {n: (x.min(axis=0).tolist(), x.max(axis=0).tolist()) for n, x in columns.items()}
        best = {n: scores[n][label] for n, (label, _) in chosen.items() if n in scores}
        self.fit_info = {
            "rows": len(data),
            "epochs_run": history.epochs_run,
            "seed": seed,
            "seconds": round(time.perf_counter() - started, 3),
            # mean held-out log p(x_i | pa_i) (or its bound) per node, in the data's own units
            "val_log_prob": {
                n: -score + float(schema[n].log_jacobian_rows(values[n][val_rows]).mean())
                for n, score in best.items()
                if mechanisms[n].likelihood != "none" and mechanisms[n].validation_metric == "nll"
            },
            # every node's held-out score after fitting, and what it measures
            "validation": {
                n: {"metric": mechanisms[n].validation_metric, "score": score} for n, score in best.items()
            },
            # approximate abduction (e.g. DDIM inversion): |f(pa, abduct(x, pa)) − x| with the
            # factual parents on up to 1,000 held-out rows, in standardised units
            "abduction_error": {
                n: _reconstruction_error(mech, values[n], contexts[n], val_rows if n_val else train_rows)
                for n, mech in mechanisms.items() if mech.abduction == "approximate"
            },
            # nodes selected automatically: each candidate's held-out score, and the HSIC test
            # of the simplest candidate's noise against the parents that decided whether the
            # gradient-trained candidates were fitted at all
            "selection": {
                n: {"chosen": chosen[n][0], "scores": scores[n], "tolerance": AUTO_TOLERANCE,
                    "noise_test": noise_test[n]}
                for n in noise_test
            },
        }
        _warn_loose_round_trips(self.fit_info["abduction_error"], mechanisms)
        return self

    def _fit_scaled(self, data: Any, devices: int, strategy: str, options: dict[str, Any]) -> DeepSCM | None:
        """A data-parallel or streamed :meth:`fit` (either comes back here, in one process
        per rank and with an in-memory frame, to run the in-memory fit); ``None`` otherwise."""
        from .. import distributed, streaming

        if distributed.requested(devices, strategy):
            return distributed.fit(self, data, devices, options)
        if streaming.is_source(data):
            return streaming.fit(self, data, options)
        return None

    def _make_candidates(self, node: str, schema: Schema) -> list[tuple[str, Mechanism]]:
        """``[(label, mechanism)]``: the one the user chose, or — by default and for
        ``"auto"`` — the registry's candidates for the node's kind, simplest first."""
        mech = self._chosen_mechanism(node, schema)
        if mech is not None:
            mech.build(self._spec(node, schema))
            return [(type(mech).__name__, mech)]
        pairs = registry.candidates(_kind(schema[node]))
        for _, candidate in pairs:
            candidate.build(self._spec(node, schema))
        return pairs

    def _spec(self, node: str, schema: Schema) -> MechanismSpec:
        var = schema[node]
        context_dim = sum(schema[p].context_dim for p in self.graph.parents(node))
        return MechanismSpec(var.dim, context_dim, var.n_categories, var.tensor_shape)

    def _chosen_mechanism(self, node: str, schema: Schema) -> Mechanism | None:
        """The mechanism the user chose for ``node``, or ``None`` for automatic selection (no
        choice, ``"auto"``, or one choice for every node that does not handle this kind)."""
        var = schema[node]
        choice = self._mechanism_choice
        per_node = isinstance(choice, Mapping)
        if per_node:
            choice = choice.get(node)
        if choice is None or (isinstance(choice, str) and choice.lower() == registry.AUTO):
            return None
        kind = _kind(var)
        mech = registry.make(choice)
        if kind in mech.handles:
            return mech
        if not per_node:
            return None  # a single choice applies to the kinds it handles
        raise ConfigError(
            f"node {node!r} is {var.kind} but {type(mech).__name__} models "
            f"{'/'.join(sorted(mech.handles))} nodes; choose another mechanism"
        )

    def summary(self) -> pd.DataFrame:
        """One row per node: kind, mechanism, abduction and likelihood kinds, the held-out
        score, and — for nodes selected automatically — every candidate's held-out score (the
        chosen one starred), the p-value of the HSIC test of the linear candidate's noise
        against the parents (below :data:`NOISE_TEST_LEVEL`, the non-linear candidates were
        fitted too; ``None`` for a root), and the clusters summarising where the node's
        parent combinations lie (``0``: not checked; :mod:`deepscm.scm.support`)."""
        self._require_fitted()
        rows = []
        for node in self.graph.nodes:
            mech = self.mechanisms[node]
            validation = self.fit_info.get("validation", {}).get(node, {})
            selection = self.fit_info.get("selection", {}).get(node)
            rows.append({
                "node": node,
                "kind": self.schema[node].kind,
                "parents": ", ".join(self.graph.parents(node)),
                "mechanism": repr(mech),
                "abduction": mech.abduction,
                "likelihood": mech.likelihood,
                "held-out score": validation.get("score"),
                "metric": validation.get("metric"),
                "candidates": "" if selection is None else "; ".join(
                    f"{label}{' *' if label == selection['chosen'] else ''} {score:.4f}"
                    for label, score in selection["scores"].items()
                ),
                "linear noise test p": None if selection is None else selection["noise_test"]["p_value"],
                "support clusters": len(self.support[node].radius) if node in self.support else 0,
            })
        return pd.DataFrame(rows).set_index("node")

    def evaluate(self, data: pd.DataFrame, **kwargs: Any) -> Any:
        """Validate the fitted model on (held-out) data: per node the log-likelihood beside a
        baseline, calibration of the abducted noise against its prior, and independence of
        that noise from the node's non-descendants (a dependence flags a missing edge, a
        hidden confounder or a misfit); see :func:`deepscm.evaluation.validate`."""
        from ..evaluation.validation import validate

        return validate(self, data, **kwargs)

    # ------------------------------------------------------------------ worlds
    def worlds(
        self,
        worlds: Mapping[str, World | Mapping[str, Any]],
        units: pd.DataFrame | None = None,
        n: int | None = None,
        n_samples: int = 1,
        seed: int | None = None,
    ) -> dict[str, pd.DataFrame]:
        """Several worlds that share one draw of the noise.

        ``worlds`` maps a name to a :class:`~deepscm.scm.engine.World` (or to a plain
        ``do=`` mapping). With ``units`` (observed rows) the noise is abducted from them and
        every world is a counterfactual of those units — frames aligned with ``units`` (or
        indexed by ``(unit, draw)`` when ``n_samples > 1``); without, ``n`` draws of the
        noise are taken from the priors. The model's own interventions (from :meth:`do`)
        and removed edges (from :meth:`without_edges`) apply in every world.
        """
        self._require_fitted()
        built = {name: self._world(w) for name, w in worlds.items()}
        if units is None:
            if n is None:
                raise DataError("give units= (counterfactual worlds) or n= (sampled worlds)")
            frames = self._sample_worlds(built, _positive("n", n), seed)
            return frames
        return self._counterfactual_worlds(built, units, _positive("n_samples", n_samples), seed)

    def _world(self, world: World | Mapping[str, Any] | None) -> World:
        if world is None:
            world = World()
        elif not isinstance(world, World):
            world = World(do=world)
        engine.interventions(self, world.do)  # known nodes and valid values, checked now
        return World(do={**self._interventions, **world.do}, edges={**self._edges, **dict(world.edges)})

    def _sample_worlds(self, worlds: Mapping[str, World], n: int, seed: int | None) -> dict[str, pd.DataFrame]:
        generator = self._generator(seed)
        size = self._chunk_rows()
        starts = range(0, n, size)

        def draws() -> Iterator[tuple[Noise, dict[str, torch.Tensor]]]:
            # the generator's stream, in chunk order, on this thread (deepscm.scm.chunks)
            for start in starts:
                noise = engine.sample_noise(self, min(size, n - start), generator, first_unit=start, n_units=n)
                yield noise, engine.independent_values(self, worlds, noise, generator)

        def finish(drawn: tuple[Noise, dict[str, torch.Tensor]]) -> tuple[dict[str, pd.DataFrame], dict]:
            noise, independent = drawn
            with torch.no_grad():
                values = engine.propagate(self, noise, worlds, independent=independent)
                frames = {name: engine.decode(self, values[name], w, noise=noise) for name, w in worlds.items()}
                # the joint-support share on about engine.SUPPORT_ROWS rows over all chunks
                joint = engine.off_support_shares(self, worlds, values, -(-engine.SUPPORT_ROWS // len(starts)))
                return frames, engine.outside_shares(self, worlds, values), joint

        with torch.no_grad():
            results = chunks.map_in_order(finish, draws(), len(starts), self.device)
        shares: dict[str, dict[str, float]] = {}
        joint: dict[str, dict[str, float]] = {}
        for (_, chunk_shares, chunk_joint), start in zip(results, starts):
            weight = min(size, n - start) / n
            for into, part in ((shares, chunk_shares), (joint, chunk_joint)):
                for name, per_node in part.items():
                    for node, share in per_node.items():
                        into.setdefault(name, {})[node] = into.get(name, {}).get(node, 0.0) + weight * share
        found = engine.extrapolated(self, worlds, shares)
        joint = engine.off_support(self, worlds, joint)
        out = {}
        for name in worlds:
            parts = [frames[name] for frames, _, _ in results]
            frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
            frame.attrs["extrapolated"] = found.get(name, {})
            frame.attrs["off_support"] = joint.get(name, {})
            out[name] = frame
        return out

    def _counterfactual_worlds(
        self, worlds: Mapping[str, World], units: pd.DataFrame, n_samples: int, seed: int | None,
    ) -> dict[str, pd.DataFrame]:
        generator = self._generator(seed)
        with torch.no_grad():
            factual = engine.encode(self, units, "counterfactual")
            needs = engine.needed_noise(self, worlds)
            noise = engine.abduct(self, factual, needs, n_samples, generator)
            values = engine.propagate(self, noise, worlds, factual, generator)
            found = engine.extrapolated(self, worlds, engine.outside_shares(self, worlds, values))
            joint = engine.off_support(self, worlds, engine.off_support_shares(self, worlds, values))
        reps = noise.units.cpu().numpy()
        out = {}
        for name, world in worlds.items():
            changed = engine.changed_nodes(self, world)
            decoded = engine.decode(self, values[name], world, nodes=changed, noise=noise)
            frame = units.iloc[reps].copy()
            for col in decoded.columns:
                frame[col] = decoded[col].to_numpy()
            if n_samples > 1:
                frame.index = pd.MultiIndex.from_product(
                    [units.index, range(n_samples)], names=[units.index.name or "unit", "draw"]
                )
            frame.attrs["abduction"] = self._abduction_kinds(changed, noise)
            frame.attrs["extrapolated"] = found.get(name, {})
            frame.attrs["off_support"] = joint.get(name, {})
            out[name] = frame
        return out

    def _abduction_kinds(self, changed: set[str], noise: Noise) -> dict[str, str]:
        """Per column: ``"factual"`` (unchanged), or the weakest abduction among the noise that
        went into it — ``"exact"``, ``"approximate"``, or ``"draws"`` (posterior draws)."""
        rank = {"exact": 0, "approximate": 1, "posterior": 2}
        label = {0: "exact", 1: "approximate", 2: "draws"}
        out = {}
        for var in self.schema:
            if var.name not in changed:
                kind = "factual"
            else:
                used = self.graph.ancestors(var.name) & changed
                levels = [rank[noise.kinds[engine.exogenous(u)]] for u in used if engine.exogenous(u) in noise.kinds]
                kind = label[max(levels, default=0)]
            out.update({col: kind for col in var.columns})
        return out

    # ------------------------------------------------------------------ rung 1 and 2
    def sample(
        self, n: int, do: Mapping[str, Any] | None = None, seed: int | None = None,
        dtype: str | None = None,
    ) -> pd.DataFrame:
        """``n`` draws from the observational distribution, or from ``p(· | do(...))``.

        ``result.attrs["extrapolated"]`` lists, per node, the share of rows where an
        intervention value or a changed parent left the training range (an
        :class:`~deepscm.ExtrapolationWarning` is issued too). ``dtype="bfloat16"`` runs the
        flows' conditioner matrix multiplies in bf16 (opt-in; it pays only on hardware with
        native bf16 — on an AVX2-only CPU it was ~7× slower, ``benchmarks/results/sampling.md``)."""
        self._require_fitted()
        # dtype=None keeps the flows' own setting (e.g. a surrounding sampling_precision block)
        precision = contextlib.nullcontext() if dtype is None else sampling_precision(self.mechanisms.values(), dtype)
        with precision:
            return self._sample_worlds({"do": self._world(do)}, _positive("n", n), seed)["do"]

    def do(self, **interventions: Any) -> DeepSCM:
        """A copy of the model with the given interventions built in (model surgery).

        Its :meth:`sample` draws from the interventional distribution and its
        :meth:`counterfactual` answers "had these interventions happened". The copy shares
        the fitted mechanisms; the original is unchanged.
        """
        self._require_fitted()
        for node, item in engine.interventions(self, interventions).items():
            if isinstance(item, Set) and np.ndim(item.value_) == 0:
                self.schema[node].encode_values(item.value_, 1)  # validate constants now
        out = copy.copy(self)
        out._interventions = {**self._interventions, **interventions}
        return out

    @property
    def interventions(self) -> dict[str, Intervention]:
        return {n: as_intervention(v, n) for n, v in self._interventions.items()}

    def ate(
        self,
        treatment: str,
        outcome: str,
        treated: Any = None,
        control: Any = None,
        n: int = 10_000,
        seed: int | None = 0,
        data: pd.DataFrame | None = None,
    ) -> float:
        """``E[outcome | do(treatment = treated)] − E[outcome | do(treatment = control)]``.

        Both arms share one draw of the noise (common random numbers), which removes most of
        the Monte-Carlo noise from the difference. A binary outcome is scored as the
        probability of its second label. Defaults: a binary treatment's own labels (second vs
        first); 1 vs 0 for a continuous one.

        With ``data``, the expectation is over those observed units instead of ``n`` units
        sampled from the model: each unit's noise is abducted and the two arms are its
        counterfactual worlds, so the covariates keep their empirical distribution. For a
        skewed or zero-inflated outcome in money units, an additive-noise mechanism for it
        (``mechanisms={outcome: "boosted"}``) keeps the regression's mean; a flow's
        Monte-Carlo mean follows its learned tails.
        """
        from .queries import contrast, outcome_score

        self._require_fitted()
        self.graph.check_nodes({treatment, outcome}, "ate")
        treated, control = contrast(self, treatment, treated, control)
        arms = {"treated": {treatment: treated}, "control": {treatment: control}}
        if data is not None:
            frames = self.worlds(arms, units=data, seed=seed)
        else:
            frames = self.worlds(arms, n=n, seed=seed)
        score = outcome_score(self, outcome)
        return float(np.mean(score(frames["treated"])) - np.mean(score(frames["control"])))

    # ------------------------------------------------------------------ rung 3
    def counterfactual(
        self,
        units: pd.DataFrame,
        do: Mapping[str, Any] | None = None,
        n_samples: int = 1,
        seed: int | None = None,
        average: bool = False,
    ) -> pd.DataFrame:
        """Counterfactuals for observed units by abduction → action → prediction.

        Returns a DataFrame aligned with ``units`` (``n_samples == 1``) or indexed by
        ``(unit, draw)``. Columns of nodes that do not descend from an intervened node are
        copied from ``units`` unchanged. Intervention values may be constants, one value per
        unit (an array as long as ``units``) or callables of the natural value.
        ``result.attrs["abduction"]`` says for each column whether it is ``"factual"``
        (unchanged), ``"exact"`` (exact abduction: the unique counterfactual),
        ``"approximate"`` (deterministic approximate abduction, e.g. DDIM inversion) or
        ``"draws"`` (posterior abduction, e.g. a Gumbel-max node or a VAE's latent ``z``
        upstream: each row is one draw from the counterfactual distribution).
        ``average=True`` reduces the ``n_samples`` draws to one row per unit — the
        Monte-Carlo mean for continuous and image columns (DSCM eq. 6 averaged over ``z``),
        the most frequent draw for discrete ones — and marks such columns ``"mean"``.
        """
        self._require_fitted()
        world = self._world(do)
        if not world.do and not world.edges:
            raise DataError("counterfactual needs an intervention: pass do={'node': value}")
        n_samples = _positive("n_samples", n_samples)
        out = self._counterfactual_worlds({"do": world}, units, n_samples, seed)["do"]
        if not (average and n_samples > 1):
            return out
        changed = engine.changed_nodes(self, world)
        reduced = units.copy()
        for var in self.schema:
            if var.name in changed:
                for col, value in _average_draws(var, out, len(units), n_samples).items():
                    reduced[col] = value
        reduced.attrs["abduction"] = {
            c: ("mean" if k == "draws" else k) for c, k in out.attrs["abduction"].items()
        }
        reduced.attrs["extrapolated"] = out.attrs["extrapolated"]
        reduced.attrs["off_support"] = out.attrs["off_support"]
        return reduced

    # ------------------------------------------------------------------ rung-3 queries
    def mediation(self, treatment: str, mediator: str | Sequence[str], outcome: str, **kwargs: Any) -> pd.DataFrame:
        """Total, natural direct/indirect and controlled direct effects; see
        :func:`deepscm.scm.queries.mediation`."""
        from .queries import mediation

        return mediation(self, treatment, mediator, outcome, **kwargs)

    def path_effect(self, treatment: str, outcome: str, paths: Iterable[Any], **kwargs: Any) -> pd.DataFrame:
        """The effect transmitted along the given paths or edges; see
        :func:`deepscm.scm.queries.path_effect`."""
        from .queries import path_effect

        return path_effect(self, treatment, outcome, paths, **kwargs)

    def ett(self, treatment: str, outcome: str, **kwargs: Any) -> pd.DataFrame:
        """The effect of treatment on the treated; see :func:`deepscm.scm.queries.ett`."""
        from .queries import ett

        return ett(self, treatment, outcome, **kwargs)

    def probabilities_of_causation(self, treatment: str, outcome: str, **kwargs: Any) -> pd.DataFrame:
        """PN, PS and PNS beside the Tian–Pearl bounds; see
        :func:`deepscm.scm.queries.probabilities_of_causation`."""
        from .queries import probabilities_of_causation

        return probabilities_of_causation(self, treatment, outcome, **kwargs)

    def without_edges(
        self, edges: Iterable[tuple[str, str]], reference: Any = None
    ) -> DeepSCM:
        """A counterfactual model in which each child of ``edges`` no longer listens to that
        parent: it reads ``reference`` through the edge instead — a constant or per-unit
        values (user units), or, by default, an independent draw of the parent from its
        observational distribution (DECAF, van Breugel et al. 2021). Every other edge keeps
        working; the copy shares the fitted mechanisms and samples, intervenes and answers
        counterfactuals like any model. ``reference`` may also map each edge to its own."""
        self._require_fitted()
        edges = [tuple(e) for e in edges]
        refs = reference if isinstance(reference, Mapping) else {e: reference for e in edges}
        built = {}
        for edge in edges:
            if not (len(edge) == 2 and edge[1] in self.graph and edge[0] in self.graph.parents(edge[1])):
                raise GraphError(f"{edge!r} is not an edge of the graph {self.graph}")
            ref = refs.get(edge)
            built[edge] = Independent() if ref is None else ref
        out = copy.copy(self)
        out._edges = {**self._edges, **built}
        return out

    @property
    def removed_edges(self) -> dict[tuple[str, str], Any]:
        """Edges removed by :meth:`without_edges`, with what the child reads instead."""
        return dict(self._edges)

    def outside_support(self, data: pd.DataFrame) -> pd.DataFrame:
        """Per row of ``data`` (every column of the graph, e.g. a :meth:`counterfactual`
        result) and per node with a multi-column parent context: whether the row's
        combination of that node's parents lies outside where the training data's
        combinations lie (``True``: the node's mechanism extrapolates there). The summary
        and its threshold are in :mod:`deepscm.scm.support`; queries report the share of such
        rows in ``result.attrs["off_support"]`` and warn above 2 %."""
        self._require_fitted()
        values = engine.encode(self, data, "support check")
        flags = {
            node: summary.outside(engine.context(self, node, values, len(data)))
            for node, summary in self.support.items()
        }
        return pd.DataFrame(flags, index=data.index, columns=list(self.support))

    # ------------------------------------------------------------------ likelihood
    def log_prob(
        self, data: pd.DataFrame, per_node: bool = False, nodes: Iterable[str] | None = None
    ) -> pd.Series | pd.DataFrame:
        """``log p(x) = Σ_i log p(x_i | pa_i)`` per row, in the data's own units.

        Continuous densities include the Jacobian of the internal standardisation, so they
        are densities of the columns as given. ``per_node=True`` returns one column per node;
        ``nodes`` restricts the sum (or columns) to some nodes. ``result.attrs["likelihood"]``
        says per node whether its term is ``"exact"`` or a lower ``"bound"`` (a VAE's ELBO);
        ``attrs["lower_bound"]`` lists the bound nodes. A node whose mechanism has no
        likelihood (``"none"``: diffusion, adversarial) is refused with a :class:`DataError`
        — leave it out with ``nodes=``.
        """
        self._require_fitted()
        if self._interventions or self._edges:
            raise DeepSCMError("log_prob is defined for the observational model; call it on the base model")
        chosen = list(self.graph.nodes) if nodes is None else list(nodes)
        self.graph.check_nodes(chosen, "log_prob")
        missing = [n for n in chosen if self.mechanisms[n].likelihood == "none"]
        if missing:
            names = {n: type(self.mechanisms[n]).__name__ for n in missing}
            raise DataError(
                f"node(s) {names} have no tractable likelihood; pass nodes= without them, e.g. "
                f"nodes={[n for n in chosen if n not in missing]}"
            )
        with torch.no_grad():
            values = engine.encode(self, data, "log_prob")
            terms = {
                n: (
                    self.mechanisms[n].log_prob(values[n], engine.context(self, n, values, len(data)))
                    + self.schema[n].log_jacobian_rows(values[n])
                ).cpu().numpy()
                for n in self.graph.nodes if n in chosen
            }
        frame = pd.DataFrame(terms, index=data.index)
        result = frame if per_node else frame.sum(axis=1).rename("log_prob")
        result.attrs["likelihood"] = {n: self.mechanisms[n].likelihood for n in terms}
        result.attrs["lower_bound"] = [n for n in terms if self.mechanisms[n].likelihood == "bound"]
        return result

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the model to directory ``path`` (safetensors weights + checksummed JSON).

        Only the model's own two files are written; the commit is atomic, so a failure
        part-way leaves any model already at ``path`` intact, and other files there are kept.
        """
        self._require_fitted()
        if self._interventions or self._edges:
            raise DeepSCMError("save the base model, not a copy made by do() or without_edges()")
        tensors = {
            f"{node}/{key}": value
            for node, mech in self.mechanisms.items()
            for key, value in mech.state_dict().items()
        }
        meta = {
            "deepscm_version": __version__,
            "graph": str(self.graph),
            "nodes": self.graph.nodes,
            "schema": self.schema.to_list(),
            "mechanisms": {n: m.config() for n, m in self.mechanisms.items()},
            "ranges": self.ranges,
            "support": {n: s.to_dict() for n, s in self.support.items()},
            "fit": self.fit_info,
        }
        return io.write_bundle(path, tensors, meta)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> DeepSCM:
        """Load a model written by :meth:`save`; never executes code from the file. Every
        field is checked against the weights; anything inconsistent is a
        :class:`ModelFileError`."""
        tensors, meta = io.read_bundle(path)
        try:
            graph = CausalGraph(meta["graph"], nodes=meta["nodes"])
            schema = Schema.from_list(meta["schema"])
            if [v.name for v in schema] != graph.nodes:
                raise ValueError("the schema's nodes differ from the graph's")
            scm = cls(graph)
            scm.schema = schema
            scm.mechanisms = {
                n: _rebuild_mechanism(n, meta["mechanisms"][n], tensors, graph, schema) for n in graph.nodes
            }
            scm.ranges = {n: (list(lo), list(hi)) for n, (lo, hi) in meta.get("ranges", {}).items()}
            scm.support = {n: ParentSupport.from_dict(d) for n, d in meta.get("support", {}).items()}
            graph.check_nodes(scm.support, "the parent-support summaries")
            for n, summary in scm.support.items():
                width = scm._spec(n, schema).context_dim
                if summary.center.shape != (width,):
                    raise ValueError(f"the parent-support summary of {n!r} has {len(summary.center)} "
                                     f"columns; its parents have {width}")
            scm.fit_info = meta.get("fit", {})
        except ModelFileError:
            raise
        except (DeepSCMError, KeyError, TypeError, ValueError, IndexError) as err:
            raise ModelFileError(f"{path} is inconsistent: {type(err).__name__}: {err}") from None
        return scm.to(device)

    def to(self, device: str | torch.device) -> DeepSCM:
        """Move the fitted mechanisms to ``device`` (``"auto"`` picks a GPU when present)."""
        self.device = resolve_device(device)
        for mech in self.mechanisms.values():
            mech.to(self.device)
        return self

    # ------------------------------------------------------------------ internals
    def _chunk_rows(self) -> int:
        """Rows per sampling chunk: about ``_CHUNK`` scalars per node, fewer rows for images."""
        widest = max((v.dim for v in self.schema), default=1)
        return max(64, min(_CHUNK, (_CHUNK * 16) // widest))

    @property
    def is_fitted(self) -> bool:
        return self.schema is not None

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError("this DeepSCM is not fitted yet: call scm.fit(df) first")

    def _generator(self, seed: int | None) -> torch.Generator:
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**63))
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ConfigError(f"seed must be an integer or None, got {seed!r}")
        return torch.Generator(device=self.device).manual_seed(int(seed))

    def __repr__(self) -> str:
        if not self.is_fitted:
            return f"DeepSCM({str(self.graph)!r}, not fitted)"
        nodes = ", ".join(
            f"{n}: {self.schema[n].kind} ~ {type(self.mechanisms[n]).__name__}" for n in self.graph.nodes
        )
        extra = f", do={sorted(self._interventions)}" if self._interventions else ""
        if self._edges:
            extra += f", without_edges={sorted(self._edges)}"
        return f"DeepSCM({str(self.graph)!r}, fitted, {{{nodes}}}{extra})"


def _reconstruction_error(
    mech: Mechanism, x: torch.Tensor, ctx: torch.Tensor, rows: torch.Tensor, limit: int = 1000
) -> dict[str, float]:
    """Mean and largest ``|f(pa, abduct(x, pa)) − x|`` over up to ``limit`` of ``rows``."""
    rows = rows[:limit]
    with torch.no_grad():
        error = (mech.sample(ctx[rows], mech.abduct(x[rows], ctx[rows])) - x[rows]).abs()
    return {"mean": float(error.mean()), "max": float(error.max()), "rows": len(rows)}


def _warn_loose_round_trips(errors: Mapping[str, Mapping[str, float]], mechanisms: Mapping[str, Mechanism]) -> None:
    """One :class:`~deepscm.errors.AbductionWarning` naming every node whose measured round
    trip ``max |f(pa, abduct(x, pa)) − x|`` exceeds its mechanism's ``abduction_tolerance``."""
    loose = {n: e["max"] for n, e in errors.items() if e["max"] > mechanisms[n].abduction_tolerance}
    if not loose:
        return
    nodes = "; ".join(f"{n!r}: {v:.3g} > {mechanisms[n].abduction_tolerance:g}" for n, v in loose.items())
    warnings.warn(
        f"the encode→decode round trip with unchanged parents misses its tolerance ({nodes}; "
        "largest error on held-out rows, standardised units, fit_info['abduction_error']): "
        "counterfactuals of these nodes reconstruct their factual values less exactly than the "
        "mechanism promises. For Diffusion, use more inference_steps (default: all T) or refine",
        AbductionWarning, stacklevel=3,
    )


def _closed_form(mech: Mechanism) -> bool:
    """Whether a mechanism is fitted in closed form (:meth:`Mechanism.after_fit`), without
    gradient steps: it has no trainable weights."""
    return not any(p.requires_grad for p in mech.parameters())


def _noise_independence(
    mech: Mechanism, x: torch.Tensor, ctx: torch.Tensor, rows: torch.Tensor, seed: int
) -> dict[str, Any]:
    """HSIC test (:func:`deepscm.evaluation.validation.hsic_test`, on at most
    :data:`NOISE_TEST_ROWS` training rows, :data:`NOISE_TEST_PERMUTATIONS` permutations) of
    the fitted closed-form ``mech``'s abducted noise against the parents.

    Independent noise (``p ≥`` :data:`NOISE_TEST_LEVEL`) means the closed-form model explains
    how the parents act (an additive model, Hoyer et al. 2009), so no gradient-trained
    candidate is fitted. A root is independent by definition, unless it is a vector (the
    closed-form noise densities are per column)."""
    if not mech.spec.context_dim:
        independent = mech.spec.x_dim == 1
        return {"p_value": None, "independent": independent}
    from ..evaluation.validation import hsic_test

    with torch.no_grad():
        noise = mech.abduct(x[rows], ctx[rows])
    _, p, n = hsic_test(noise.cpu().numpy(), ctx[rows].cpu().numpy(),
                        n_permutations=NOISE_TEST_PERMUTATIONS, rng=seed, max_rows=NOISE_TEST_ROWS)
    return {"p_value": p, "rows": n, "independent": p >= NOISE_TEST_LEVEL and mech.spec.x_dim == 1}


def _kind(var: Variable) -> str:
    """The registry's kind of a variable: ``"discrete"``, ``"image"`` or ``"continuous"``."""
    return "discrete" if var.discrete else "image" if var.is_image else "continuous"


def _term_name(node: str, label: str, n_candidates: int) -> str:
    """A node's training term, or one per candidate (``"y [linear]"``) under ``"auto"``."""
    return node if n_candidates == 1 else f"{node} [{label}]"


def _start_flows_linear(pairs: list[tuple[str, Mechanism]]) -> None:
    """Start a node's scalar spline-flow candidates at its fitted linear-Gaussian candidate
    (:meth:`ConditionalFlow.start_linear`): training then begins at the linear model's
    likelihood and learns only what the parents do beyond it."""
    linear = next((m for _, m in pairs if type(m) is LinearGaussian and m.hparams["noise"] == "gaussian"), None)
    if linear is None:
        return
    for _, mech in pairs:
        if isinstance(mech, ConditionalFlow) and mech.spec.x_dim == 1 and mech.spec.context_dim:
            mech.start_linear(linear.weight, linear.bias, linear.log_sigma)


def _select(pairs: list[tuple[str, Mechanism]], scores: Mapping[str, float]) -> tuple[str, Mechanism]:
    """The first candidate (in the registry's order of preference) whose held-out score is
    within :data:`AUTO_TOLERANCE` of the best."""
    if len(pairs) == 1:
        return pairs[0]
    best = min(scores.values())
    return next((label, m) for label, m in pairs if scores[label] <= best + AUTO_TOLERANCE)


def _term(mech: Mechanism, x: torch.Tensor, ctx: torch.Tensor, lr: float, generator: torch.Generator) -> Term:
    """The training term of one node: the shared NLL step, or the mechanism's own step."""
    score = lambda r: mech.validation_score(x[r], ctx[r])  # noqa: E731
    if mech.uses_default_step:
        return Term(mech, score=score, loss=lambda r: mech.loss(x[r], ctx[r]),
                    patience_factor=mech.patience_factor)
    optimizers = mech.configure_optimizers(lr)
    return Term(mech, score=score, step=lambda r: mech.training_step(x[r], ctx[r], optimizers, generator),
                patience_factor=mech.patience_factor)


def _rebuild_mechanism(
    node: str, config: dict[str, Any], tensors: Mapping[str, torch.Tensor], graph: CausalGraph,
    schema: Schema,
) -> Mechanism:
    cls = registry.REGISTRY.get(config["type"])
    if cls is None:
        raise ModelFileError(
            f"node {node!r} uses mechanism {config['type']!r}, which this deepscm does not know; "
            f"known: {sorted(registry.REGISTRY)}"
        )
    var = schema[node]
    spec = MechanismSpec(**config["spec"])
    expected = MechanismSpec(
        var.dim, sum(schema[p].context_dim for p in graph.parents(node)), var.n_categories,
        var.tensor_shape,
    )
    if spec != expected:
        raise ModelFileError(
            f"node {node!r}: the mechanism's shape {spec} does not match the graph and schema "
            f"({expected}); the file was edited or is damaged"
        )
    mech = cls(**config["hparams"])
    mech.build(spec)
    mech.load_extra_config(config.get("state", {}))
    prefix = f"{node}/"
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        mech.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ModelFileError(f"weights of node {node!r} do not match its mechanism: {err}") from None
    mech.eval()
    return mech


def _average_draws(var: Variable, decoded: pd.DataFrame, n_units: int, n_draws: int) -> dict[str, Any]:
    """Reduce unit-major draws ``(unit, draw)`` of one node to one value per unit."""
    if var.is_image:
        pixels = stack_images(decoded[var.columns[0]], var.name)
        mean = pixels.reshape(n_units, n_draws, *pixels.shape[1:]).mean(axis=1)
        cells = np.empty(n_units, dtype=object)
        cells[:] = list(mean)
        return {var.columns[0]: cells}
    if var.discrete:
        col = var.columns[0]
        unit = np.repeat(np.arange(n_units), n_draws)
        return {col: decoded[col].reset_index(drop=True).groupby(unit).agg(lambda s: s.mode().iloc[0]).to_numpy()}
    return {
        col: decoded[col].to_numpy(dtype=np.float64).reshape(n_units, n_draws).mean(axis=1)
        for col in var.columns
    }


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DataError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
