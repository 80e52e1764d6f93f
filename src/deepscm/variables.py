"""Variable schema: which columns hold each node, its kind, and the internal encoding.

Users see their own units and labels. Internally a continuous node is standardised,
``z = (x - loc) / scale``, and a discrete node is an integer code into its category list.
An *image* node lives in one DataFrame column whose cells are arrays of one shape, ``(H, W)``
or ``(C, H, W)`` (build it with ``df["image"] = list(images)``); internally it is a float
tensor ``(n, C, H, W)`` standardised by one pixel mean and standard deviation. The schema is
inferred from a DataFrame and can be overridden per node.

Rules that keep answers honest:

- **Labels match by value and type family.** The families are booleans (``bool``,
  ``numpy.bool_``), numbers (``int``, ``float`` and numpy numbers; ``2`` and ``2.0`` are the
  same label) and everything else (text is matched exactly: ``"1"`` is not ``1``). A
  bool-labelled node also accepts the numbers 0/1 (and 0.0/1.0), mapped to ``False``/``True``;
  a number-labelled node refuses ``True``/``False``. A value that matches no label raises
  :class:`DataError` naming the column, the values and the labels — a value is never encoded
  as an invalid code.
- **Inferred categoricals are sanity-checked** (declared kinds never are): a text column is
  refused as a categorical when more than half of its non-missing values parse as numbers
  (numbers stored as text, e.g. after one stray ``"?"``) or when it has more than
  ``max(20, rows / 2)`` distinct values (an ID or free-text column). Fix the data with
  ``pd.to_numeric(df[col], errors="coerce")`` or declare the kind, ``variables={col:
  "categorical"}``. A pandas ``Categorical`` column counts as declared categorical; its
  unused levels are dropped, so the categories (and binary vs categorical) come from the
  levels the data uses. A text/object column that mixes families (e.g. ``"a"`` and ``1``) is
  refused, except True/False mixed with 0/1, which is a boolean column.
- **Support of a continuous node.** ``Variable.continuous(name, support="positive")`` (or
  ``variables={name: "positive"}``) models ``log x`` — ``z = (log x - loc) / scale`` — so
  samples are always > 0; ``support=(low, high)`` models ``logit((x - low) / (high - low))``,
  so samples stay strictly inside the bounds. Data or intervention values outside the support
  raise :class:`DataError`. Such a node's log-Jacobian depends on the value: convert a
  standardised log-density to the user's units with :meth:`Variable.log_jacobian_rows`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args

import numpy as np
import pandas as pd
import torch

from .errors import DataError

__all__ = [
    "KINDS",
    "MAX_INT_LEVELS",
    "MIN_MAX_LEVELS",
    "SUPPORTS",
    "Schema",
    "Variable",
    "VariableSpec",
    "stack_images",
]

Kind = Literal["continuous", "binary", "categorical", "image"]
KINDS: tuple[str, ...] = get_args(Kind)
#: integer columns with at most this many distinct values are inferred as categorical.
MAX_INT_LEVELS = 10
#: an inferred text categorical may have at most ``max(MIN_MAX_LEVELS, rows / 2)`` levels.
MIN_MAX_LEVELS = 20
#: named supports of a continuous node (besides a ``(low, high)`` pair).
SUPPORTS: tuple[str, ...] = ("positive",)
#: decoded values are kept this far inside ``(low, high)`` (float64 rounding would reach the ends).
_EDGE = 1e-12
_LOG_MAX = 700.0  # exp() of more overflows float64

Support = str | list[float] | None


@dataclass
class Variable:
    """One node of the graph as the data holds it.

    Attributes:
        name: node name.
        kind: ``"continuous"``, ``"binary"``, ``"categorical"`` or ``"image"``.
        columns: the DataFrame columns of the node (several for a continuous vector).
        categories: the labels of a discrete node, in code order.
        loc, scale: standardisation of a continuous node (learned by :meth:`Schema.infer`),
            of the transformed value when ``support`` is set; one pixel mean and standard
            deviation for an image.
        dtype: the pandas dtype of the labels, restored on output.
        shape: an image's cell shape as the user gives it, ``(H, W)`` or ``(C, H, W)``.
        bounds: an image's pixel range in the training data; decoded images are clipped to
            it, so generated pixels stay in the range the data uses (e.g. 0–255).
        support: of a continuous node: ``None`` (the real line), ``"positive"`` (x > 0, a log
            transform) or ``[low, high]`` (low < x < high, a scaled logit transform).
    """

    name: str
    kind: Kind = "continuous"
    columns: list[str] = field(default_factory=list)
    categories: list[Any] | None = None
    loc: list[float] | None = None
    scale: list[float] | None = None
    dtype: str | None = None
    shape: list[int] | None = None
    bounds: list[float] | None = None
    support: Support = None

    def __post_init__(self) -> None:
        if not self.columns:
            self.columns = [self.name]
        if self.kind not in KINDS:
            raise DataError(
                f"variable {self.name!r}: unknown kind {self.kind!r}; use one of {list(KINDS)}"
            )
        if (self.discrete or self.is_image) and len(self.columns) != 1:
            raise DataError(f"{self.kind} variable {self.name!r} must have exactly one column")
        if self.shape is not None:
            self.shape = [int(s) for s in self.shape]
            if len(self.shape) not in (2, 3) or min(self.shape) < 1:
                raise DataError(
                    f"image variable {self.name!r}: shape {self.shape} must be (H, W) or (C, H, W)"
                )
        if self.categories is not None:
            self.categories = list(self.categories)
            _check_labels(self.name, self.categories)
        self.support = _normalise_support(self.name, self.kind, self.support)

    # ------------------------------------------------------------------ shorthands
    @classmethod
    def continuous(
        cls,
        name: str,
        columns: Sequence[str] | None = None,
        support: str | Sequence[float] | None = None,
    ) -> Variable:
        """A continuous node; ``support="positive"`` or ``(low, high)`` keeps samples inside."""
        return cls(name, "continuous", list(columns or [name]), support=support)  # type: ignore[arg-type]

    @classmethod
    def image(cls, name: str, shape: Sequence[int] | None = None) -> Variable:
        """An image node whose cells have ``shape`` (inferred from the data when ``None``)."""
        return cls(name, "image", [name], shape=None if shape is None else list(shape))

    @classmethod
    def categorical(cls, name: str, categories: Sequence[Any] | None = None) -> Variable:
        cats = None if categories is None else list(categories)
        kind: Kind = "binary" if cats is not None and len(cats) == 2 else "categorical"
        return cls(name, kind, [name], cats)

    @property
    def discrete(self) -> bool:
        return self.kind in ("binary", "categorical")

    @property
    def is_image(self) -> bool:
        return self.kind == "image"

    @property
    def tensor_shape(self) -> tuple[int, ...] | None:
        """An image's internal shape ``(C, H, W)``; ``None`` for other kinds."""
        if not self.is_image or self.shape is None:
            return None
        return tuple(self.shape) if len(self.shape) == 3 else (1, *self.shape)

    @property
    def dim(self) -> int:
        """Width of the node's value: columns for continuous, 1 (a code) for discrete,
        ``C·H·W`` for an image."""
        if self.is_image:
            return int(np.prod(self.tensor_shape or (0,)))
        return 1 if self.discrete else len(self.columns)

    @property
    def n_categories(self) -> int | None:
        return len(self.categories) if self.discrete and self.categories is not None else None

    @property
    def context_dim(self) -> int:
        """Width of the node as a parent: one-hot for >2 categories, one number otherwise."""
        if self.kind == "categorical":
            return len(self.categories or ())
        return self.dim

    def default_contrast(self) -> tuple[Any, Any]:
        """``(treated, control)`` for an effect of this node when the caller gives none.

        A binary node: its own labels, ``(second, first)`` (e.g. ``(True, False)``,
        ``("yes", "no")``). A continuous scalar node: ``(1.0, 0.0)`` when both lie in its
        support. Anything else raises :class:`DataError` asking for explicit values.
        """
        if self.kind == "binary" and self.categories is not None:
            return self.categories[1], self.categories[0]
        if self.kind == "continuous" and self.dim == 1:
            low, high = self.support if isinstance(self.support, list) else (-np.inf, np.inf)
            if self.support != "positive" and low < 0.0 and 1.0 < high:
                return 1.0, 0.0
            what = f"continuous with support {self.support!r}, which excludes 1.0 or 0.0"
        elif self.discrete:
            what = f"{self.kind} with labels {self.categories}"
        else:
            what = "an image" if self.is_image else f"a vector of {self.dim} columns"
        raise DataError(
            f"treatment {self.name!r} is {what}; there is no default contrast: give treated= "
            "and control= explicitly"
        )

    # ------------------------------------------------------------------ encoding
    def encode(self, frame: pd.DataFrame, device: torch.device | str = "cpu") -> torch.Tensor:
        """Data → internal tensor: standardised floats ``(n, d)``, integer codes ``(n,)``, or
        standardised images ``(n, C, H, W)``. Raises :class:`DataError` for values the node
        cannot hold (see :meth:`check`)."""
        if self.is_image:
            self.check(frame, "input")
            pixels = stack_images(frame[self.columns[0]], self.name)
            z = (pixels.reshape(len(pixels), *self.tensor_shape) - self.loc[0]) / self.scale[0]
            return torch.as_tensor(z, dtype=torch.float32, device=device)
        if self.discrete:
            codes = self._codes(_column(frame, self.columns[0], "input"), "input")
            return torch.as_tensor(codes, device=device)
        values = self._numbers(frame, "input")
        return self._standardised(values, "input", device)

    def encode_values(self, values: Any, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Encode a constant or an array of values in user units (an intervention value)."""
        role = "intervention value"
        if self.is_image:
            try:
                arr = np.asarray(values, dtype=np.float64) if not isinstance(values, pd.Series) else values
            except (TypeError, ValueError):
                raise DataError(
                    f"intervention value for image {self.name!r} must be an array of shape "
                    f"{tuple(self.shape or ())} or {n} of them, got {_short(values)}"
                ) from None
            if isinstance(arr, np.ndarray) and arr.shape == tuple(self.shape or ()):
                arr = np.broadcast_to(arr, (n, *arr.shape))
            frame = pd.DataFrame({self.columns[0]: list(arr)})
            if len(frame) != n:
                raise DataError(
                    f"intervention value for image {self.name!r}: give one image of shape "
                    f"{tuple(self.shape or ())} or {n} of them, got {len(frame)}"
                )
            self.check(frame, role)
            return self.encode(frame, device)
        if self.discrete:
            try:
                arr = np.broadcast_to(np.asarray(values, dtype=object), (n,))
            except ValueError:
                raise DataError(
                    f"intervention value for {self.name!r}: give one label or {n} labels "
                    f"(one per row), got {_short(values)}; the labels are {self.categories}"
                ) from None
            codes = self._codes(pd.Series(list(arr), dtype=object, name=self.columns[0]), role)
            return torch.as_tensor(codes, device=device)
        try:
            arr = np.asarray(values)
            if arr.dtype.kind not in "iuf":  # text, booleans, objects: not a number
                raise TypeError
            arr = arr.astype(np.float64)
            if arr.ndim <= 1 and arr.size in (1, n) and self.dim == 1:
                arr = np.broadcast_to(arr.reshape(-1, 1), (n, 1))
            arr = np.broadcast_to(arr, (n, self.dim))
        except (TypeError, ValueError):
            raise DataError(
                f"intervention value for continuous {self.name!r} must be a number or an array "
                f"of {n} numbers (or shape ({n}, {self.dim}) for a vector), got {_short(values)}"
            ) from None
        if not np.isfinite(arr).all():
            raise DataError(f"intervention value for {self.name!r} is NaN or infinite")
        self._check_support(arr, f"the intervention value for {self.name!r}", role)
        return self._standardised(arr, role, device)

    def decode(self, value: torch.Tensor) -> dict[str, Any]:
        """Internal tensor → ``{column: values}`` in user units and labels."""
        arr = value.detach().cpu().numpy()
        if self.is_image:
            pixels = arr.astype(np.float32) * np.float32(self.scale[0]) + np.float32(self.loc[0])
            if self.bounds is not None:
                pixels = np.clip(pixels, self.bounds[0], self.bounds[1])
            cells = np.empty(len(pixels), dtype=object)
            cells[:] = list(pixels.reshape(len(pixels), *(self.shape or ())))
            return {self.columns[0]: cells}
        if self.discrete:
            labels = np.asarray(self.categories, dtype=object)[arr.astype(np.int64)]
            return {self.columns[0]: _restore_dtype(labels, self.dtype, self.categories)}
        x = self._inverse(arr.astype(np.float64) * np.asarray(self.scale) + np.asarray(self.loc))
        return {c: x[:, j] for j, c in enumerate(self.columns)}

    def decode_array(self, value: torch.Tensor) -> np.ndarray:
        """Like :meth:`decode` but as one array ``(n,)`` or ``(n, d)`` (for callables)."""
        cols = self.decode(value)
        if self.is_image:
            return stack_images(cols[self.columns[0]], self.name)
        if len(self.columns) == 1:
            return np.asarray(cols[self.columns[0]])
        return np.column_stack([cols[c] for c in self.columns])

    def to_context(self, value: torch.Tensor) -> torch.Tensor:
        """The node as a parent: floats ``(n, context_dim)`` (an image is flattened)."""
        if self.is_image:
            return value.flatten(1)
        if self.kind == "categorical":
            return torch.nn.functional.one_hot(value, len(self.categories or ())).float()
        if self.kind == "binary":
            return value.float().unsqueeze(-1)
        return value

    def log_jacobian(self) -> float:
        """``-Σ log scale``: converts a standardised log-density into the user's units.

        Only for nodes without a ``support`` transform, whose Jacobian is constant; for any
        node :meth:`log_jacobian_rows` is exact.
        """
        if self.support is not None:
            raise DataError(
                f"variable {self.name!r} has support {self.support!r}: its log-Jacobian depends "
                "on the value; use log_jacobian_rows(z) with the encoded values"
            )
        if self.is_image:
            return -self.dim * float(np.log(self.scale[0]))
        return 0.0 if self.discrete else -float(np.sum(np.log(self.scale)))

    def log_jacobian_rows(self, z: torch.Tensor) -> torch.Tensor:
        """``log |dz/dx|`` per row, shape ``(n,)``, for the encoded values ``z`` of :meth:`encode`.

        ``log p(x) = log p(z) + log_jacobian_rows(z)`` turns a standardised log-density into
        the user's units for every kind: 0 for a discrete node, ``-Σ log scale`` without a
        support, and for ``support="positive"`` (``t = log x``) ``-Σ (t + log scale)``; for
        ``[low, high]`` (``t = logit u``, ``u = (x - low)/(high - low)``)
        ``Σ (-log u - log(1 - u) - log(high - low) - log scale)``.
        """
        n = z.shape[0]
        if self.discrete:
            return torch.zeros(n, dtype=torch.float32, device=z.device)
        if self.support is None:
            constant = self.log_jacobian()
            return torch.full((n,), constant, dtype=torch.float32, device=z.device)
        loc = torch.as_tensor(self.loc, dtype=z.dtype, device=z.device)
        scale = torch.as_tensor(self.scale, dtype=z.dtype, device=z.device)
        t = z.reshape(n, -1) * scale + loc
        if self.support == "positive":
            per_value = -t
        else:
            low, high = self.support
            sp = torch.nn.functional.softplus
            per_value = sp(-t) + sp(t) - float(np.log(high - low))
        return (per_value - torch.log(scale)).sum(dim=1)

    # ------------------------------------------------------------------ validation
    def check(self, frame: pd.DataFrame, role: str) -> None:
        """Raise :class:`DataError` for NaN/inf, non-numbers, values outside the support or
        labels the node does not know (matched by value and type, see the module notes)."""
        if self.is_image:
            series = _column(frame, self.columns[0], role)
            _check_missing(series, self.columns[0], role)
            pixels = stack_images(series, self.name, role)
            col = self.columns[0]
            if self.shape is not None and list(pixels.shape[1:]) != self.shape:
                raise DataError(
                    f"image column {col!r} holds arrays of shape {pixels.shape[1:]} "
                    f"{_in(role)}; the model expects {tuple(self.shape)}"
                )
            bad = int((~np.isfinite(pixels.reshape(len(pixels), -1))).any(axis=1).sum())
            if bad:
                raise DataError(
                    f"image column {col!r} has {bad} image(s) with NaN or infinite pixels "
                    f"{_in(role)}; drop or repair them first"
                )
            return
        if self.discrete:
            series = _column(frame, self.columns[0], role)
            _check_missing(series, self.columns[0], role)
            if self.categories is not None:
                self._codes(series, role)
            return
        self._numbers(frame, role)

    def _numbers(self, frame: pd.DataFrame, role: str) -> np.ndarray:
        """The node's columns as checked float64 ``(n, d)``: numbers, finite, in the support."""
        for col in self.columns:
            series = _column(frame, col, role)
            _check_missing(series, col, role)
            if (
                not pd.api.types.is_numeric_dtype(series)
                or pd.api.types.is_bool_dtype(series)
                or pd.api.types.is_complex_dtype(series)
            ):
                raise DataError(
                    f"column {col!r} is declared continuous but holds {series.dtype} values; "
                    f"convert it to numbers (pd.to_numeric(df[{col!r}], errors='coerce')) or "
                    "declare it categorical"
                )
        try:
            values = frame[self.columns].to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise DataError(
                f"column(s) {self.columns} of {self.name!r} cannot be read as numbers "
                f"{_in(role)}: {err}"
            ) from None
        infinite = np.isinf(values).sum(axis=0)
        for col, count in zip(self.columns, infinite):
            if count:
                raise DataError(
                    f"column {col!r} has {int(count)} infinite value(s) {_in(role)}; "
                    "drop or clip those rows first"
                )
        self._check_support(values, None, role)
        return values

    def _check_support(self, values: np.ndarray, label: str | None, role: str) -> None:
        if self.support is None:
            return
        if self.support == "positive":
            outside, text = values <= 0, "x > 0"
        else:
            low, high = self.support
            outside, text = (values <= low) | (values >= high), f"{low:g} < x < {high:g}"
        count = int(outside.any(axis=1).sum()) if outside.ndim == 2 else int(outside.sum())
        if count:
            examples = ", ".join(f"{v:g}" for v in np.unique(values[outside])[:5])
            where = label or ", ".join(map(repr, self.columns))
            raise DataError(
                f"{where} has {count} row(s) outside the declared support {text} of "
                f"{self.name!r} {_in(role)} (e.g. {examples}); fix or drop those rows, "
                "or declare a wider support"
            )

    def _standardised(self, values: np.ndarray, role: str, device: torch.device | str) -> torch.Tensor:
        """``z`` of checked values as a float32 tensor; :class:`DataError` on overflow."""
        with np.errstate(over="ignore"):
            z = ((self._forward(values) - np.asarray(self.loc)) / np.asarray(self.scale)).astype(np.float32)
        if not np.isfinite(z).all():
            biggest = float(np.max(np.abs(values)))
            raise DataError(
                f"{self.name!r} has values {_in(role)} too far outside the training data to "
                f"encode (|x| up to {biggest:.3g}, training mean {self.loc} and scale {self.scale}); "
                "check the units"
            )
        return torch.as_tensor(z, device=device)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        if self.support is None:
            return x
        if self.support == "positive":
            return np.log(x)
        low, high = self.support
        u = (x - low) / (high - low)
        return np.log(u) - np.log1p(-u)

    def _inverse(self, t: np.ndarray) -> np.ndarray:
        if self.support is None:
            return t
        if self.support == "positive":
            return np.exp(np.clip(t, -_LOG_MAX, _LOG_MAX))
        low, high = self.support
        u = np.clip(0.5 * (1.0 + np.tanh(0.5 * t)), _EDGE, 1.0 - _EDGE)
        return low + (high - low) * u

    def _codes(self, series: pd.Series, role: str) -> np.ndarray:
        """Integer codes ``(n,)`` of the labels in ``series``; :class:`DataError` for any value
        that matches no label (never an invalid code)."""
        col = self.columns[0]
        if self.categories is None:
            raise DataError(f"variable {self.name!r} has no categories yet; fit the model first")
        lookup: dict[tuple[str, Any], int] = {}
        for code, label in enumerate(self.categories):
            lookup.setdefault(_label_key(label), code)
        if all(_label_key(c)[0] == "bool" for c in self.categories):
            for number in (0, 1):
                lookup.setdefault(("number", number), lookup.get(("bool", bool(number)), -1))
        if isinstance(series.dtype, pd.CategoricalDtype):
            per_level = [_lookup(lookup, c) for c in series.cat.categories] + [-1]
            codes = np.asarray(per_level, dtype=np.int64)[series.cat.codes.to_numpy()]
        elif series.dtype == object:
            codes = np.fromiter((_lookup(lookup, v) for v in series), dtype=np.int64, count=len(series))
        else:  # one dtype: factorising cannot mix True with 1
            inverse, uniques = pd.factorize(series, use_na_sentinel=True)
            per_unique = np.asarray([_lookup(lookup, v) for v in uniques] + [-1], dtype=np.int64)
            codes = per_unique[inverse]
        bad = codes < 0
        if bad.any():
            values = series[bad].tolist()
            shown = list(dict.fromkeys(_short(v) for v in values))[:5]
            families = {_label_key(c)[0] for c in self.categories}
            hint = ""
            if any(_family(v) not in families for v in values):
                hint = (
                    f" (labels match by value and type: these labels are {_family_names(families)}"
                    + ("; a bool node also accepts 0/1" if families == {"bool"} else "")
                    + ")"
                )
            raise DataError(
                f"column {col!r} has {int(bad.sum())} row(s) with unseen "
                f"categor{'ies' if len(shown) > 1 else 'y'} {', '.join(shown)} {_in(role)}; "
                f"the model knows {self.categories}{hint}"
            )
        return codes

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "columns": self.columns,
            "categories": None if self.categories is None else [_jsonable(c) for c in self.categories],
            "loc": self.loc,
            "scale": self.scale,
            "dtype": self.dtype,
            "shape": self.shape,
            "bounds": self.bounds,
            "support": self.support,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Variable:
        return cls(**dict(data))


VariableSpec = Union[Variable, str, Sequence[str]]


class Schema:
    """The variables of every node, in the graph's topological order."""

    def __init__(self, variables: Sequence[Variable]) -> None:
        self.variables: dict[str, Variable] = {v.name: v for v in variables}

    def __getitem__(self, node: str) -> Variable:
        return self.variables[node]

    def __iter__(self):
        return iter(self.variables.values())

    @property
    def columns(self) -> list[str]:
        return [c for v in self for c in v.columns]

    @classmethod
    def infer(
        cls,
        frame: pd.DataFrame,
        nodes: Sequence[str],
        overrides: Mapping[str, VariableSpec] | None = None,
    ) -> Schema:
        """Infer each node's kind and encoding from ``frame``.

        A node is read from the column of the same name unless ``overrides`` says otherwise:
        a :class:`Variable`, a kind string (``"continuous"``, ``"binary"``,
        ``"categorical"``), ``"positive"`` (continuous with ``support="positive"``), or a list
        of columns (a continuous vector). Inference: a column of arrays is an image; bool,
        pandas category, string/object columns and integer columns with at most
        :data:`MAX_INT_LEVELS` values are discrete (binary with two levels); float columns
        whose only values are 0 and 1 are binary; everything else is continuous. Inferred
        text categoricals are refused when they look like numbers or have too many levels
        (see the module notes).
        """
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"expected a pandas DataFrame for the training data, got {type(frame).__name__}")
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(nodes), key=str)
        if unknown:
            raise DataError(f"variables given for unknown node(s) {unknown}; the graph has {list(nodes)}")
        if len(frame) == 0:
            raise DataError("the training data has no rows")
        _check_unique_columns(frame, "training")
        variables = []
        for node in nodes:
            spec = overrides.get(node)
            if isinstance(spec, Variable):
                var = Variable(**{**spec.to_dict(), "name": node})
            elif spec in SUPPORTS:
                var = Variable.continuous(node, support=spec)
            elif isinstance(spec, str):
                var = Variable(node, spec)  # type: ignore[arg-type]
            elif spec is not None:
                var = Variable.continuous(node, list(spec))
            elif node in frame:
                var = _infer_variable(node, frame[node], len(frame))
            else:
                var = Variable(node)
            variables.append(var)
        schema = cls(variables)
        schema.check(frame, "training", allow_unseen=True)
        for var in schema:
            _learn_encoding(var, frame)
        return schema

    def check(self, frame: pd.DataFrame, role: str, allow_unseen: bool = False) -> None:
        """Validate ``frame`` against the schema; raise :class:`DataError` naming the problem."""
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"expected a pandas DataFrame for the {role} data, got {type(frame).__name__}")
        expected = self.columns
        missing = [c for c in expected if c not in frame.columns]
        if missing:
            raise DataError(
                f"the {role} data lacks column(s) {missing}; the model needs {expected}"
            )
        extra = [c for c in frame.columns if c not in expected]
        if extra:
            raise DataError(
                f"the {role} data has column(s) {extra} that are not in the graph; drop them "
                f"(df.drop(columns={extra})) or add the variables to the graph"
            )
        _check_unique_columns(frame, role)
        if len(frame) == 0:
            raise DataError(f"the {role} data has no rows")
        for var in self:
            if allow_unseen and var.discrete:
                Variable(var.name, var.kind, var.columns).check(frame, role)
            else:
                var.check(frame, role)

    def to_list(self) -> list[dict[str, Any]]:
        return [v.to_dict() for v in self]

    @classmethod
    def from_list(cls, data: Sequence[Mapping[str, Any]]) -> Schema:
        return cls([Variable.from_dict(d) for d in data])


# ---------------------------------------------------------------------- labels
def _family(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "number"
    if isinstance(value, str):
        return "text"
    return "other"


def _family_names(families: set[str]) -> str:
    names = {"bool": "True/False", "number": "numbers", "text": "text", "other": "other objects"}
    return " and ".join(names[f] for f in sorted(families))


def _label_key(value: Any) -> tuple[str, Any]:
    """A dict key that equals another only for the same label: ``True`` ≠ ``1``, ``2`` = ``2.0``."""
    family = _family(value)
    if family == "bool":
        return family, bool(value)
    if isinstance(value, np.generic):
        return family, value.item()
    return family, value


def _lookup(lookup: Mapping[tuple[str, Any], int], value: Any) -> int:
    try:
        return lookup.get(_label_key(value), -1)
    except TypeError:  # unhashable, e.g. a list
        return -1


def _check_labels(name: str, labels: list[Any]) -> None:
    keys = []
    for label in labels:
        try:
            keys.append(_label_key(label))
            hash(keys[-1])
        except TypeError:
            raise DataError(
                f"variable {name!r}: category {_short(label)} is not a valid label; labels are "
                "numbers, booleans or text"
            ) from None
    if len(set(keys)) != len(keys):
        raise DataError(f"variable {name!r}: the categories {labels} contain duplicates")


def _infer_labels(name: str, series: pd.Series) -> list[Any]:
    """The distinct labels of ``series`` (no missing values), sorted within their family."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        used = set(series.cat.codes[series.cat.codes >= 0].unique().tolist())
        return [c for i, c in enumerate(series.cat.categories) if i in used]
    values = series.dropna()
    if values.dtype != object:
        return sorted(pd.unique(values).tolist(), key=_sort_key)
    by_key: dict[tuple[str, Any], Any] = {}
    for v in values:
        try:
            by_key.setdefault(_label_key(v), v)
        except TypeError:
            raise DataError(
                f"column {name!r} holds {type(v).__name__} values, which cannot be category "
                "labels; an image column holds numpy arrays of one shape "
                f"(df[{name!r}] = list(images))"
            ) from None
    families = {family for family, _ in by_key}
    if families == {"bool", "number"} and {k for f, k in by_key if f == "number"} <= {0, 1}:
        return [False, True]
    if len(families) > 1:
        examples = {f: _short(v) for (f, _), v in by_key.items()}
        raise DataError(
            f"column {name!r} mixes label types ({_family_names(families)}: "
            f"{', '.join(examples.values())}); labels match by value and type, so make the column "
            f"one type, e.g. df[{name!r}] = df[{name!r}].astype(str)"
        )
    labels = list(by_key.values())
    try:
        return sorted(labels, key=_sort_key)
    except TypeError:
        return labels


def _infer_variable(node: str, series: pd.Series, rows: int) -> Variable:
    """The inferred :class:`Variable` of one column (categories set for a discrete node)."""
    if series.dtype == object and len(series) and isinstance(series.iloc[0], np.ndarray):
        return Variable(node, "image")
    if pd.api.types.is_bool_dtype(series) or isinstance(series.dtype, pd.CategoricalDtype):
        labels = _infer_labels(node, series)
    elif not pd.api.types.is_numeric_dtype(series):
        labels = _infer_labels(node, series)
        _refuse_suspicious_text(node, series, labels, rows)
    else:
        levels = series.nunique(dropna=True)
        few_ints = pd.api.types.is_integer_dtype(series) and levels <= MAX_INT_LEVELS
        zero_one = levels == 2 and set(pd.unique(series.dropna())) == {0.0, 1.0}
        if not (few_ints or zero_one):
            return Variable(node, "continuous")
        labels = _infer_labels(node, series)
    return Variable(node, "binary" if len(labels) == 2 else "categorical", [node], labels)


def _refuse_suspicious_text(node: str, series: pd.Series, labels: list[Any], rows: int) -> None:
    values = series.dropna()
    text = values[[isinstance(v, str) for v in values]]
    numeric = pd.to_numeric(text, errors="coerce").notna().to_numpy() if len(text) else np.zeros(0, bool)
    fix = (
        f"convert it with df[{node!r}] = pd.to_numeric(df[{node!r}], errors='coerce') (then drop "
        f"or impute the NaN rows), or declare the kind: variables={{{node!r}: 'categorical'}} "
        f"(CLI: --categorical {node})"
    )
    if len(values) and numeric.sum() > 0.5 * len(values):
        others = list(dict.fromkeys(_short(v) for v in text[~numeric]))[:5]
        numbers = list(dict.fromkeys(_short(v) for v in text[numeric]))[:5]
        rest = f"the values that are not numbers: {', '.join(others)}" if others else (
            "all of them are numbers stored as text"
        )
        raise DataError(
            f"column {node!r} holds text, but {int(numeric.sum())} of its {len(values)} values look "
            f"like numbers (e.g. {', '.join(numbers)}); {rest}. As a categorical every number "
            f"would be its own category: {fix}"
        )
    limit = max(MIN_MAX_LEVELS, rows // 2)
    if len(labels) > limit:
        shown = ", ".join(_short(v) for v in labels[:5])
        raise DataError(
            f"column {node!r} has {len(labels)} distinct text values in {rows} rows (e.g. {shown}), "
            f"more than a categorical may have (max(20, rows/2) = {limit}); an ID or free-text "
            f"column cannot be modelled: drop it, or {fix}"
        )


def _learn_encoding(var: Variable, frame: pd.DataFrame) -> None:
    if var.is_image:
        pixels = stack_images(frame[var.columns[0]], var.name)
        var.shape = var.shape or list(pixels.shape[1:])
        if not pixels.std() > 0:
            raise DataError(f"image column {var.columns[0]!r} is constant in the training data")
        var.loc, var.scale = [float(pixels.mean())], [float(pixels.std())]
        var.bounds = var.bounds or [float(pixels.min()), float(pixels.max())]
        return
    if var.discrete:
        series = frame[var.columns[0]]
        if var.categories is None:
            var.categories = _infer_labels(var.columns[0], series)
        if var.kind == "binary" and len(var.categories) != 2:
            raise DataError(
                f"column {var.columns[0]!r} is declared binary but has {len(var.categories)} "
                f"levels {var.categories[:10]}; declare it 'categorical'"
            )
        if len(var.categories) < 2:
            raise DataError(
                f"column {var.columns[0]!r} has a single level {var.categories}; a constant "
                "variable carries no causal information: drop it from the graph"
            )
        var.categories = [_jsonable(c) for c in var.categories]
        bools = series.dtype == object and all(isinstance(c, bool) for c in var.categories)
        var.dtype = "bool" if bools else str(series.dtype)
        return
    values = var._forward(var._numbers(frame, "training"))
    with np.errstate(over="ignore", invalid="ignore"):
        scale = values.std(axis=0)
    constant = [c for c, s in zip(var.columns, scale) if not s > 0]
    if constant:
        raise DataError(
            f"column(s) {constant} are constant in the training data; a constant variable "
            "cannot be modelled: drop it from the graph"
        )
    huge = [c for c, s in zip(var.columns, scale) if not np.isfinite(s)]
    if huge:
        raise DataError(
            f"column(s) {huge} hold values too large to standardise (|x| up to "
            f"{float(np.max(np.abs(values))):.3g}); rescale them, e.g. to other units"
        )
    var.loc = values.mean(axis=0).tolist()
    var.scale = scale.tolist()


# ---------------------------------------------------------------------- helpers
def _normalise_support(name: str, kind: str, support: Any) -> Support:
    if support is None:
        return None
    if kind != "continuous":
        raise DataError(f"variable {name!r}: only a continuous node takes a support, not a {kind} one")
    if isinstance(support, str):
        if support not in SUPPORTS:
            raise DataError(
                f"variable {name!r}: unknown support {support!r}; use 'positive' or (low, high)"
            )
        return support
    try:
        low, high = (float(b) for b in support)
    except (TypeError, ValueError):
        raise DataError(
            f"variable {name!r}: support must be 'positive' or a pair (low, high), got {support!r}"
        ) from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise DataError(f"variable {name!r}: support ({low}, {high}) needs finite low < high")
    return [low, high]


def _column(frame: pd.DataFrame, col: str, role: str) -> pd.Series:
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame for the {role} data, got {type(frame).__name__}")
    if col not in frame.columns:
        raise DataError(f"the {role} data lacks column {col!r}; it has {list(frame.columns)}")
    series = frame[col]
    if isinstance(series, pd.DataFrame):
        raise DataError(f"the {role} data has several columns named {col!r}; rename them")
    return series


def _check_missing(series: pd.Series, col: str, role: str) -> None:
    missing = int(series.isna().sum())
    if missing:
        raise DataError(
            f"column {col!r} has {missing} missing value(s) (NaN) {_in(role)}; "
            "drop or impute those rows first"
        )


def _check_unique_columns(frame: pd.DataFrame, role: str) -> None:
    duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if duplicated:
        raise DataError(f"the {role} data has duplicate column name(s) {duplicated}; rename them")


def _in(role: str) -> str:
    """Where values came from, for messages: "in the training data", "in the intervention value"."""
    return f"in the {role}" if role.endswith("value") else f"in the {role} data"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def stack_images(cells: pd.Series | Sequence[Any], name: str, role: str = "") -> np.ndarray:
    """An image column (cells of equal-shape arrays) → one float32 array ``(n, *shape)``."""
    items = list(cells)
    if not items:
        return np.zeros((0,), dtype=np.float32)
    try:
        shapes = {np.shape(item) for item in items}
    except ValueError:  # a ragged nested list
        shapes = {(-1,)}
    if len(shapes) > 1 or len(next(iter(shapes))) not in (2, 3):
        where = f" in the {role} data" if role else ""
        raise DataError(
            f"image column {name!r} must hold arrays of one shape (H, W) or (C, H, W){where}; "
            f"found shapes {sorted(shapes, key=str)[:4]}. Build it with df[{name!r}] = list(images)"
        )
    try:
        return np.stack([np.asarray(item, dtype=np.float32) for item in items])
    except (TypeError, ValueError) as err:
        raise DataError(f"image column {name!r} holds non-numeric cells: {err}") from None


def _sort_key(value: Any) -> tuple[str, Any]:
    return (type(value).__name__, value)


def _jsonable(value: Any) -> Any:
    """numpy scalars → Python scalars, so categories survive a JSON round trip."""
    return value.item() if isinstance(value, np.generic) else value


def _restore_dtype(labels: np.ndarray, dtype: str | None, categories: list | None) -> Any:
    if dtype == "category":
        return pd.Categorical(labels, categories=categories)
    if dtype == "bool":
        return labels.astype(bool)
    if dtype is not None and (dtype.startswith("int") or dtype.startswith("uint")):
        return labels.astype(np.int64)
    if dtype is not None and dtype.startswith("float"):
        return labels.astype(np.float64)
    return labels
