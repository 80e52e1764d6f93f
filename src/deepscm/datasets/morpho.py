"""Morpho-digits: the Morpho-MNIST ground-truth SCM of the Deep SCM case study.

Pawlowski, Castro & Glocker 2020 ("Deep Structural Causal Models for Tractable Counterfactual
Inference", NeurIPS, §4.1, eq. 7) generate images from stroke thickness ``t`` and intensity
``i`` with graph ``t -> i; t -> x; i -> x``:

    t := 0.5 + e_T,                           e_T ~ Gamma(shape 10, rate 5)
    i := 191 sigmoid(0.5 e_I + 2 t - 5) + 64,   e_I ~ N(0, 1)
    x := SetIntensity(SetThickness(e_X; t); i), e_X ~ uniform over the base digits

with the morphological operations of :mod:`deepscm.datasets.morphology`. The base digits are,
by default, scikit-learn's ``load_digits`` (1797 8x8 images) upsampled to MNIST's format
(:func:`load_digit_images`), so no download is needed; real MNIST IDX files work too.

Images travel in an *array column*: ``x`` is an object column whose cells are float32
``(size, size)`` arrays in [0, 255]; :func:`digits_as_array` stacks it.

Example:
    >>> scm = MorphoDigits()
    >>> data, noise = scm.sample(100, seed=0, return_noise=True)
    >>> cf = scm.counterfactual(data, do={"t": lambda t: t + 2}, noise=noise)
    >>> digits_as_array(cf).shape
    (100, 28, 28)
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from skimage.morphology import skeletonize
from skimage.transform import resize

from ..errors import DataError, GraphError
from ..interventions import Intervention as _Intervention
from ..interventions import as_intervention, evaluate
from .base import sigmoid
from .morphology import SCALE, StrokeMorphology, downscale, render_batch

__all__ = ["IDX_NAMES", "MorphoDigits", "digits_as_array", "load_digit_images", "read_idx"]

IDX_NAMES = ("train-images-idx3-ubyte", "train-images-idx3-ubyte.gz", "train-images.idx3-ubyte")
"""File names looked for when ``source`` is a directory (MNIST's training images)."""

_BOX = 20 / 28
"""MNIST fits each digit in a 20x20 box of the 28x28 frame, centred by its centre of mass."""

_SHARPEN = (1.0, 1.5)
"""Unsharp mask of the upsampled sklearn digits: amount and Gaussian sigma (px at 28 x 28)."""

_MAX_WIDTH = 3.0
"""Stroke width cap (px at 28 x 28) of the upsampled sklearn digits."""

_CHUNK = 2048
"""Images rendered per vectorised batch (bounds memory: ~50 kB of float16 per image)."""

#: what ``do=`` accepts for ``t`` or ``i``, read by :func:`deepscm.interventions.as_intervention`
#: exactly as :class:`~deepscm.DeepSCM` reads it: a constant or per-unit values, any bare
#: callable of the node's natural value, or ``FromParents(fn)`` (``i`` from ``t``).
Intervention = Any | Callable[[np.ndarray], Any] | _Intervention
Seed = int | np.random.Generator | None


# ---------------------------------------------------------------------------- base digits
def _sklearn_digit(x: np.ndarray, size: int) -> np.ndarray:
    """One 8x8 sklearn digit (0-16) as an anti-aliased ``(size, size)`` image in [0, 1].

    Cubic-spline upsampling into a ``20/28 size`` box at ``SCALE`` times the resolution, an
    unsharp mask (opens loops that the 8x8 blur closes), binarisation at half the full scale,
    stroke widths capped at ``_MAX_WIDTH`` px around the skeleton (blobs become strokes), centring
    by centre of mass (as MNIST), then ``SCALE x SCALE`` block averaging (MNIST's anti-aliasing).
    """
    hi_size = SCALE * size
    box = int(round(_BOX * hi_size))
    hi = ndi.zoom(x / 16.0, box / 8, order=3, grid_mode=True, mode="grid-constant")
    amount, sigma = _SHARPEN
    hi = hi + amount * (hi - ndi.gaussian_filter(hi, sigma * SCALE))
    mask = hi >= 0.5
    near_skeleton = ndi.distance_transform_edt(~skeletonize(mask)) <= (SCALE * _MAX_WIDTH - 1) / 2
    mask &= near_skeleton
    frame = np.zeros((hi_size, hi_size), dtype=bool)
    cy, cx = ndi.center_of_mass(mask)
    h, w = mask.shape
    oy = int(np.clip(round(hi_size / 2 - cy), 0, hi_size - h))
    ox = int(np.clip(round(hi_size / 2 - cx), 0, hi_size - w))
    frame[oy:oy + h, ox:ox + w] = mask
    return downscale(frame)


@lru_cache(maxsize=2)
def _sklearn_digits(size: int) -> np.ndarray:
    """All 1797 sklearn digits through :func:`_sklearn_digit`, x 255, float32 (cached)."""
    from sklearn.datasets import load_digits

    images = np.stack([_sklearn_digit(x, size) for x in load_digits().images]) * 255.0
    return images.astype(np.float32)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse an IDX file (MNIST's format; raw or gzip) into an array of its declared shape.

    Header: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, then each dimension as a big-endian
    uint32; the data follow in C order, big-endian.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"IDX file {str(p)!r} does not exist; expected MNIST's "
                        f"'train-images-idx3-ubyte' (or .gz)")
    raw = p.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(f"{str(p)!r} is a corrupt gzip file ({e})") from e
    types = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in types or raw[3] == 0:
        raise DataError(f"{str(p)!r} is not an IDX file (bad magic number {raw[:4].hex()!r}); "
                        "expected e.g. MNIST's 'train-images-idx3-ubyte' (magic 00000803)")
    ndim = raw[3]
    dtype = np.dtype(types[raw[2]])
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{str(p)!r}: IDX header truncated ({len(raw)} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{str(p)!r}: IDX header declares shape {shape} ({expected} bytes) but "
                        f"the file has {len(raw)} bytes; the file is truncated or not IDX")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _idx_path(source: str | os.PathLike) -> Path:
    p = Path(source)
    if p.is_dir():
        for name in IDX_NAMES:
            if (p / name).is_file():
                return p / name
        raise DataError(f"directory {str(p)!r} holds none of {list(IDX_NAMES)}; pass the path "
                        "of MNIST's training-image IDX file or its directory")
    if not p.exists():
        raise DataError(f"MNIST source {str(p)!r} does not exist; pass the path of "
                        f"'train-images-idx3-ubyte' (or .gz) or a directory holding it")
    return p


def load_digit_images(source: str | os.PathLike | None = None, size: int = 28) -> np.ndarray:
    """Base digits ``e_X`` of the Morpho-MNIST SCM: ``(N, size, size)`` float32 in [0, 255].

    ``source=None``: scikit-learn's ``load_digits`` (1797 digits), made MNIST-like by
    :func:`_sklearn_digit` (median thickness about 2.7 px at size 28). ``source=<path>``: an
    MNIST IDX image file (``train-images-idx3-ubyte`` or ``.gz``) or a directory holding one;
    resized with anti-aliasing when ``size`` differs from the file's.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise DataError(f"size must be an integer >= 8 (pixels), got {size!r}")
    if source is None:
        return _sklearn_digits(int(size)).copy()
    images = read_idx(_idx_path(source))
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{str(source)!r} holds a {images.dtype} array of shape {images.shape}; "
                        "expected uint8 images (n, rows, cols), as MNIST's image files")
    out = images.astype(np.float32)
    if out.shape[1:] != (size, size):
        out = np.stack([resize(im, (size, size), order=3, anti_aliasing=True,
                               preserve_range=True) for im in out])
    return np.clip(out, 0.0, 255.0).astype(np.float32)


def digits_as_array(frame: pd.DataFrame, column: str = "x") -> np.ndarray:
    """Stack an array column (cells of equal-shape images) into ``(n, h, w)`` float32."""
    if not isinstance(frame, pd.DataFrame) or column not in frame.columns:
        raise DataError(f"expected a DataFrame with an image column {column!r}")
    cells = frame[column].to_numpy(dtype=object)
    shapes = {np.shape(c) for c in cells}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise DataError(f"column {column!r} must hold 2-D images of one shape; found shapes "
                        f"{sorted(shapes)[:3]}")
    return np.stack(cells).astype(np.float32)


# ---------------------------------------------------------------------------- the SCM
def _thickness(u_t: np.ndarray) -> np.ndarray:
    """``t := 0.5 + e_T`` (DSCM eq. 7)."""
    return 0.5 + u_t


def _intensity(t: np.ndarray, u_i: np.ndarray) -> np.ndarray:
    """``i := 191 sigmoid(0.5 e_I + 2 t - 5) + 64`` (DSCM eq. 7)."""
    return 191.0 * sigmoid(0.5 * u_i + 2.0 * t - 5.0) + 64.0


class _Strokes:
    """Base digits and their lazily prepared :class:`StrokeMorphology` (shared by subsets)."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = images
        self._cache: dict[int, StrokeMorphology] = {}

    def __getitem__(self, k: int) -> StrokeMorphology:
        if k not in self._cache:
            self._cache[k] = StrokeMorphology(self.images[k])
        return self._cache[k]


class MorphoDigits:
    """Ground-truth SCM of DSCM eq. 7 on base digits (module doc), graph ``t -> i; t -> x; i -> x``.

    Args:
        images: base digits, ``(N, h, h)`` in [0, 255]; or a source for
            :func:`load_digit_images` (``None``: sklearn digits; a path: MNIST IDX).
        digits: indices into ``images`` that ``e_X`` is drawn from (default: all), e.g. to hold
            digits out of training; see :meth:`train_test` and :meth:`subset`.

    Noise frames have one column per node (as :class:`~deepscm.datasets.base.GroundTruthSCM`):
    ``t`` (``e_T``), ``i`` (``e_I``) and ``x`` (``e_X``: the int index of the base digit in
    :attr:`images`). Rendered images are cached per base digit, so repeated samples are fast.
    """

    name = "morpho_digits"
    nodes: tuple[str, ...] = ("t", "i", "x")
    parents: dict[str, list[str]] = {"t": [], "i": ["t"], "x": ["t", "i"]}
    graph = "t -> i; t -> x; i -> x"
    intervention_nodes: tuple[str, ...] = ("t", "i")

    def __init__(self, images: np.ndarray | str | os.PathLike | None = None,
                 digits: Sequence[int] | np.ndarray | None = None) -> None:
        if images is None or isinstance(images, (str, os.PathLike)):
            images = load_digit_images(images)
        self._strokes = _Strokes(self._check_images(images))
        self.digits: np.ndarray = self._check_digits(digits)

    def __repr__(self) -> str:
        n, total = len(self.digits), len(self.images)
        return f"MorphoDigits({n} of {total} digits, graph={self.graph!r})"

    @property
    def images(self) -> np.ndarray:
        """All base digits, ``(N, h, h)`` float32 (read-only)."""
        return self._strokes.images

    @property
    def size(self) -> int:
        """Image side length in pixels."""
        return int(self.images.shape[-1])

    # ------------------------------------------------------------------ subsets
    def subset(self, digits: Sequence[int] | np.ndarray) -> MorphoDigits:
        """The same SCM drawing ``e_X`` from ``digits`` only (shares the prepared-digit cache)."""
        new = object.__new__(MorphoDigits)
        new._strokes = self._strokes
        new.digits = self._check_digits(digits)
        return new

    @classmethod
    def train_test(cls, images: np.ndarray | str | os.PathLike | None = None,
                   test_fraction: float = 0.2, seed: Seed = 0) -> tuple[MorphoDigits, MorphoDigits]:
        """``(train, test)`` SCMs over disjoint random base digits (``test_fraction`` in test)."""
        if not 0.0 < test_fraction < 1.0:
            raise DataError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
        scm = cls(images)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        order = rng.permutation(len(scm.images))
        n_test = int(round(test_fraction * len(order)))
        if not 0 < n_test < len(order):
            raise DataError(f"test_fraction={test_fraction} leaves an empty split of "
                            f"{len(order)} digits")
        return scm.subset(np.sort(order[n_test:])), scm.subset(np.sort(order[:n_test]))

    # ------------------------------------------------------------------ rungs 1 and 2
    def sample_noise(self, n: int, seed: Seed = None) -> pd.DataFrame:
        """``n`` rows of exogenous noise: ``t`` (e_T), ``i`` (e_I), ``x`` (digit index)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise DataError(f"n must be a positive integer, got {n!r}")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        u_t = rng.gamma(10.0, 1.0 / 5.0, int(n))
        u_i = rng.normal(0.0, 1.0, int(n))
        u_x = self.digits[rng.integers(0, len(self.digits), int(n))]
        return pd.DataFrame({"t": u_t, "i": u_i, "x": u_x.astype(np.int64)})

    def from_noise(self, noise: pd.DataFrame,
                   do: Mapping[str, Intervention] | None = None) -> pd.DataFrame:
        """Run eq. 7 on ``noise``; ``do`` maps ``t``/``i`` to a value, ``n`` values or a callable
        of the node's natural values (e.g. ``lambda t: t + 2``)."""
        do = self._check_do(do)
        u = self._noise(noise)
        t = self._apply("t", do, _thickness(u["t"]), {})
        i = self._apply("i", do, _intensity(t, u["i"]), {"t": t})
        return self._frame(t, i, u["x"], noise.index)

    def sample(self, n: int, seed: Seed = None, do: Mapping[str, Intervention] | None = None,
               return_noise: bool = False) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
        """Observational (``do=None``) or interventional samples; optionally with their noise."""
        noise = self.sample_noise(n, seed)
        data = self.from_noise(noise, do)
        return (data, noise) if return_noise else data

    # ------------------------------------------------------------------ rung 3
    def counterfactual(self, data: pd.DataFrame, do: Mapping[str, Intervention],
                       noise: pd.DataFrame | None = None) -> pd.DataFrame:
        """True counterfactuals ``(t', i', x')`` of the units in ``data`` under ``do``.

        Same noise (``e_T``, ``e_I``, base digit ``e_X``), intervened mechanisms: ``t`` keeps
        its factual value unless intervened, ``i`` is recomputed from ``t'`` and ``e_I`` when
        ``t`` is intervened, ``x`` is re-rendered. A callable receives the counterfactual natural
        value. The base digit cannot be recovered from ``x``, so ``noise`` is required.
        """
        do = self._check_do(do)
        if not do:
            raise DataError("counterfactual needs at least one intervention in `do` on 't' or 'i'")
        if noise is None:
            raise NotImplementedError(
                "cannot abduct the base digit e_X from the image x; pass the true noise: "
                "scm.counterfactual(data, do, noise), with noise from "
                "scm.sample(n, return_noise=True)")
        if not isinstance(data, pd.DataFrame) or not {"t", "i"} <= set(data.columns):
            raise DataError("data must be a DataFrame with columns 't' and 'i' (from sample)")
        if not isinstance(noise, pd.DataFrame) or not noise.index.equals(data.index):
            raise DataError("`noise` must be a DataFrame with the same index as `data` (one noise "
                            "row per unit); pass the noise rows of exactly these units")
        u = self._noise(noise)
        factual = {}
        for v in ("t", "i"):
            try:
                factual[v] = data[v].to_numpy(dtype=np.float64)
            except (TypeError, ValueError) as e:
                raise DataError(f"column {v!r} must be numeric") from e
            if not np.isfinite(factual[v]).all():
                raise DataError(f"column {v!r} contains NaN or inf")
        t = self._apply("t", do, factual["t"], {})
        i = _intensity(t, u["i"]) if "t" in do else factual["i"]
        i = self._apply("i", do, i, {"t": t})
        return self._frame(t, i, u["x"], data.index)

    # ------------------------------------------------------------------ rendering
    def render(self, digit: np.ndarray, t: np.ndarray, i: np.ndarray) -> np.ndarray:
        """``SetIntensity(SetThickness(images[digit]; t); i)`` per row: ``(n, h, h)`` float32."""
        digit = np.asarray(digit, dtype=np.int64).ravel()
        t = np.broadcast_to(np.asarray(t, dtype=np.float64), digit.shape)
        i = np.broadcast_to(np.asarray(i, dtype=np.float64), digit.shape)
        out = np.empty((len(digit), self.size, self.size), dtype=np.float32)
        for lo in range(0, len(digit), _CHUNK):
            sl = slice(lo, lo + _CHUNK)
            strokes = [self._strokes[int(k)] for k in digit[sl]]
            out[sl] = render_batch(strokes, t[sl], i[sl])
        return out

    def _frame(self, t: np.ndarray, i: np.ndarray, u_x: np.ndarray,
               index: pd.Index) -> pd.DataFrame:
        bad_t, bad_i = ~(t > 0) | (t > 2 * self.size), ~((i > 0) & (i <= 255))
        if bad_t.any():
            raise DataError(f"thickness t must lie in (0, {2 * self.size}] px to render an image; "
                            f"got {t[bad_t][0]!r} (check the intervention on 't')")
        if bad_i.any():
            raise DataError(f"intensity i must lie in (0, 255] to render an image; got "
                            f"{i[bad_i][0]!r} (check the intervention on 'i')")
        x = np.empty(len(t), dtype=object)
        x[:] = list(self.render(u_x, t, i))
        return pd.DataFrame({"t": t, "i": i, "x": x}, index=index)

    # ------------------------------------------------------------------ validation
    @staticmethod
    def _check_images(images: np.ndarray) -> np.ndarray:
        a = np.asarray(images)
        if a.ndim != 3 or len(a) == 0 or a.shape[1] != a.shape[2]:
            raise DataError(f"images must be a non-empty (N, h, h) array of square images, got "
                            f"shape {a.shape}")
        a = a.astype(np.float32)
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 255:
            raise DataError("images must be finite with values in [0, 255]")
        blank = np.flatnonzero(a.reshape(len(a), -1).max(axis=1) <= 0)
        if len(blank):
            raise DataError(f"images {blank[:5].tolist()} are blank; every base digit needs ink")
        a.setflags(write=False)
        return a

    def _check_digits(self, digits: Sequence[int] | np.ndarray | None) -> np.ndarray:
        n = len(self.images)
        if digits is None:
            return np.arange(n)
        d = np.asarray(digits)
        if d.ndim != 1 or len(d) == 0 or not np.issubdtype(d.dtype, np.integer):
            raise DataError(f"digits must be a non-empty 1-D sequence of integer indices, got "
                            f"{np.asarray(digits).dtype} of shape {d.shape}")
        if d.min() < 0 or d.max() >= n:
            raise DataError(f"digit indices must lie in [0, {n - 1}] (there are {n} images); "
                            f"got {int(d.min())}..{int(d.max())}")
        return np.unique(d)

    def _check_do(self, do: Mapping[str, Intervention] | None) -> dict[str, _Intervention]:
        if do is not None and not isinstance(do, Mapping):
            raise DataError(f"do= must be a mapping from node to value, e.g. do={{'t': 2.0}}; "
                            f"got {type(do).__name__}")
        do = dict(do or {})
        bad = [v for v in do if v not in self.intervention_nodes]
        if bad:
            raise GraphError(f"{self.name}: cannot intervene on {bad}; intervene on 't' and/or "
                             "'i' (the image x is rendered from them)")
        return {v: as_intervention(spec, v) for v, spec in do.items()}

    def _noise(self, noise: pd.DataFrame) -> dict[str, np.ndarray]:
        if not isinstance(noise, pd.DataFrame) or not set(self.nodes) <= set(noise.columns):
            raise DataError(f"noise must be a DataFrame with columns {list(self.nodes)} "
                            "(from sample_noise or sample(..., return_noise=True))")
        u = {v: noise[v].to_numpy(dtype=np.float64) for v in ("t", "i")}
        if not all(np.isfinite(a).all() for a in u.values()):
            raise DataError("noise columns 't' and 'i' must be finite")
        x = noise["x"].to_numpy()
        if not np.issubdtype(x.dtype, np.integer) or len(x) and (x.min() < 0 or
                                                                 x.max() >= len(self.images)):
            raise DataError(f"noise column 'x' must hold base-digit indices in "
                            f"[0, {len(self.images) - 1}]")
        u["x"] = x.astype(np.int64)
        return u

    @staticmethod
    def _apply(v: str, do: Mapping[str, _Intervention], natural: np.ndarray,
               parents: Mapping[str, np.ndarray]) -> np.ndarray:
        """The value of ``v`` under ``do`` by the rule of :mod:`deepscm.interventions`."""
        if v not in do:
            return natural
        target = evaluate(do[v], v, natural, parents)
        try:
            return np.broadcast_to(np.asarray(target, dtype=np.float64), natural.shape).copy()
        except (TypeError, ValueError) as e:
            raise DataError(f"intervention on {v!r} must give a number or {natural.shape[0]} "
                            f"numbers; got {np.shape(target)}") from e
