"""The flow bank's negative log-likelihood with its gradient derived by hand.

:meth:`deepscm.bank.FlowBank.log_prob` is a few hundred small tensor operations; autograd
records each and replays one or more backward operations per node of the graph. Here the
backward pass is written out, so a training step runs about half as many operations, and
none of them is recorded. The model and the numbers are those of ``FlowBank.nll`` with
``torch.autograd.grad`` (``tests/test_bank_grad.py`` checks both to 1e-10 in float64).

For node ``i`` and row ``b`` (Durkan et al. 2019, eqs. 4–5, zuko's parametrisation):

- conditioner: ``h = b_in + c W_in = [skip | p_loc | p_shape]``; a ReLU MLP from ``p_loc``
  gives the location ``μ = skip + MLP_loc``, a tanh MLP from ``p_shape`` gives the affine's raw
  log-scale ``r`` and each spline's raw widths, heights and log-derivatives;
- affine: ``ℓ = r / (1 + |r|/κ)`` (κ = −log 10⁻³), ``v₀ = (x − μ) e^{−ℓ}``;
- spline ``k`` on ``v_{k−1}`` inside its bin ``[x₀, x₁] → [y₀, y₁]``, with ``w = x₁ − x₀``,
  ``h = y₁ − y₀``, ``s = h/w``, ``z = (v − x₀)/w``, ``q = z(1 − z)``,
  ``D = s + (d₀ + d₁ − 2s) q``: ``y = y₀ + h (s z² + d₀ q)/D`` and
  ``log y' = 2 log s + log(2 s q + d₀ (1 − z)² + d₁ z²) − 2 log D``; the identity outside
  ``[−B, B]``;
- ``log p = −v_K²/2 − log √(2π) − ℓ + Σ_k log y'_k``; the loss of node ``i`` is the mean of
  ``−log p`` over the rows, and the gradient is that of ``Σ_i weight_i · loss_i``.

The knots are ``B (2 · cumsum([0, softmax(a / (1 + 2|a|/κ))]) − 1)`` of the raw widths and
heights ``a``, and ``d = exp(e / (1 + |e|/κ))`` of the raw log-derivatives ``e`` (padded with
zeros at both ends); the backward pass goes through the bin's two knots, the reversed cumsum
and the softmax.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F

from .mechanisms.flow import _BOUND, _HALF_LOG_2PI, _LOG_SLOPE

if TYPE_CHECKING:
    from .bank import FlowBank

__all__ = ["Constants", "constants", "cpu_tanh", "nll", "nll_and_grads", "tanh", "tanh_by_sigmoid"]

_KAPPA = abs(_LOG_SLOPE)


class Constants(NamedTuple):
    """The step's numeric constants as 0-dim tensors of the data's dtype and device. An
    operation with a Python number first converts it to a tensor (``aten::to``): on this torch
    CPU build ``v * 2.0`` took 2.1 µs on a 512-row vector and ``v * two`` 1.0 µs
    (``benchmarks/bank_constants.py``), and a step had about a hundred such operations. The
    values are those of the Python numbers, rounded to the dtype as the operation would."""

    one: torch.Tensor
    two: torch.Tensor
    half: torch.Tensor
    bound: torch.Tensor  # B
    two_bound: torch.Tensor  # 2B
    kappa: torch.Tensor  # κ = −log 10⁻³
    half_kappa: torch.Tensor
    half_log_2pi: torch.Tensor
    pair: torch.Tensor  # the integer offsets [0, 1] of a bin's two knots


_CONSTANTS: dict[tuple[torch.dtype, torch.device], Constants] = {}


def constants(like: torch.Tensor) -> Constants:
    """:class:`Constants` for ``like``'s dtype and device (made once, then cached)."""
    key = (like.dtype, like.device)
    if key not in _CONSTANTS:
        values = (1.0, 2.0, 0.5, _BOUND, 2 * _BOUND, _KAPPA, _KAPPA / 2, _HALF_LOG_2PI)
        scalars = (torch.tensor(v, dtype=like.dtype, device=like.device) for v in values)
        _CONSTANTS[key] = Constants(*scalars, torch.tensor([0, 1], device=like.device))
    return _CONSTANTS[key]


def _soft_clip(a: torch.Tensor, m: torch.Tensor, c: Constants) -> tuple[torch.Tensor, torch.Tensor]:
    """``a / (1 + |a|/m)`` and its derivative ``1 / (1 + |a|/m)²``."""
    r = a.abs().div_(m).add_(c.one).reciprocal_()
    return a * r, r.square_()


def tanh_by_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``tanh(x) = 2σ(2x) − 1`` (float32 within 2e-7 of ``torch.tanh``)."""
    c = constants(x)
    return torch.sigmoid(x + x).mul_(c.two).sub_(c.one)


#: on the CPU, the faster of ``torch.tanh`` and :func:`tanh_by_sigmoid` on this machine
#: (:func:`cpu_tanh`).
_cpu_tanh: Callable[[torch.Tensor], torch.Tensor] | None = None


def _choose_cpu_tanh() -> Callable[[torch.Tensor], torch.Tensor]:
    """``torch.tanh``'s CPU kernel costs ~3 ns per element on some machines and ~0.4 ns on
    others, against ~0.7–1.2 ns for :func:`tanh_by_sigmoid` (``[2, 512, 64]``: 204 µs against
    62 µs on one, ``benchmarks/bank_tanh.py``; 18 µs against 40 µs on another,
    ``benchmarks/bank_constants.py``). Both are timed
    once, each the fastest of five rounds of ten calls (a busy machine slows rounds, not the
    fastest); the sigmoid form is kept only when it is clearly faster (1.5×), so a machine
    where they are close always takes ``torch.tanh``."""
    x = torch.randn(2, 512, 64, generator=torch.Generator().manual_seed(0))

    def fastest(f: Callable[[torch.Tensor], torch.Tensor]) -> float:
        f(x)
        rounds = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(10):
                f(x)
            rounds.append(time.perf_counter() - start)
        return min(rounds)

    return tanh_by_sigmoid if 1.5 * fastest(tanh_by_sigmoid) < fastest(torch.tanh) else torch.tanh


def cpu_tanh() -> Callable[[torch.Tensor], torch.Tensor]:
    """The CPU tanh kernel of :func:`tanh`, chosen at the first call (:func:`_choose_cpu_tanh`;
    a compiled bank calls this before tracing, so the timing is never compiled)."""
    global _cpu_tanh
    if _cpu_tanh is None:
        _cpu_tanh = _choose_cpu_tanh()
    return _cpu_tanh


def tanh(x: torch.Tensor) -> torch.Tensor:
    """``tanh(x)`` by the faster kernel for the device (:func:`cpu_tanh` on the CPU); no
    backward of its own (``deepscm.bank._Tanh`` gives it tanh's)."""
    return torch.tanh(x) if x.device.type != "cpu" else cpu_tanh()(x)


class _Spline(NamedTuple):
    """What one spline's backward pass needs from its forward pass."""

    softmax: torch.Tensor  # [..., 2, K] softmax of the clipped widths and heights
    d_clip: torch.Tensor  # [..., 2, K] derivative of their soft clip
    index: torch.Tensor  # [..., 2] the bin's two knots
    inside: torch.Tensor  # [...] 1.0 inside [-B, B], else 0.0
    inside_bool: torch.Tensor
    d: torch.Tensor  # [..., 2] derivatives d₀, d₁ at the bin's knots
    d_raw: torch.Tensor  # [..., 2] ∂d/∂e there
    w: torch.Tensor
    h: torch.Tensor
    s: torch.Tensor
    z: torch.Tensor
    q: torch.Tensor
    denominator: torch.Tensor
    numerator: torch.Tensor
    a: torch.Tensor  # 2 s q + d₀ (1 − z)² + d₁ z²


def _spline_forward(block: torch.Tensor, v: torch.Tensor, bins: int, c: Constants) -> tuple[torch.Tensor, torch.Tensor, _Spline]:
    """One spline on ``v`` ``[N, B]`` from its raw parameters ``block`` ``[N, B, 3K − 1]``:
    ``(y, log y', saved)``."""
    wh, log_d = block.split([2 * bins, bins - 1], dim=-1)
    wh = wh.reshape(*block.shape[:-1], 2, bins)
    clipped, d_clip = _soft_clip(wh, c.half_kappa, c)
    softmax = torch.softmax(clipped, dim=-1)
    knots = F.pad(torch.cumsum(softmax, dim=-1), (1, 0)).mul_(c.two_bound).sub_(c.bound)  # [N, B, 2, K + 1]
    below = knots[..., 0, :] < v[..., None]  # X_j < v
    inside_bool = below[..., 0] & ~below[..., -1]  # X_0 < v ≤ X_K
    inside = inside_bool.to(v.dtype)
    # the bin's two knots: k = #{0 < j < K : X_j < v} is the bin inside (0 or K − 1 outside,
    # where every use is masked)
    index = below[..., 1:-1].sum(dim=-1, keepdim=True) + c.pair  # [N, B, 2]: k, k + 1
    ends = knots.gather(-1, index.unsqueeze(-2).expand(*index.shape[:-1], 2, 2))  # [N, B, [x, y], 2]
    (x0, x1), (y0, y1) = ends[..., 0, :].unbind(-1), ends[..., 1, :].unbind(-1)
    clipped_d, d_raw = _soft_clip(F.pad(log_d, (1, 1)).gather(-1, index), c.kappa, c)
    d = clipped_d.exp_()
    d_raw.mul_(d)
    d0, d1 = d.unbind(-1)
    w, h = x1 - x0, y1 - y0
    s = h / w
    z = (v - x0).div_(w).mul_(inside)
    one_z, z2, two_s = c.one - z, z.square(), s + s
    q = z * one_z
    denominator = s + (d0 + d1 - two_s) * q
    numerator = s * z2 + d0 * q
    y = torch.where(inside_bool, y0 + h * numerator / denominator, v)
    a = two_s * q + d0 * one_z.square() + d1 * z2
    log_jac = (s.square() * a / denominator.square()).log_().mul_(inside)
    saved = _Spline(softmax, d_clip, index, inside, inside_bool, d, d_raw, w, h, s, z, q, denominator, numerator, a)
    return y, log_jac, saved


def _spline_backward(saved: _Spline, grad_y: torch.Tensor, grad_log_jac: torch.Tensor, bins: int,
                     c: Constants) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients of one spline's input ``v`` ``[N, B]`` and raw parameters ``[N, B, 3K − 1]``
    from those of its output ``y`` and of ``log y'``."""
    sv = saved
    d0, d1 = sv.d.unbind(-1)
    z, q, s, den, num = sv.z, sv.q, sv.s, sv.denominator, sv.numerator
    gy, gl = grad_y * sv.inside, grad_log_jac * sv.inside
    one_z, z2, two_s = c.one - z, z.square(), s + s
    t, one_2q = one_z - z, c.one - (q + q)  # 1 − 2z, 1 − 2q
    slope = d0 + d1 - two_s
    hd2 = sv.h / den.square()
    inv_a, two_inv_den = sv.a.reciprocal(), c.two / den
    # ∂y and ∂log y' with respect to s, d₀, d₁ and z (h enters y directly and through s)
    grad_s = gy * hd2 * (z2 * den - num * one_2q) + gl * (c.two / s + (q + q) * inv_a - two_inv_den * one_2q)
    grad_z = (gy * hd2 * ((two_s * z + d0 * t) * den - num * slope * t)
              + gl * ((s * t - d0 * one_z + d1 * z) * (inv_a + inv_a) - two_inv_den * slope * t))
    grad_d0 = gy * hd2 * q * (den - num) + gl * (one_z.square() * inv_a - two_inv_den * q)
    grad_d1 = -gy * hd2 * num * q + gl * (z2 * inv_a - two_inv_den * q)
    grad_h = gy * num / den + grad_s / sv.w
    grad_z_w = grad_z / sv.w
    grad_w = -(grad_s * s + grad_z * z) / sv.w
    grad_v = torch.where(sv.inside_bool, grad_z_w, grad_y)
    # the bin's ends x₀ = X_k, x₁ = X_{k+1} (w = x₁ − x₀, z = (v − x₀)/w), y₀, y₁ likewise
    ends = torch.stack((-grad_z_w - grad_w, grad_w, gy - grad_h, grad_h), -1).unflatten(-1, (2, 2))  # [N, B, [x, y], 2]
    grad_knots = torch.zeros(*sv.softmax.shape[:-1], bins + 1, dtype=gy.dtype, device=gy.device)
    grad_knots.scatter_(-1, sv.index.unsqueeze(-2).expand_as(ends), ends)
    # knots_j = B(2 Σ_{i<j} softmax_i − 1): ∂/∂softmax_i = 2B Σ_{j>i} ∂/∂knots_j
    grad_softmax = grad_knots[..., 1:].flip(-1).cumsum(-1).flip(-1).mul_(c.two_bound)
    grad_clipped = sv.softmax * (grad_softmax - (grad_softmax * sv.softmax).sum(-1, keepdim=True))
    grad_wh = grad_clipped.mul_(sv.d_clip).flatten(-2)
    grad_log_d = torch.zeros(*sv.index.shape[:-1], bins + 1, dtype=gy.dtype, device=gy.device)
    grad_log_d.scatter_(-1, sv.index, torch.stack((grad_d0, grad_d1), -1).mul_(sv.d_raw))
    return grad_v, torch.cat((grad_wh, grad_log_d[..., 1:bins]), -1)


class _Forward(NamedTuple):
    """The log-density ``[N, B]`` and what the backward pass needs from the forward pass."""

    log_p: torch.Tensor
    v0: torch.Tensor  # the affine's output (x − μ) e^{−ℓ}
    v: torch.Tensor  # the last spline's output
    inv_scale: torch.Tensor  # e^{−ℓ}
    d_log_scale: torch.Tensor  # ∂ℓ/∂r
    splines: list[_Spline]
    inputs_loc: list[torch.Tensor]  # each hidden layer's input activations
    inputs_shape: list[torch.Tensor]


def nll(bank: FlowBank, context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Every node's mean negative log-likelihood ``[N]`` (``bank.nll(context, x)``), without
    autograd (the held-out score of a training epoch)."""
    with torch.no_grad():
        return -_forward(bank, context, x, constants(x)).log_p.mean(dim=1)


def nll_and_grads(bank: FlowBank, context: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Every node's mean negative log-likelihood ``[N]`` (``bank.nll(context, x)``) and the
    gradients of ``Σ_i weight_i · nll_i`` with respect to ``bank.parameters()``, in their order.
    Runs without autograd; ``context`` ``[N, B, C]``, ``x`` ``[N, B]``, ``weight`` ``[N]``."""
    with torch.no_grad():
        c = constants(x)
        forward = _forward(bank, context, x, c)
        return -forward.log_p.mean(dim=1), _backward(bank, context, forward, weight, c)


def _forward(bank: FlowBank, context: torch.Tensor, x: torch.Tensor, c: Constants) -> _Forward:
    locs, shapes = bank.layers
    depth = len(locs) // 2
    h = torch.baddbmm(bank.b_in, context, bank.w_in)
    inputs_loc, inputs_shape = [], []
    if bank.hidden:
        width = bank.hidden[0]
        skip, pre_loc, pre_shape = h.split([1, width, width], dim=-1)
        act_loc, act_shape = torch.relu(pre_loc), tanh(pre_shape)
        for j in range(depth):
            inputs_loc.append(act_loc)
            inputs_shape.append(act_shape)
            out_loc = torch.baddbmm(locs[2 * j + 1], act_loc, locs[2 * j])
            out_shape = torch.baddbmm(shapes[2 * j + 1], act_shape, shapes[2 * j])
            if j < depth - 1:
                act_loc, act_shape = torch.relu(out_loc), tanh(out_shape)
        shift, params = skip[..., 0] + out_loc[..., 0], out_shape
    else:
        shift, params = h[..., 0] + h[..., 1], h[..., 2:]
    bins, width_block = bank.bins, 3 * bank.bins - 1
    log_scale, d_log_scale = _soft_clip(params[..., 0], c.kappa, c)
    inv_scale = (-log_scale).exp()
    v0 = (x - shift) * inv_scale
    v, log_p, saved = v0, -log_scale, []
    for k in range(bank.splines):
        block = params[..., 1 + k * width_block : 1 + (k + 1) * width_block]
        v, log_jac, part = _spline_forward(block, v, bins, c)
        log_p = log_p + log_jac
        saved.append(part)
    log_p = log_p - v.square() * c.half - c.half_log_2pi
    return _Forward(log_p, v0, v, inv_scale, d_log_scale, saved, inputs_loc, inputs_shape)


def _backward(bank: FlowBank, context: torch.Tensor, fw: _Forward, weight: torch.Tensor, c: Constants) -> list[torch.Tensor]:
    n, rows = fw.v.shape
    locs, shapes = bank.layers
    depth, bins = len(locs) // 2, bank.bins
    # g = ∂(Σ_i weight_i nll_i)/∂log p, the same for every term of log p
    g = (weight / -rows).to(fw.v.dtype)[:, None].expand(n, rows)
    grad_v, grad_blocks = -g * fw.v, []
    for part in reversed(fw.splines):
        grad_v, grad_block = _spline_backward(part, grad_v, g, bins, c)
        grad_blocks.append(grad_block)
    grad_shift = -grad_v * fw.inv_scale
    grad_log_scale = (-grad_v * fw.v0 - g) * fw.d_log_scale
    grad_params = torch.cat([grad_log_scale[..., None], *reversed(grad_blocks)], dim=-1)
    grads_loc: list[torch.Tensor] = [torch.empty(0)] * len(locs)
    grads_shape: list[torch.Tensor] = [torch.empty(0)] * len(shapes)
    if bank.hidden:
        grad_loc, grad_shape = grad_shift[..., None], grad_params
        for j in reversed(range(depth)):
            grads_loc[2 * j] = torch.bmm(fw.inputs_loc[j].transpose(1, 2), grad_loc)
            grads_loc[2 * j + 1] = grad_loc.sum(1, keepdim=True)
            grads_shape[2 * j] = torch.bmm(fw.inputs_shape[j].transpose(1, 2), grad_shape)
            grads_shape[2 * j + 1] = grad_shape.sum(1, keepdim=True)
            grad_loc = torch.ops.aten.threshold_backward(
                torch.bmm(grad_loc, locs[2 * j].transpose(1, 2)), fw.inputs_loc[j], 0)
            grad_shape = torch.ops.aten.tanh_backward(
                torch.bmm(grad_shape, shapes[2 * j].transpose(1, 2)), fw.inputs_shape[j])
        grad_h = torch.cat((grad_shift[..., None], grad_loc, grad_shape), dim=-1)
    else:
        grad_h = torch.cat((grad_shift[..., None], grad_shift[..., None], grad_params), dim=-1)
    grads = [torch.bmm(context.transpose(1, 2), grad_h), grad_h.sum(1, keepdim=True)]
    return grads + grads_loc + grads_shape
