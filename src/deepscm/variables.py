"""Variable schema: which columns hold each node, its kind, and the internal encoding.

Users see their own units and labels. Internally a continuous node is standardised,
``z = (x - loc) / scale``, and a discrete node is an integer code into its category list.
An *image* node lives in one DataFrame column whose cells are arrays of one shape, ``(H, W)``
or ``(C, H, W)`` (build it with ``df["image"] = list(images)``); internally it is a float
tensor ``(n, C, H, W)`` standardised by one pixel mean and standard deviation. The schema is
inferred from a DataFrame and can be overridden per node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args

import numpy as np
import pandas as pd
import torch

from .errors import DataError

__all__ = ["KINDS", "MAX_INT_LEVELS", "Schema", "Variable", "VariableSpec", "stack_images"]

Kind = Literal["continuous", "binary", "categorical", "image"]
KINDS: tuple[str, ...] = get_args(Kind)
#: integer columns with at most this many distinct values are inferred as categorical.
MAX_INT_LEVELS = 10


@dataclass
class Variable:
    """One node of the graph as the data holds it.

    Attributes:
        name: node name.
        kind: ``"continuous"``, ``"binary"``, ``"categorical"`` or ``"image"``.
        columns: the DataFrame columns of the node (several for a continuous vector).
        categories: the labels of a discrete node, in code order.
        loc, scale: standardisation of a continuous node (learned by :meth:`Schema.infer`);
            one pixel mean and standard deviation for an image.
        dtype: the pandas dtype of the labels, restored on output.
        shape: an image's cell shape as the user gives it, ``(H, W)`` or ``(C, H, W)``.
        bounds: an image's pixel range in the training data; decoded images are clipped to
            it, so generated pixels stay in the range the data uses (e.g. 0–255).
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

    # ------------------------------------------------------------------ shorthands
    @classmethod
    def continuous(cls, name: str, columns: Sequence[str] | None = None) -> Variable:
        return cls(name, "continuous", list(columns or [name]))

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

    # ------------------------------------------------------------------ encoding
    def encode(self, frame: pd.DataFrame, device: torch.device | str = "cpu") -> torch.Tensor:
        """Data → internal tensor: standardised floats ``(n, d)``, integer codes ``(n,)``, or
        standardised images ``(n, C, H, W)``."""
        if self.is_image:
            pixels = stack_images(frame[self.columns[0]], self.name)
            z = (pixels.reshape(len(pixels), *self.tensor_shape) - self.loc[0]) / self.scale[0]
            return torch.as_tensor(z, dtype=torch.float32, device=device)
        if self.discrete:
            codes = pd.Categorical(frame[self.columns[0]], categories=self.categories).codes
            return torch.as_tensor(np.asarray(codes, dtype=np.int64), device=device)
        values = frame[self.columns].to_numpy(dtype=np.float64)
        z = (values - np.asarray(self.loc)) / np.asarray(self.scale)
        return torch.as_tensor(z, dtype=torch.float32, device=device)

    def encode_values(self, values: Any, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Encode a constant or an array of values in user units (an intervention value)."""
        if self.is_image:
            arr = np.asarray(values, dtype=np.float64) if not isinstance(values, pd.Series) else values
            if isinstance(arr, np.ndarray) and arr.shape == tuple(self.shape or ()):
                arr = np.broadcast_to(arr, (n, *arr.shape))
            frame = pd.DataFrame({self.columns[0]: list(arr)})
            if len(frame) != n:
                raise DataError(
                    f"intervention value for image {self.name!r}: give one image of shape "
                    f"{tuple(self.shape or ())} or {n} of them, got {len(frame)}"
                )
            self.check(frame, "intervention value")
            return self.encode(frame, device)
        if self.discrete:
            arr = np.broadcast_to(np.asarray(values, dtype=object), (n,))
            frame = pd.DataFrame({self.columns[0]: list(arr)})
            self.check(frame, "intervention value")
            return self.encode(frame, device)
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim <= 1 and arr.size in (1, n) and self.dim == 1:
            arr = np.broadcast_to(arr.reshape(-1, 1), (n, 1))
        arr = np.broadcast_to(arr, (n, self.dim))
        if not np.isfinite(arr).all():
            raise DataError(f"intervention value for {self.name!r} is NaN or infinite")
        z = (arr - np.asarray(self.loc)) / np.asarray(self.scale)
        return torch.as_tensor(z, dtype=torch.float32, device=device)

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
        x = arr.astype(np.float64) * np.asarray(self.scale) + np.asarray(self.loc)
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
        """``-Σ log scale``: converts a standardised log-density into the user's units."""
        if self.is_image:
            return -self.dim * float(np.log(self.scale[0]))
        return 0.0 if self.discrete else -float(np.sum(np.log(self.scale)))

    # ------------------------------------------------------------------ validation
    def check(self, frame: pd.DataFrame, role: str) -> None:
        """Raise :class:`DataError` for NaN/inf, non-numbers or unseen categories."""
        for col in self.columns:
            series = frame[col]
            missing = int(series.isna().sum())
            if missing:
                raise DataError(
                    f"column {col!r} has {missing} missing value(s) (NaN) in the {role} data; "
                    "drop or impute those rows first"
                )
            if self.is_image:
                pixels = stack_images(series, self.name, role)
                if self.shape is not None and list(pixels.shape[1:]) != self.shape:
                    raise DataError(
                        f"image column {col!r} holds arrays of shape {pixels.shape[1:]} in the "
                        f"{role} data; the model expects {tuple(self.shape)}"
                    )
                bad = int((~np.isfinite(pixels.reshape(len(pixels), -1))).any(axis=1).sum())
                if bad:
                    raise DataError(
                        f"image column {col!r} has {bad} image(s) with NaN or infinite pixels in "
                        f"the {role} data; drop or repair them first"
                    )
                continue
            if self.discrete:
                if self.categories is None:
                    continue
                known = pd.Index(self.categories, dtype=object)
                unseen = ~pd.Index(series.astype(object)).isin(known)
                if unseen.any():
                    values = sorted({repr(v) for v in series[unseen]})[:5]
                    raise DataError(
                        f"column {col!r} has {int(unseen.sum())} row(s) with unseen "
                        f"categor{'ies' if len(values) > 1 else 'y'} {', '.join(values)} in "
                        f"the {role} data; the model knows {self.categories}"
                    )
                continue
            if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
                raise DataError(
                    f"column {col!r} is declared continuous but holds {series.dtype} values; "
                    f"convert it to numbers or declare it categorical"
                )
            infinite = int(np.isinf(series.to_numpy(dtype=np.float64)).sum())
            if infinite:
                raise DataError(
                    f"column {col!r} has {infinite} infinite value(s) in the {role} data; "
                    "drop or clip those rows first"
                )

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
        ``"categorical"``), or a list of columns (a continuous vector). Inference: a column of arrays
        is an image; bool, pandas category, string/object columns and integer columns with
        at most :data:`MAX_INT_LEVELS` values are discrete (binary with two levels); float
        columns whose only values are 0 and 1 are binary; everything else is continuous.
        """
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(nodes))
        if unknown:
            raise DataError(f"variables given for unknown node(s) {unknown}; the graph has {list(nodes)}")
        variables = []
        for node in nodes:
            spec = overrides.get(node)
            if isinstance(spec, Variable):
                var = Variable(**{**spec.to_dict(), "name": node})
            elif isinstance(spec, str):
                var = Variable(node, spec)  # type: ignore[arg-type]
            elif spec is not None:
                var = Variable.continuous(node, list(spec))
            else:
                var = Variable(node, _infer_kind(frame[node]) if node in frame else "continuous")
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


def _infer_kind(series: pd.Series) -> Kind:
    if series.dtype == object and len(series) and isinstance(series.iloc[0], np.ndarray):
        return "image"
    if pd.api.types.is_bool_dtype(series):
        return "binary"
    if isinstance(series.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(series):
        return "binary" if series.nunique(dropna=True) == 2 else "categorical"
    levels = series.nunique(dropna=True)
    if pd.api.types.is_integer_dtype(series) and levels <= MAX_INT_LEVELS:
        return "binary" if levels == 2 else "categorical"
    if levels == 2 and set(pd.unique(series.dropna())) == {0.0, 1.0}:
        return "binary"
    return "continuous"


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
            if isinstance(series.dtype, pd.CategoricalDtype):
                var.categories = list(series.cat.categories)
            else:
                var.categories = sorted(pd.unique(series.dropna()).tolist(), key=_sort_key)
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
        var.dtype = str(series.dtype)
        var.categories = [_jsonable(c) for c in var.categories]
        return
    values = frame[var.columns].to_numpy(dtype=np.float64)
    scale = values.std(axis=0)
    constant = [c for c, s in zip(var.columns, scale) if not s > 0]
    if constant:
        raise DataError(
            f"column(s) {constant} are constant in the training data; a constant variable "
            "cannot be modelled: drop it from the graph"
        )
    var.loc = values.mean(axis=0).tolist()
    var.scale = scale.tolist()


def stack_images(cells: pd.Series | Sequence[Any], name: str, role: str = "") -> np.ndarray:
    """An image column (cells of equal-shape arrays) → one float32 array ``(n, *shape)``."""
    items = list(cells)
    if not items:
        return np.zeros((0,), dtype=np.float32)
    shapes = {np.shape(item) for item in items}
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
