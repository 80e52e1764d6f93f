"""Conditional normalizing flows (zuko): invertible mechanisms with exact abduction.

``x = T⁻¹(u; pa)`` with ``u ~ N(0, I)`` and ``T`` a stack of monotonic transforms whose
parameters are produced from the parents. Abduction is the forward map, ``u = T(x; pa)``
(Pawlowski et al. 2020, eq. 1), and the likelihood follows from the change of variables,
``log p(x | pa) = log N(T(x; pa)) + log |det ∂T/∂x|``.

- A scalar node uses ``T = S_k ∘ … ∘ S_1 ∘ A⁻¹`` with ``A(v) = μ(pa) + σ(pa)·v``, i.e.
  ``x = μ(pa) + σ(pa)·S⁻¹(u; pa)``: a conditional location-scale map (learned directly as
  ``μ`` and ``log σ``, both O(1) in standardised units) and ``k`` rational-quadratic splines
  ``S`` (Durkan et al. 2019) that shape the noise. The location comes from a ReLU MLP with a
  linear skip path, so it extrapolates linearly beyond the training range; ``log σ`` and the
  spline parameters come from a tanh MLP, which saturates, so the noise shape stays bounded
  out of range (a counterfactual at an unseen parent value is a location shift, not an
  arbitrary distortion). All are zuko transforms whose
  parameters come from one MLP of the parents. (For one feature, zuko's masked autoregressive
  conditioner sees only the parents anyway; a plain MLP computes the same at a third of the
  cost.) ``flow="maf"`` keeps only ``A``: a heteroscedastic Gaussian.
- A vector node uses zuko's autoregressive ``NSF`` or ``MAF`` with the parents as context.

Training a scalar node skips zuko's objects too: :meth:`ConditionalFlow.log_prob` evaluates
zuko's expressions (and the spline's log-derivative) directly, differentiably. Sampling and
abduction of a scalar node (without gradients) skip zuko: the conditioner MLPs
run on the extracted weights with their first layers fused, in row blocks that stay in cache,
and the splines are evaluated in closed form from the same knots zuko builds (same operations
in the same order, so the same numbers); a root node computes its one set of knots once.
``sample`` and ``abduct`` with gradients enabled keep zuko's path.

Reduced precision (opt-in): with :attr:`ConditionalFlow.sampling_dtype` set to
``torch.bfloat16`` (on an instance, or for a whole model with :func:`sampling_precision`),
:meth:`~ConditionalFlow.sample` runs the conditioner MLP (its matrix products and activations)
in bfloat16 and the splines in the model's dtype. Abduction, ``log_prob`` and training ignore
it: counterfactuals keep full precision. benchmarks/sampling.py measures its speed and its
effect on the interventional MMD.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
import zuko
from torch import nn
from zuko.transforms import ComposedTransform, MonotonicAffineTransform, MonotonicRQSTransform

from ..errors import ConfigError
from .base import Mechanism, MechanismSpec, SkipMLP, mlp, positive_int, positive_ints

__all__ = ["ConditionalFlow", "SAMPLING_DTYPES", "sampling_precision"]

_VECTOR_FLOWS = {"nsf": zuko.flows.NSF, "maf": zuko.flows.MAF}

# zuko's defaults, used by ``_transform``: MonotonicRQSTransform(bound=5.0, slope=1e-3) and
# MonotonicAffineTransform(slope=1e-3). tests/test_flow_fast_path.py checks the fast path
# against zuko, so a change of zuko's parametrisation fails there.
_BOUND = 5.0
_LOG_SLOPE = math.log(1e-3)
#: rows per block of the fast path's conditioner: a block's activations (4096 x 128 floats,
#: 2 MiB) stay in cache; 2048-8192 measured alike, a whole 65,536-row chunk ~1.4x slower.
_BLOCK_ROWS = 4096
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
#: names accepted for :attr:`ConditionalFlow.sampling_dtype` (``None``: the model's own dtype).
SAMPLING_DTYPES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def _knots(block: torch.Tensor, bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Knots of zuko's ``MonotonicRQSTransform(widths, heights, derivatives)`` from its raw
    parameters ``block`` ``(..., 3K - 1)``, by zuko's operations in zuko's order (some in
    place): the x- and y-knots ``(..., 2, K + 1)`` (widths and heights go through the same soft
    clip, softmax and cumsum, row by row, so together) and the *raw* log-derivatives padded
    with zeros ``(..., K + 1)``: the soft clip and ``exp`` are element-wise, so :func:`_bin`
    applies them to the two knots a value needs only (``exp(clip(0)) = 1`` is zuko's padding)."""
    wh, log_d = block.split([2 * bins, bins - 1], dim=-1)  # (a split's backward is one cat)
    wh = wh.reshape(*block.shape[:-1], 2, bins)  # [widths, heights]
    clip = (wh * 2).div_(_LOG_SLOPE).abs_().add_(1)  # 1 + |2 w / log(slope)|
    wh = F.pad(F.softmax(wh / clip, dim=-1), (1, 0), value=0)
    xy = torch.cumsum(wh, dim=-1).mul_(2).sub_(1).mul_(_BOUND)  # B (2 cumsum - 1)
    return xy, F.pad(log_d, (1, 1), value=0)


def _bin(knots: tuple[torch.Tensor, torch.Tensor], v: torch.Tensor, axis: int) -> tuple[torch.Tensor, ...]:
    """zuko's ``searchsorted`` and ``bin``: the bin of each ``v`` ``(n,)`` along the x-knots
    (``axis=0``) or the y-knots (``axis=1``), whether it lies inside the bound, and the bin's
    ends. ``knots`` holds one shared row (a root) or one row per value; with one row per value,
    ``v`` may have leading dimensions (``(nodes, n)`` in :mod:`deepscm.bank`)."""
    xy, log_d = knots
    seq = xy[..., axis, :]
    bins = seq.shape[-1] - 1
    if seq.dim() == 1:  # the count of knots < v, as zuko's torch.sum(seq < v[..., None])
        k = torch.searchsorted(seq, v) - 1
    else:
        k = torch.sum(seq < v[..., None], dim=-1) - 1
    mask = torch.logical_and(0 <= k, k < bins)
    k = k % bins
    index = torch.stack((k, k + 1), dim=-1)  # (n, 2)
    if seq.dim() == 1:
        ends, d = xy[:, index], log_d[index]  # (2, n, 2), (n, 2)
        (x0, x1), (y0, y1) = ends[0].unbind(-1), ends[1].unbind(-1)
    else:
        ends = xy.gather(-1, index.unsqueeze(-2).expand(*index.shape[:-1], 2, 2))  # (..., [x, y], 2)
        d = log_d.gather(-1, index)
        (x0, y0), (x1, y1) = ends[..., 0].unbind(-1), ends[..., 1].unbind(-1)
    d0, d1 = (d / (1 + abs(d / _LOG_SLOPE))).exp_().unbind(-1)
    s = (y1 - y0) / (x1 - x0)
    return mask, x0, x1, y0, y1, d0, d1, s


def _rqs_forward(knots: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """zuko's ``MonotonicRQSTransform._call``: the spline inside ``[-B, B]``, identity outside.
    zuko's expression, association included (``d0 * z * (1 - z)`` is ``(d0 * z) * (1 - z)``)."""
    mask, x0, x1, y0, y1, d0, d1, s = _bin(knots, x, 0)
    z = mask * (x - x0) / (x1 - x0)
    y = y0 + (y1 - y0) * (s * z**2 + d0 * z * (1 - z)) / (s + (d0 + d1 - 2 * s) * z * (1 - z))
    return torch.where(mask, y, x)


def _rqs_forward_and_ladj(knots: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """zuko's ``MonotonicRQSTransform.call_and_ladj``: the spline and ``log |dy/dx|`` (0
    outside ``[-B, B]``), zuko's expressions (Durkan et al. 2019, eqs. 4 and 5)."""
    mask, x0, x1, y0, y1, d0, d1, s = _bin(knots, x, 0)
    z = mask * (x - x0) / (x1 - x0)
    denominator = s + (d0 + d1 - 2 * s) * z * (1 - z)
    y = y0 + (y1 - y0) * (s * z**2 + d0 * z * (1 - z)) / denominator
    jacobian = s**2 * (2 * s * z * (1 - z) + d0 * (1 - z) ** 2 + d1 * z**2) / denominator**2
    return torch.where(mask, y, x), mask * jacobian.log()


def _rqs_inverse(knots: tuple[torch.Tensor, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
    """zuko's ``MonotonicRQSTransform._inverse``: the root of the bin's quadratic, in closed
    form; zuko's expressions with the common terms computed once."""
    mask, x0, x1, y0, y1, d0, d1, s = _bin(knots, y, 1)
    y_ = mask * (y - y0)
    dy = y1 - y0
    t = y_ * (d0 + d1 - 2 * s)
    a = dy * (s - d0) + t
    b = dy * d0 - t
    c = -s * y_
    z = 2 * c / (-b - (b**2 - 4 * a * c).sqrt())
    x = x0 + z * (x1 - x0)
    return torch.where(mask, x, y)


class ConditionalFlow(Mechanism):
    """A conditional normalizing flow ``p(x | pa)``; unconditional for root nodes.

    Args:
        flow: ``"nsf"`` (affine + monotonic rational-quadratic splines) or ``"maf"`` (affine).
        transforms: number of spline layers (scalar nodes) or flow layers (vector nodes).
        hidden_features: widths of the MLP that maps the parents to transform parameters.
        bins: spline bins.
    """

    abduction = "exact"
    #: use the fast paths for scalar nodes (``log_prob``; ``sample``/``abduct`` without
    #: gradients); ``False`` (on an instance) forces zuko's path, the tests' reference.
    _fast = True
    #: the dtype of the conditioner's matrix products in no-grad :meth:`sample` (``None``: the
    #: weights' own); set per instance (validated by :func:`sampling_precision`), not saved.
    sampling_dtype: torch.dtype | None = None

    def __init__(
        self,
        flow: str = "nsf",
        transforms: int = 1,
        hidden_features: tuple[int, ...] | list[int] = (64, 64),
        bins: int = 16,
    ) -> None:
        if flow not in _VECTOR_FLOWS:
            raise ConfigError(f"unknown flow {flow!r}; choose one of {sorted(_VECTOR_FLOWS)}")
        super().__init__(
            flow=flow,
            transforms=positive_int("transforms", transforms),
            hidden_features=positive_ints("hidden_features", hidden_features),
            bins=positive_int("bins", bins),
        )

    @property
    def _splines(self) -> int:
        return self.hparams["transforms"] if self.hparams["flow"] == "nsf" else 0

    def _build(self, spec: MechanismSpec) -> None:
        if spec.x_dim > 1:
            kwargs = dict(
                features=spec.x_dim,
                context=spec.context_dim,
                transforms=self.hparams["transforms"],
                hidden_features=tuple(self.hparams["hidden_features"]),
            )
            if self.hparams["flow"] == "nsf":
                kwargs["bins"] = self.hparams["bins"]
            self.vector_flow = _VECTOR_FLOWS[self.hparams["flow"]](**kwargs)
            return
        n_shape = 1 + self._splines * (3 * self.hparams["bins"] - 1)
        hidden = self.hparams["hidden_features"]
        if spec.context_dim:
            self.location = SkipMLP(spec.context_dim, 1, hidden)
            self.shape = mlp(spec.context_dim, n_shape, hidden, activation=nn.Tanh)
            nn.init.zeros_(self.shape[-1].weight)
            nn.init.zeros_(self.shape[-1].bias)
        else:
            self.root_params = nn.Parameter(torch.zeros(1 + n_shape))

    def _transform(self, context: torch.Tensor) -> ComposedTransform | zuko.distributions.NormalizingFlow:
        """``T(·; pa)`` mapping data to noise (scalar nodes)."""
        if self.spec.context_dim:
            params = torch.cat([self.location(context), self.shape(context)], dim=-1)
        else:
            params = self.root_params.expand(len(context), -1)
        params = params.unsqueeze(1)  # (n, 1 feature, p)
        parts = [MonotonicAffineTransform(params[..., 0], params[..., 1]).inv]  # (x - μ) / σ
        k = self.hparams["bins"]
        for i in range(self._splines):
            block = params[..., 2 + i * (3 * k - 1) : 2 + (i + 1) * (3 * k - 1)]
            parts.append(MonotonicRQSTransform(block[..., :k], block[..., k : 2 * k], block[..., 2 * k :]))
        return ComposedTransform(*parts)

    def _vector_dist(self, context: torch.Tensor) -> zuko.distributions.NormalizingFlow:
        return self.vector_flow(context) if context.shape[-1] else self.vector_flow()

    def log_prob(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if self.spec.x_dim > 1:
            return self._vector_dist(context).log_prob(x)
        if self._fast:
            u, ladj = self._fast_forward_and_ladj(context, x.reshape(-1))
            return -0.5 * u.square() - _HALF_LOG_2PI + ladj
        u, ladj = self._transform(context).call_and_ladj(x)
        return torch.distributions.Normal(0.0, 1.0).log_prob(u).sum(-1) + ladj.sum(-1)

    def _fast_forward_and_ladj(self, context: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(T(x; pa), log |det ∂T/∂x|)`` of a scalar node by the same operations as zuko's
        ``ComposedTransform.call_and_ladj`` — differentiable, without building zuko objects
        (training spends most of a step on them otherwise). A root's knots are one row."""
        if self.spec.context_dim:
            params = torch.cat([self.location(context), self.shape(context)], dim=-1)
        else:
            params = self.root_params
        shift, scale, knots = self._split(params)
        log_scale = scale / (1 + abs(scale / _LOG_SLOPE))  # MonotonicAffineTransform
        v = (x - shift) / log_scale.exp()
        ladj = -log_scale.expand_as(v)
        for kn in knots:
            v, part = _rqs_forward_and_ladj(kn, v)
            ladj = ladj + part
        return v, ladj

    def start_linear(self, weight: torch.Tensor, bias: torch.Tensor, log_sigma: torch.Tensor) -> None:
        """Start training at the linear-Gaussian conditional ``x = W·pa + b + σ·ε`` (a member
        of this family): the location's linear path ← ``(W, b)``, the affine log-scale's bias
        ← ``s`` with ``s / (1 + |s / log 10⁻³|) = log σ`` (:class:`MonotonicAffineTransform`'s
        soft clip, inverted; ``log σ`` clamped to 0.9 of its bound). The location MLP, the
        shape MLP's weights and the splines stay at zero, the identity. A scalar node with
        parents only; call it on a freshly built flow."""
        if self.spec.x_dim != 1 or not self.spec.context_dim:
            raise ConfigError("start_linear needs a scalar node with parents")
        bound = 0.9 * abs(_LOG_SLOPE)
        log_scale = float(log_sigma.reshape(()))
        log_scale = max(-bound, min(bound, log_scale))
        with torch.no_grad():
            self.location.linear.weight.copy_(weight.reshape(1, -1))
            self.location.linear.bias.copy_(bias.reshape(1))
            self.shape[-1].bias[0] = log_scale / (1 - abs(log_scale) / abs(_LOG_SLOPE))

    def sample_noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.spec.x_dim, generator=generator, device=generator.device)

    def sample(self, context: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        if self.spec.x_dim > 1:
            return self._vector_dist(context).transform.inv(noise)
        if self._fast and not torch.is_grad_enabled():
            return self._fast_map(context, noise, inverse=True)
        return self._transform(context).inv(noise)

    def abduct(
        self, x: torch.Tensor, context: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if self.spec.x_dim > 1:
            return self._vector_dist(context).transform(x)
        if self._fast and not torch.is_grad_enabled():
            return self._fast_map(context, x, inverse=False)
        return self._transform(context)(x)

    # ------------------------------------------------------------------ fast path (no grad)
    def _fast_map(self, context: torch.Tensor, v: torch.Tensor, inverse: bool) -> torch.Tensor:
        """``T⁻¹(v; pa)`` (``inverse``, sampling) or ``T(v; pa)`` (abduction) of a scalar node,
        equal to :meth:`_transform`'s, without building zuko objects."""
        v = v.reshape(-1)
        if not self.spec.context_dim:
            return self._compose(self._root_params(), v, inverse).unsqueeze(-1)
        layers = self._conditioner()
        low = self.sampling_dtype if inverse else None
        if low is not None:
            layers = _cast_layers(layers, low)
        out = torch.empty_like(v)
        for start in range(0, len(v), _BLOCK_ROWS):
            stop = min(start + _BLOCK_ROWS, len(v))
            if low is None:
                params = self._conditioner_params(layers, context[start:stop])
            else:
                params = self._conditioner_params(layers, context[start:stop].to(low)).to(v.dtype)
            out[start:stop] = self._compose(self._split(params), v[start:stop], inverse)
        return out.unsqueeze(-1)

    def _split(self, params: torch.Tensor) -> tuple:
        """``(μ, log σ, [knots of spline 1, …])`` from the raw parameters ``(..., p)``."""
        k = self.hparams["bins"]
        width = 3 * k - 1
        knots = [_knots(params[..., 2 + i * width : 2 + (i + 1) * width], k) for i in range(self._splines)]
        return params[..., 0], params[..., 1], knots

    def _compose(self, split: tuple, v: torch.Tensor, inverse: bool) -> torch.Tensor:
        """The composed transform of zuko's path, ``[A⁻¹, S_1, …, S_k]``, or its inverse."""
        shift, scale, knots = split
        log_scale = scale / (1 + abs(scale / _LOG_SLOPE))  # MonotonicAffineTransform
        if inverse:
            for kn in reversed(knots):
                v = _rqs_inverse(kn, v)
            return v * log_scale.exp() + shift
        v = (v - shift) / log_scale.exp()
        for kn in knots:
            v = _rqs_forward(kn, v)
        return v

    def _root_params(self) -> tuple:
        """A root's split parameters, computed once and reused while ``root_params`` holds the
        same values: the cache is keyed by a copy of the (tiny) parameter itself, so any change
        (an optimiser step, ``load_state_dict``, ``.data`` writes, ``.to()``) recomputes it."""
        p = self.root_params.detach()
        cached = self.__dict__.get("_root_cache")
        if cached is not None:
            key, split = cached
            if key.device == p.device and key.dtype == p.dtype and torch.equal(key, p):
                return split
        split = self._split(p)
        self.__dict__["_root_cache"] = (p.clone(), split)
        return split

    def _conditioner(self) -> tuple:
        """The conditioner's layers as plain steps (a ``(weight, bias)`` pair or an in-place
        activation), with the first hidden layers of the location and shape MLPs fused into one
        ``Linear``. The location's linear skip stays its own product: a one-column product is a
        dot product whose summation order differs from the matrix product's."""
        loc, shape = self.location, self.shape

        def steps(layers: list[nn.Module]) -> list:
            out = []
            for m in layers:
                if isinstance(m, nn.Linear):
                    out.append((m.weight, m.bias))
                elif isinstance(m, nn.ReLU):
                    out.append(torch.relu_)
                elif isinstance(m, nn.Tanh):
                    out.append(torch.tanh_)
                else:  # pragma: no cover - mlp() builds Linear/ReLU/Tanh only
                    out.append(m)
            return out

        skip = (loc.linear.weight, loc.linear.bias)
        if len(loc.mlp) == 1:  # no hidden layers: nothing to fuse
            return skip, None, None, steps(list(loc.mlp)), steps(list(shape))
        firsts = [loc.mlp[0], shape[0]]
        fused = (torch.cat([m.weight for m in firsts]), torch.cat([m.bias for m in firsts]))
        sizes = [m.out_features for m in firsts]
        return skip, fused, sizes, steps(list(loc.mlp)[1:]), steps(list(shape)[1:])

    @staticmethod
    def _conditioner_params(layers: tuple, context: torch.Tensor) -> torch.Tensor:
        """``cat([location(context), shape(context)], -1)`` of :meth:`_transform`."""
        skip, fused, sizes, loc_steps, shape_steps = layers

        def run(h: torch.Tensor, steps: list) -> torch.Tensor:
            for step in steps:
                h = F.linear(h, *step) if isinstance(step, tuple) else step(h)
            return h

        if fused is None:
            h_loc = h_shape = context
        else:
            h_loc, h_shape = F.linear(context, *fused).split(sizes, dim=-1)
        return torch.cat([F.linear(context, *skip) + run(h_loc, loc_steps), run(h_shape, shape_steps)], dim=-1)


def _cast_layers(layers: tuple, dtype: torch.dtype) -> tuple:
    """:meth:`ConditionalFlow._conditioner`'s layers with every ``(weight, bias)`` in ``dtype``."""
    skip, fused, sizes, loc_steps, shape_steps = layers

    def cast(step):
        return tuple(t.to(dtype) for t in step) if isinstance(step, tuple) else step

    return (cast(skip), None if fused is None else cast(fused), sizes,
            [cast(s) for s in loc_steps], [cast(s) for s in shape_steps])


@contextmanager
def sampling_precision(mechanisms: Iterable[nn.Module], dtype: str | torch.dtype | None) -> Iterator[None]:
    """Within the block, every :class:`ConditionalFlow` among ``mechanisms`` samples with its
    conditioner in ``dtype`` (``"bfloat16"``; ``None`` or ``"float32"``: full precision); the
    previous setting is restored on exit. E.g. ``with sampling_precision(scm.mechanisms.values(),
    "bfloat16"): scm.sample(n)``."""
    if dtype is None or dtype in ("float32", torch.float32):
        low = None
    elif isinstance(dtype, torch.dtype) and dtype in SAMPLING_DTYPES.values():
        low = dtype
    elif isinstance(dtype, str) and dtype.lower() in SAMPLING_DTYPES:
        low = SAMPLING_DTYPES[dtype.lower()]
    else:
        raise ConfigError(f"sampling dtype must be None, 'float32' or 'bfloat16', got {dtype!r}")
    flows = [m for m in mechanisms if isinstance(m, ConditionalFlow)]
    previous = [m.__dict__.get("sampling_dtype") for m in flows]
    for m in flows:
        m.sampling_dtype = low
    try:
        yield
    finally:
        for m, old in zip(flows, previous):
            if old is None:
                m.__dict__.pop("sampling_dtype", None)
            else:
                m.sampling_dtype = old
