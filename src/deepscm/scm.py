"""DeepSCM: a causal graph with one learned mechanism per node, ``x_i := f_i(pa_i, u_i)``.

The three rungs of Pearl's ladder are generic code over the graph and the mechanism protocol
(Pawlowski et al. 2020, §2):

- **association** — draw ``u`` from the noise priors, run the mechanisms in topological order;
- **intervention** — replace the mechanisms of intervened nodes, then sample;
- **counterfactual** — *abduct* every needed ``u`` from a unit's observed values, apply the
  intervention, and re-run only the descendants of the intervened nodes (*prediction*); all
  other columns are returned bit-for-bit unchanged.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import numpy as np
import pandas as pd
import torch

from .errors import DataError, DeepSCMError, GraphError, NotFittedError, UnsupportedGraphError
from .graph import CausalGraph, GraphLike
from .interventions import Intervention, Set, as_intervention
from .mechanisms import REGISTRY, Categorical, ConditionalFlow, ConditionalVAE, Mechanism, MechanismSpec
from .training import TrainingHistory, resolve_device, train_terms
from .variables import Schema, Variable, VariableSpec, stack_images

__all__ = ["DeepSCM", "MechanismChoice"]

MechanismChoice = Union[Mechanism, str, type]
#: rows processed at once when sampling, to bound memory.
_CHUNK = 1 << 16


class DeepSCM:
    """A deep structural causal model.

    Args:
        graph: the causal DAG (a :class:`CausalGraph`, an edge string or a networkx DiGraph).
        mechanisms: per node a :class:`Mechanism` instance, class or registered name
            (``"ConditionalFlow"``, ``"ConditionalVAE"``, ``"AdditiveNoise"``, ``"Categorical"``);
            or one such value used for every node of a kind it handles. Unspecified nodes get
            ``ConditionalFlow`` when continuous, ``Categorical`` when discrete and
            ``ConditionalVAE`` when an image. Instances are copied, never mutated.
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
        mechanisms: Mapping[str, MechanismChoice] | MechanismChoice | None = None,
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
        if isinstance(mechanisms, Mapping):
            self.graph.check_nodes(mechanisms.keys(), "mechanisms")
        self._mechanism_choice = mechanisms
        self._variable_overrides = dict(variables or {})
        self.schema: Schema | None = None
        self.mechanisms: dict[str, Mechanism] = {}
        self.history: TrainingHistory | None = None
        self.fit_info: dict[str, Any] = {}
        self.device = torch.device("cpu")
        self._interventions: dict[str, Intervention] = {}

    # ------------------------------------------------------------------ training
    def fit(
        self,
        data: pd.DataFrame,
        epochs: int = 300,
        batch_size: int = 512,
        lr: float = 5e-3,
        seed: int = 0,
        device: str | torch.device = "auto",
        val_fraction: float = 0.1,
        patience: int = 20,
        progress: bool = True,
    ) -> DeepSCM:
        """Fit every mechanism to its term of ``log p(x) = Σ_i log p(x_i | pa_i)``.

        The terms are independent, so all nodes train concurrently on shared mini-batches,
        each with early stopping on its held-out log-likelihood (``val_fraction`` of the rows,
        ``patience`` epochs). A failed fit leaves the model as it was. Returns ``self``.
        """
        if self._interventions:
            raise DeepSCMError("fit the base model, not an intervened copy made by do()")
        if not 0 <= val_fraction < 1:
            raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
        schema = Schema.infer(data, self.graph.nodes, self._variable_overrides)
        schema.check(data, "training")
        dev = resolve_device(device)
        started = time.perf_counter()
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(seed)
            mechanisms = {n: self._make_mechanism(n, schema) for n in self.graph.nodes}
            for mech in mechanisms.values():
                mech.to(dev)
            values = {v.name: v.encode(data, dev) for v in schema}
            contexts = {n: _context(self.graph, schema, n, values, len(data), dev) for n in self.graph.nodes}
            generator = torch.Generator(device=dev).manual_seed(seed)
            rows = torch.randperm(len(data), generator=generator, device=dev)
            n_val = int(round(val_fraction * len(data)))
            val_rows, train_rows = rows[:n_val], rows[n_val:]
            if len(train_rows) < 2:
                raise DataError(f"too few rows to train on ({len(data)}); give at least a few dozen")
            history = train_terms(
                mechanisms,
                lambda n, r: mechanisms[n].loss(values[n][r], contexts[n][r]),
                train_rows,
                val_rows if n_val else None,
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                generator=generator,
                patience=patience,
                progress=progress,
                desc="fitting DeepSCM",
            )
            for n, mech in mechanisms.items():
                mech.after_fit(values[n][train_rows], contexts[n][train_rows])
        self.schema, self.mechanisms, self.history, self.device = schema, mechanisms, history, dev
        self.fit_info = {
            "rows": len(data),
            "epochs_run": history.epochs_run,
            "seed": seed,
            "seconds": round(time.perf_counter() - started, 3),
            # mean held-out log p(x_i | pa_i) per node, in the data's own units
            "val_log_prob": {
                n: -min(v) + schema[n].log_jacobian() for n, v in history.val_loss.items() if v
            },
        }
        return self

    def _make_mechanism(self, node: str, schema: Schema) -> Mechanism:
        var = schema[node]
        choice = self._mechanism_choice
        if isinstance(choice, Mapping):
            choice = choice.get(node)
        kind = "discrete" if var.discrete else "image" if var.is_image else "continuous"
        mech = _instantiate(choice) if choice is not None else None
        if mech is not None and kind not in mech.handles:
            if not isinstance(self._mechanism_choice, Mapping):
                mech = None  # a single default choice applies to the kinds it handles
            else:
                raise DataError(
                    f"node {node!r} is {var.kind} but {type(mech).__name__} models "
                    f"{'/'.join(sorted(mech.handles))} nodes; choose another mechanism"
                )
        if mech is None:
            default = {"discrete": Categorical, "image": ConditionalVAE, "continuous": ConditionalFlow}
            mech = default[kind]()
        context_dim = sum(schema[p].context_dim for p in self.graph.parents(node))
        mech.build(MechanismSpec(var.dim, context_dim, var.n_categories, var.tensor_shape))
        return mech

    # ------------------------------------------------------------------ rung 1 and 2
    def sample(
        self, n: int, do: Mapping[str, Any] | None = None, seed: int | None = None
    ) -> pd.DataFrame:
        """``n`` draws from the observational distribution, or from ``p(· | do(...))``."""
        self._require_fitted()
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise DataError(f"n must be a positive integer, got {n!r}")
        interventions = self._interventions_with(do)
        generator = self._generator(seed)
        parts = []
        chunk = self._chunk_rows()
        with torch.no_grad():
            for start in range(0, n, chunk):
                size = min(chunk, n - start)
                noise = {node: m.sample_noise(size, generator) for node, m in self.mechanisms.items()}
                values = self._propagate(size, noise, interventions, {}, set(self.graph.nodes))
                parts.append(self._to_frame(values, interventions))
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]

    def do(self, **interventions: Any) -> DeepSCM:
        """A copy of the model with the given interventions built in (model surgery).

        Its :meth:`sample` draws from the interventional distribution and its
        :meth:`counterfactual` answers "had these interventions happened". The copy shares
        the fitted mechanisms; the original is unchanged.
        """
        self._require_fitted()
        out = copy.copy(self)
        out._interventions = self._interventions_with(interventions)
        return out

    @property
    def interventions(self) -> dict[str, Intervention]:
        return dict(self._interventions)

    def ate(
        self,
        treatment: str,
        outcome: str,
        treated: Any = 1,
        control: Any = 0,
        n: int = 10_000,
        seed: int | None = 0,
    ) -> float:
        """``E[outcome | do(treatment = treated)] − E[outcome | do(treatment = control)]``.

        Both arms use the same noise draws (common random numbers), which removes most of the
        Monte-Carlo noise from the difference. A binary outcome is scored as the probability
        of its second category.
        """
        self._require_fitted()
        self.graph.check_nodes({treatment, outcome}, "ate")
        var = self.schema[outcome]
        if var.kind == "categorical" or var.dim > 1:
            raise DataError(
                f"outcome {outcome!r} is {var.kind} with {var.dim} column(s); the ATE needs a "
                "scalar continuous or binary outcome"
            )
        means = []
        for value in (treated, control):
            frame = self.sample(n, do={treatment: value}, seed=seed)
            column = frame[var.columns[0]]
            if var.discrete:
                column = (column == var.categories[1]).astype(float)
            means.append(float(np.mean(column)))
        return means[0] - means[1]

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
        copied from ``units`` unchanged. ``result.attrs["abduction"]`` says for each column
        whether it is ``"factual"`` (unchanged), ``"point"`` (exact abduction: the unique
        counterfactual) or ``"draws"`` (stochastic abduction, e.g. a Gumbel-max node or a
        VAE's latent ``z`` upstream: each row is one draw from the counterfactual
        distribution). ``average=True`` reduces the ``n_samples`` draws to one row per unit —
        the Monte-Carlo mean for continuous and image columns (DSCM eq. 6 averaged over
        ``z``), the most frequent draw for discrete ones — and marks such columns ``"mean"``.
        """
        self._require_fitted()
        interventions = self._interventions_with(do)
        if not interventions:
            raise DataError("counterfactual needs an intervention: pass do={'node': value}")
        if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise DataError(f"n_samples must be a positive integer, got {n_samples!r}")
        self.schema.check(units, "counterfactual")
        changed = self.graph.descendants(set(interventions))
        needs_noise = {
            n for n in changed if n not in interventions or interventions[n].needs_natural
        }
        generator = self._generator(seed)
        reps = torch.arange(len(units), device=self.device).repeat_interleave(n_samples)
        with torch.no_grad():
            factual = {v.name: v.encode(units, self.device) for v in self.schema}
            values = {n: factual[n][reps] for n in self.graph.nodes}
            noise = {}
            for n in needs_noise:
                mech = self.mechanisms[n]
                context = _context(self.graph, self.schema, n, factual, len(units), self.device)
                if mech.exact_abduction:
                    noise[n] = mech.abduct(factual[n], context)[reps]
                else:
                    noise[n] = mech.abduct(values[n], context[reps], generator)
            values = self._propagate(len(reps), noise, interventions, values, changed)
        decoded = self._to_frame({n: values[n] for n in changed}, interventions)
        reduce = average and n_samples > 1
        if reduce:
            out = units.copy()
            for var in self.schema:
                if var.name in changed:
                    for col, value in _average_draws(var, decoded, len(units), n_samples).items():
                        out[col] = value
        else:
            out = units.iloc[reps.cpu().numpy()].copy()
            for col in decoded.columns:
                out[col] = decoded[col].to_numpy()
            if n_samples > 1:
                out.index = pd.MultiIndex.from_product(
                    [units.index, range(n_samples)], names=[units.index.name or "unit", "draw"]
                )
        stochastic = {n for n in needs_noise if not self.mechanisms[n].exact_abduction}
        out.attrs["abduction"] = {
            col: (
                "factual"
                if var.name not in changed
                else ("mean" if reduce else "draws")
                if self.graph.ancestors(var.name) & changed & stochastic
                else "point"
            )
            for var in self.schema
            for col in var.columns
        }
        return out

    # ------------------------------------------------------------------ likelihood
    def log_prob(self, data: pd.DataFrame, per_node: bool = False) -> pd.Series | pd.DataFrame:
        """``log p(x) = Σ_i log p(x_i | pa_i)`` per row, in the data's own units.

        Continuous densities include the Jacobian of the internal standardisation, so they
        are densities of the columns as given. ``per_node=True`` returns one column per node.
        A node whose mechanism only bounds its likelihood (a :class:`ConditionalVAE` reports
        the ELBO) makes the total a lower bound: ``result.attrs["lower_bound"]`` lists such
        nodes (empty when every term is exact).
        """
        self._require_fitted()
        if self._interventions:
            raise DeepSCMError("log_prob is defined for the observational model; call it on the base model")
        self.schema.check(data, "log_prob")
        with torch.no_grad():
            values = {v.name: v.encode(data, self.device) for v in self.schema}
            terms = {
                n: (
                    self.mechanisms[n].log_prob(
                        values[n], _context(self.graph, self.schema, n, values, len(data), self.device)
                    )
                    + self.schema[n].log_jacobian()
                ).cpu().numpy()
                for n in self.graph.nodes
            }
        frame = pd.DataFrame(terms, index=data.index)
        result = frame if per_node else frame.sum(axis=1).rename("log_prob")
        result.attrs["lower_bound"] = [
            n for n in self.graph.nodes if self.mechanisms[n].log_prob_is_bound
        ]
        return result

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the model to directory ``path`` (safetensors weights + JSON metadata).

        The write is atomic: a failure part-way leaves any model already at ``path`` intact.
        """
        from .io import save_model

        self._require_fitted()
        if self._interventions:
            raise DeepSCMError("save the base model, not an intervened copy made by do()")
        return save_model(self, path)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> DeepSCM:
        """Load a model written by :meth:`save`; never executes code from the file."""
        from .io import load_model

        return load_model(path, device)

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

    def _interventions_with(self, do: Mapping[str, Any] | None) -> dict[str, Intervention]:
        merged = dict(self._interventions)
        for node, spec in (do or {}).items():
            try:
                self.graph.check_nodes(node, "do(...)")
            except GraphError as err:
                raise DataError(str(err)) from None
            merged[node] = as_intervention(spec, self.graph.parents(node))
        for node, item in merged.items():
            if isinstance(item, Set):
                self.schema[node].encode_values(item.value_, 1)  # validate early
        return merged

    def _generator(self, seed: int | None) -> torch.Generator:
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**63))
        return torch.Generator(device=self.device).manual_seed(int(seed))

    def _propagate(
        self,
        n: int,
        noise: Mapping[str, torch.Tensor],
        interventions: Mapping[str, Intervention],
        values: Mapping[str, torch.Tensor],
        recompute: set[str],
    ) -> dict[str, torch.Tensor]:
        """Run the mechanisms of ``recompute`` in topological order; keep the other ``values``."""
        out = dict(values)
        for node in self.graph.nodes:
            if node not in recompute:
                continue
            context = _context(self.graph, self.schema, node, out, n, self.device)
            item = interventions.get(node)
            if item is None:
                out[node] = self.mechanisms[node].sample(context, noise[node])
                continue
            var = self.schema[node]
            natural = None
            if item.needs_natural:
                natural = var.decode_array(self.mechanisms[node].sample(context, noise[node]))
            parents = {p: self.schema[p].decode_array(out[p]) for p in self.graph.parents(node)}
            try:
                new = item.value(natural, parents)
            except Exception as err:  # a user's callable failed
                raise DataError(f"the intervention on {node!r} raised {type(err).__name__}: {err}") from err
            out[node] = var.encode_values(new, n, self.device)
        return out

    def _to_frame(
        self, values: Mapping[str, torch.Tensor], interventions: Mapping[str, Intervention]
    ) -> pd.DataFrame:
        """Decode to user units; hard-set continuous values are returned exactly as given
        (not through the float32 encoding)."""
        columns: dict[str, Any] = {}
        for var in self.schema:
            if var.name not in values:
                continue
            item = interventions.get(var.name)
            if isinstance(item, Set) and var.kind == "continuous":
                shape = (len(values[var.name]), var.dim)
                exact = np.broadcast_to(np.asarray(item.value_, dtype=np.float64), shape)
                columns.update({c: exact[:, j].copy() for j, c in enumerate(var.columns)})
            else:
                columns.update(var.decode(values[var.name]))
        return pd.DataFrame(columns)

    def __repr__(self) -> str:
        state = "fitted" if self.is_fitted else "not fitted"
        extra = f", do={sorted(self._interventions)}" if self._interventions else ""
        return f"DeepSCM({str(self.graph)!r}, {state}{extra})"


def _context(
    graph: CausalGraph, schema: Schema, node: str, values: Mapping[str, torch.Tensor],
    n: int, device: torch.device,
) -> torch.Tensor:
    """The parents of ``node`` as one float tensor ``(n, c)``; ``(n, 0)`` for a root."""
    parents = graph.parents(node)
    if not parents:
        return torch.zeros(n, 0, device=device)
    return torch.cat([schema[p].to_context(values[p]) for p in parents], dim=-1)


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
        return {col: decoded[col].groupby(unit).agg(lambda s: s.mode().iloc[0]).to_numpy()}
    return {
        col: decoded[col].to_numpy(dtype=np.float64).reshape(n_units, n_draws).mean(axis=1)
        for col in var.columns
    }


def _instantiate(choice: MechanismChoice) -> Mechanism:
    if isinstance(choice, Mechanism):
        if choice.spec is not None:
            raise DataError("pass an unfitted mechanism (a fresh instance) to DeepSCM")
        return copy.deepcopy(choice)
    if isinstance(choice, type) and issubclass(choice, Mechanism):
        return choice()
    if isinstance(choice, str):
        names = {k.lower(): v for k, v in REGISTRY.items()}
        aliases = {
            "flow": "conditionalflow", "vae": "conditionalvae",
            "additive": "additivenoise", "anm": "additivenoise",
        }
        key = aliases.get(choice.lower(), choice.lower())
        if key in names:
            return names[key]()
        raise DataError(f"unknown mechanism {choice!r}; choose one of {sorted(REGISTRY)}")
    raise DataError(f"cannot use {choice!r} as a mechanism; pass a Mechanism instance, class or name")
