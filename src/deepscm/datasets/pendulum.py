"""The pendulum images of CausalVAE (Yang et al. 2021) and CCGM (Bhat et al.), with exact
counterfactual images.

The generator is the one of ``huawei-noah/trustworthyAI``,
``research/CausalVAE/causal_data/pendulum.py``, re-implemented with numpy (anti-aliased by
analytic pixel coverage rather than matplotlib, so pixels are not bit-identical to the
original PNGs). World: pivot ``P = (10, 10.5)``, canvas ``x ∈ [0, 20]``, ``y ∈ [−1, 21]``.

- pendulum angle ``θ = iπ/200``, ``i ∈ {−40..43}``; light angle ``φ = jπ/200``,
  ``j ∈ {60..147} \\ {100}``: ``84 × 87 = 7,308`` images;
- rod ``P → (10 + 8 sin θ, 10.5 − 8 cos θ)`` (line width 3 pt), ball of radius 1.5 there;
- ``projection(φ, x, y, base) = (base − (y − x tan φ))/tan φ = x + (base − y) cot φ``, the
  ``x`` where the light ray through ``(x, y)`` meets ``y = base``;
- sun of radius 3 at ``(projection(φ, 10, 10.5, 20.5), 20.5)``, i.e. ``x_sun = 10 + 10 cot φ``;
- shadow of the segment ``P → (10 + 9.5 sin θ, 10.5 − 9.5 cos θ)`` on the ground ``y = −0.5``:
  ``p0 = projection(φ, P, −0.5)``, ``p1 = projection(φ, tip, −0.5)``,
  ``x_shadow = (p0 + p1)/2`` and ``w_shadow = max(3, |p0 − p1|)``.

The causal graph (CCGM §IV.A) is ``θ → {w_shadow, x_shadow} ← x_sun`` with labels
``u = [θ, x_sun, w_shadow, x_shadow]`` (:data:`LABELS`). Because every mechanism is known,
:meth:`PendulumGenerator.counterfactual` returns the *true* counterfactual labels and images
for interventions and for edge removals.

Example:
    >>> train = load_pendulum("train", size=32)
    >>> gen = PendulumGenerator(size=32)
    >>> cf = gen.counterfactual(train.head(4), do={"pendulum_angle": 0.3},
    ...                         without_edges=[("pendulum_angle", "shadow_position")])
    >>> bool(np.allclose(cf["shadow_position"], train.head(4)["shadow_position"]))
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, GraphError

__all__ = [
    "EDGES",
    "LABELS",
    "LABEL_RANGES",
    "N_IMAGES",
    "N_TEST",
    "PendulumGenerator",
    "denormalise_labels",
    "load_pendulum",
    "measure_pendulum",
    "measure_shadow",
    "normalise_labels",
    "pendulum_grid",
    "projection",
    "shadow",
]

PIVOT = (10.0, 10.5)
X_RANGE = (0.0, 20.0)
Y_RANGE = (-1.0, 21.0)
ROD, SHADOW_ROD, BALL, SUN, SUN_Y, GROUND = 8.0, 9.5, 1.5, 3.0, 20.5, -0.5
#: half line width in world units: 3 pt at 96 dpi is 4 px of a 96-px, 20-unit-wide canvas.
HALF_LINE = 2.0 * 20.0 / 96.0
N_IMAGES = 7308
N_TEST = 1826
LABELS = ("pendulum_angle", "sun_position", "shadow_width", "shadow_position")
EDGES = tuple((p, c) for c in LABELS[2:] for p in LABELS[:2])
_RGB = {"rod": (0.0, 0.0, 0.0), "ball": (178 / 255, 34 / 255, 34 / 255),
        "sun": (1.0, 165 / 255, 0.0), "shadow": (0.0, 0.0, 0.0)}
_LUMA = np.array([0.299, 0.587, 0.114])
_CHUNK = 256


def projection(phi: Any, x: Any, y: Any, base: float) -> np.ndarray:
    """``(base − (y − x tan φ))/tan φ``, written ``x + (base − y) cot φ`` (finite at φ = π/2)."""
    phi = np.asarray(phi, float)
    return np.asarray(x, float) + (base - np.asarray(y, float)) * np.cos(phi) / np.sin(phi)


def shadow(theta: Any, phi: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(w_shadow, x_shadow)`` of pendulum angle ``θ`` under light angle ``φ`` (radians)."""
    theta = np.asarray(theta, float)
    p0 = projection(phi, PIVOT[0], PIVOT[1], GROUND)
    p1 = projection(phi, PIVOT[0] + SHADOW_ROD * np.sin(theta), PIVOT[1] - SHADOW_ROD * np.cos(theta), GROUND)
    return np.maximum(3.0, np.abs(p0 - p1)), (p0 + p1) / 2.0


def _sun_x(phi: np.ndarray) -> np.ndarray:
    return projection(phi, PIVOT[0], PIVOT[1], SUN_Y)


def _light_angle(sun_x: np.ndarray) -> np.ndarray:
    """Inverse of ``x_sun = 10 + 10 cot φ`` on ``φ ∈ (0, π)``."""
    return np.arctan2(SUN_Y - PIVOT[1], np.asarray(sun_x, float) - PIVOT[0])


def _label_frame(theta: np.ndarray, phi: np.ndarray) -> pd.DataFrame:
    width, position = shadow(theta, phi)
    return pd.DataFrame({"pendulum_angle": theta, "light_angle": phi, "sun_position": _sun_x(phi),
                         "shadow_width": width, "shadow_position": position})


def pendulum_grid() -> pd.DataFrame:
    """The 7,308 labels of the CausalVAE grid (``i`` outer, ``j`` inner, as the original loop)."""
    i = np.arange(-40, 44)
    j = np.array([k for k in range(60, 148) if k != 100])
    ii, jj = np.meshgrid(i, j, indexing="ij")
    return _label_frame(ii.ravel() * np.pi / 200, jj.ravel() * np.pi / 200)


def _ranges() -> dict[str, tuple[float, float]]:
    grid = pendulum_grid()
    return {c: (float(grid[c].min()), float(grid[c].max())) for c in LABELS}


#: min and max of each label over the full grid (world units / radians); the normalisation
#: ``u_n = 2 (u − lo)/(hi − lo) − 1 ∈ [−1, 1]`` of CCGM's label prior ``N(u_n, I)`` uses them.
LABEL_RANGES: dict[str, tuple[float, float]] = _ranges()


def normalise_labels(frame: pd.DataFrame) -> np.ndarray:
    """``(n, 4)`` labels ``[θ, x_sun, w_shadow, x_shadow]`` mapped to ``[−1, 1]`` by
    :data:`LABEL_RANGES`."""
    _require_columns(frame, LABELS)
    lo = np.array([LABEL_RANGES[c][0] for c in LABELS])
    hi = np.array([LABEL_RANGES[c][1] for c in LABELS])
    return 2.0 * (frame[list(LABELS)].to_numpy(float) - lo) / (hi - lo) - 1.0


def denormalise_labels(u: np.ndarray) -> pd.DataFrame:
    """Inverse of :func:`normalise_labels`: a DataFrame with the :data:`LABELS` columns."""
    u = np.asarray(u, float)
    if u.ndim != 2 or u.shape[1] != len(LABELS):
        raise DataError(f"expected normalised labels of shape (n, 4), got {u.shape}")
    lo = np.array([LABEL_RANGES[c][0] for c in LABELS])
    hi = np.array([LABEL_RANGES[c][1] for c in LABELS])
    return pd.DataFrame((u + 1.0) / 2.0 * (hi - lo) + lo, columns=list(LABELS))


def _require_columns(frame: Any, columns: Iterable[str]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"expected a DataFrame with columns {list(columns)}, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"the labels lack the column(s) {missing}; expected {list(columns)}")


def _check_size(size: Any) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 16:
        raise ConfigError(f"size must be an integer >= 16 (pixels), got {size!r}")
    return int(size)


class PendulumGenerator:
    """Renders pendulum images from labels and answers interventions and edge removals exactly.

    Args:
        size: image side in pixels (the original is 96).
        grayscale: ``(size, size)`` luminance images (CCGM) instead of ``(3, size, size)`` RGB;
            pixels are float32 in [0, 1], background white.
    """

    graph = "; ".join(f"{p} -> {c}" for p, c in EDGES)

    def __init__(self, size: int = 96, grayscale: bool = True) -> None:
        self.size = _check_size(size)
        self.grayscale = bool(grayscale)
        s = self.size
        self._x = ((np.arange(s) + 0.5) * (X_RANGE[1] - X_RANGE[0]) / s + X_RANGE[0])[None, None, :]
        self._y = (Y_RANGE[1] - (np.arange(s) + 0.5) * (Y_RANGE[1] - Y_RANGE[0]) / s)[None, :, None]
        self._pixel = 0.5 * ((X_RANGE[1] - X_RANGE[0]) + (Y_RANGE[1] - Y_RANGE[0])) / s

    def labels(self, pendulum_angle: Any, light_angle: Any) -> pd.DataFrame:
        """All labels of angles ``θ`` and ``φ`` (radians; ``φ ∈ (0, π)``)."""
        theta, phi = np.broadcast_arrays(np.atleast_1d(np.asarray(pendulum_angle, float)),
                                         np.atleast_1d(np.asarray(light_angle, float)))
        if not (np.all(np.isfinite(theta)) and np.all((phi > 0) & (phi < np.pi))):
            raise DataError("pendulum_angle must be finite and light_angle in (0, π) radians")
        return _label_frame(theta.astype(float), phi.astype(float))

    # ------------------------------------------------------------------ rendering
    def _coverage(self, distance_inside: np.ndarray) -> np.ndarray:
        """Anti-aliased coverage of a pixel whose centre is ``distance_inside`` inside a shape."""
        return np.clip(distance_inside / self._pixel + 0.5, 0.0, 1.0)

    def _layers(self, theta: np.ndarray, sun_x: np.ndarray, width: np.ndarray, position: np.ndarray):
        x, y = self._x, self._y
        px, py = PIVOT
        bx = (px + ROD * np.sin(theta))[:, None, None]
        by = (py - ROD * np.cos(theta))[:, None, None]
        t = np.clip(((x - px) * (bx - px) + (y - py) * (by - py)) / ROD**2, 0.0, 1.0)
        rod = self._coverage(HALF_LINE - np.hypot(x - px - t * (bx - px), y - py - t * (by - py)))
        ball = self._coverage(BALL - np.hypot(x - bx, y - by))
        sun = self._coverage(SUN - np.hypot(x - sun_x[:, None, None], y - SUN_Y))
        lo = (position - width / 2)[:, None, None]
        hi = (position + width / 2)[:, None, None]
        shade = self._coverage(np.minimum(x - lo, hi - x)) * self._coverage(HALF_LINE - np.abs(y - GROUND))
        return (("sun", sun), ("rod", rod), ("ball", ball), ("shadow", shade))

    def render(self, labels: pd.DataFrame) -> np.ndarray:
        """Images of the rows of ``labels`` (columns :data:`LABELS`): ``(n, size, size)`` in
        grayscale, ``(n, 3, size, size)`` in RGB; float32 in [0, 1]."""
        _require_columns(labels, LABELS)
        values = labels[list(LABELS)].to_numpy(float)
        if not np.isfinite(values).all():
            raise DataError("labels contain NaN or inf; every image needs finite labels")
        channels = 1 if self.grayscale else 3
        out = np.empty((len(values), channels, self.size, self.size), np.float32)
        for start in range(0, len(values), _CHUNK):
            v = values[start:start + _CHUNK]
            image = np.ones((len(v), channels, self.size, self.size))
            for name, alpha in self._layers(*v.T):
                colour = np.asarray(_RGB[name])
                colour = np.array([colour @ _LUMA]) if self.grayscale else colour
                a = alpha[:, None]
                image = image * (1.0 - a) + colour[None, :, None, None] * a
            out[start:start + _CHUNK] = image
        return out[:, 0] if self.grayscale else out

    def frame(self, labels: pd.DataFrame) -> pd.DataFrame:
        """``labels`` with an ``image`` column (one float32 array per cell)."""
        out = labels.reset_index(drop=True).copy()
        out["image"] = list(self.render(out))
        return out

    # ------------------------------------------------------------------ counterfactuals
    def counterfactual(
        self,
        factual: pd.DataFrame,
        do: Mapping[str, Any] | None = None,
        without_edges: Iterable[tuple[str, str]] = (),
        reference: Mapping[tuple[str, str], Any] | Any = None,
        images: bool = True,
    ) -> pd.DataFrame:
        """The true counterfactual of each factual row.

        ``do`` sets ``pendulum_angle``, ``light_angle`` or ``sun_position`` (the exogenous
        causes; ``sun_position`` and ``light_angle`` are one node in two units) or a shadow
        label (scalars or per-row arrays). ``without_edges`` lists edges ``(parent, child)``
        of :attr:`graph` (``light_angle`` may name ``sun_position``): the child is computed
        with that parent at ``reference`` (in the parent's units; by default its *factual*
        value), while its other parents take their new values. Unlike ``do`` on the child,
        a removed edge leaves the child a function of its remaining parents. Returns the
        labels and, with ``images``, the rendered ``image`` column.
        """
        _require_columns(factual, ("pendulum_angle", "sun_position"))
        n = len(factual)
        do = dict(do or {})
        allowed = set(LABELS) | {"light_angle"}
        unknown = sorted(set(do) - allowed)
        if unknown:
            raise GraphError(f"cannot intervene on {unknown}; the pendulum's nodes are {sorted(allowed)}")
        if "light_angle" in do and "sun_position" in do:
            raise GraphError("light_angle and sun_position are one node; intervene on one of them")
        theta0 = factual["pendulum_angle"].to_numpy(float)
        phi0 = _light_angle(factual["sun_position"].to_numpy(float))
        theta = self._values(do.get("pendulum_angle", theta0), n, "pendulum_angle")
        if "light_angle" in do:
            phi = self._values(do["light_angle"], n, "light_angle")
        elif "sun_position" in do:
            phi = _light_angle(self._values(do["sun_position"], n, "sun_position"))
        else:
            phi = phi0
        if not np.all((phi > 0) & (phi < np.pi)):
            raise DataError("light_angle must lie in (0, π) radians")
        removed: dict[tuple[str, str], np.ndarray] = {}
        refs = reference if isinstance(reference, Mapping) else None
        for edge in without_edges:
            edge = tuple(edge)
            key = ("sun_position", edge[1]) if len(edge) == 2 and edge[0] == "light_angle" else edge
            if key not in EDGES:
                raise GraphError(f"{edge!r} is not an edge of the pendulum graph {self.graph}")
            ref = refs.get(edge, refs.get(key)) if refs is not None else reference
            if ref is None:
                value = theta0 if key[0] == "pendulum_angle" else phi0
            else:
                value = self._values(ref, n, f"reference of {edge!r}")
                if edge[0] == "sun_position":
                    value = _light_angle(value)
            removed[key] = value
        out = _label_frame(theta, phi)
        for child in ("shadow_width", "shadow_position"):
            t = removed.get(("pendulum_angle", child), theta)
            p = removed.get(("sun_position", child), phi)
            out[child] = shadow(t, p)[0 if child == "shadow_width" else 1]
            if child in do:
                out[child] = self._values(do[child], n, child)
        return self.frame(out) if images else out

    @staticmethod
    def _values(value: Any, n: int, name: str) -> np.ndarray:
        v = np.asarray(value, float)
        if v.ndim == 0:
            v = np.full(n, float(v))
        if v.shape != (n,) or not np.isfinite(v).all():
            raise DataError(f"{name}: give a finite scalar or one value per row ({n}), got shape {v.shape}")
        return v


def load_pendulum(split: str = "train", size: int = 96, grayscale: bool = True, seed: int = 0) -> pd.DataFrame:
    """The pendulum data set: ``split="train"`` (5,482 rows), ``"test"`` (1,826) or ``"all"``.

    The split is a uniformly random choice of 1,826 test images, fixed by ``seed`` (the
    original's running counter gives the same sizes). Columns: ``pendulum_angle`` and
    ``light_angle`` (radians), ``sun_position``, ``shadow_width`` and ``shadow_position``
    (canvas units) and ``image`` (float32 arrays, see :class:`PendulumGenerator`).
    """
    if split not in ("train", "test", "all"):
        raise ConfigError(f"split must be 'train', 'test' or 'all', got {split!r}")
    grid = pendulum_grid()
    if split != "all":
        test = np.zeros(N_IMAGES, bool)
        test[np.random.default_rng(seed).permutation(N_IMAGES)[:N_TEST]] = True
        grid = grid[test if split == "test" else ~test]
    return PendulumGenerator(size, grayscale).frame(grid)


def measure_shadow(images: np.ndarray) -> pd.DataFrame:
    """A pseudo-oracle: ``shadow_width`` and ``shadow_position`` read off images (grayscale
    ``(n, H, W)`` or RGB ``(n, 3, H, W)``, [0, 1], white background).

    Only the shadow reaches the ground band ``y < 0``; per column its coverage is the largest
    darkness ``1 − luminance`` over the band's rows, the width is the summed coverage times the
    pixel width and the position its coverage-weighted mean ``x``.
    """
    dark, x, y = _darkness(images)
    cover = dark[:, y < 0, :].max(axis=1)
    mass = cover.sum(axis=1)
    position = (cover * x).sum(axis=1) / np.maximum(mass, 1e-12)
    return pd.DataFrame({"shadow_width": mass * (X_RANGE[1] - X_RANGE[0]) / len(x),
                         "shadow_position": np.where(mass > 0, position, np.nan)})


def measure_pendulum(images: np.ndarray) -> pd.DataFrame:
    """A pseudo-oracle for all four labels, read off images with the generator's geometry.

    ``shadow_width`` and ``shadow_position`` as :func:`measure_shadow`; ``sun_position`` the
    darkness-weighted mean ``x`` of the band above the pendulum (``y > 15``: only the sun;
    read towards the centre, by up to ~0.9 units, where the canvas edge cuts the sun);
    ``pendulum_angle`` ``atan2(c_x − 10, 10.5 − c_y)`` of the darkness centroid ``c`` of the
    band ``0.4 < y < 15`` (rod and ball, mirror-symmetric about the rod through the pivot, so
    ``c`` lies on it). NaN where a band is blank.
    """
    out = measure_shadow(images)
    dark, x, y = _darkness(images)
    top = dark[:, y > 15.0, :].sum(axis=1)
    band = (y > 0.4) & (y < 15.0)
    mid = dark[:, band, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["sun_position"] = (top * x).sum(1) / top.sum(1)
        mass = mid.sum(axis=(1, 2))
        cx = (mid * x[None, None, :]).sum(axis=(1, 2)) / mass
        cy = (mid * y[band][None, :, None]).sum(axis=(1, 2)) / mass
    out["pendulum_angle"] = np.arctan2(cx - PIVOT[0], PIVOT[1] - cy)
    return out


def _darkness(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(1 − luminance)`` clipped to [0, 1] as ``(n, H, H)``, and the pixel centres' canvas
    ``x`` (columns) and ``y`` (rows, top first)."""
    a = np.asarray(images, float)
    if a.ndim == 4 and a.shape[1] == 3:
        a = np.einsum("nchw,c->nhw", a, _LUMA)
    if a.ndim != 3 or a.shape[1] != a.shape[2] or a.shape[1] < 16:
        raise DataError(f"expected images (n, H, H) or (n, 3, H, H) with H >= 16, got shape {np.shape(images)}")
    s = a.shape[1]
    y = Y_RANGE[1] - (np.arange(s) + 0.5) * (Y_RANGE[1] - Y_RANGE[0]) / s
    x = (np.arange(s) + 0.5) * (X_RANGE[1] - X_RANGE[0]) / s + X_RANGE[0]
    return np.clip(1.0 - a, 0.0, 1.0), x, y
