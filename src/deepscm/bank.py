"""A stacked training bank: many scalar-node spline flows trained as one batched module.

The factorised likelihood ``log p(x) = Σ_i log p(x_i | pa_i)`` makes the nodes' terms
independent, so :func:`deepscm.training.train` may step them on shared mini-batches. For the
:class:`~deepscm.mechanisms.ConditionalFlow` of a scalar node with parents, one step is a few
hundred tiny tensor operations, and per node; at the default widths the arithmetic is a small
fraction of a step (the rest is per-operation overhead). The bank stacks the weights of ``N``
such flows (same hyper-parameters) into ``[N, …]`` tensors, so that every layer of every node
is one ``baddbmm``, the spline log-density (Durkan et al. 2019, eqs. 4–5, by zuko's
expressions in :mod:`deepscm.mechanisms.flow`) is evaluated once for all nodes, and one Adam
(Kingma & Ba 2015, Alg. 1, with PyTorch's bias correction and L2 weight decay) updates them.
An eager step takes its gradient from :func:`deepscm.bank_grad.nll_and_grads`, the backward
pass written out by hand (the same numbers as autograd's, with about half the operations and
nothing recorded; 1.3–1.4× faster a step at 1–2 nodes, ``benchmarks/bank_grad.py``); a
compiled step differentiates the compiled log-density with autograd.

Semantics are those of :func:`~deepscm.training.train` on the nodes' terms:

- the loss of node ``i`` is its mean negative log-likelihood on the mini-batch; gradients are
  clipped per node, ``g_i ← g_i · min(1, c / (‖g_i‖ + 10⁻⁶))`` with ``‖g_i‖`` the norm over
  node ``i``'s slice of every stacked weight (what ``clip_grad_norm_`` does per term);
- early stopping and the plateau learning-rate schedule are per node
  (:class:`~deepscm.training.Plateau`: node ``i`` steps with ``lr · decayᵏⁱ``); a node that
  stops leaves the bank (its rows of the stacked weights and of Adam's
  moments are dropped, which changes no other node's update: Adam is element-wise and the
  clipping per node; a compiled bank keeps its shapes and masks the node out of the loss and
  the update instead), so its weights are frozen; its best weights are kept and written back
  at the end;
- contexts are padded with zeros to the widest parent set, and the padded rows of the first
  layer's weights start at zero: their input is exactly zero, so their gradient is exactly
  zero, their Adam moments stay zero and so do they (weight decay of zero is zero) — a padded
  input can change neither the result nor a node's gradient norm.

After training the weights are written back into the ordinary mechanisms, so saving, loading
and every query are unchanged (the bank holds no state of its own afterwards).

``torch.compile`` (inductor, CPU), measured on this torch 2.13 CPU build (AVX2, one thread,
6 default flows; benchmarks/results/fit_scaling.md): compiling the stacked log-density (and,
through AOTAutograd, its backward) costs a warm-up of 60–130 s, after which a 512-row step
took 55 ms instead of 79 ms — break-even after ~2,500–5,500 steps — while at 4,096 rows the
compiled step was *slower* (485 vs 336 ms). ``compile="auto"`` therefore compiles only when a
fit is sure to take at least :data:`COMPILE_MIN_STEPS` full steps (``⌊rows / batch⌋ ×
min(epochs, patience + 1)``; about 250,000 rows at the defaults) with mini-batches of at most
:data:`COMPILE_MAX_BATCH` rows; the ragged last mini-batch of an epoch runs eagerly (no
recompilation). Below that the eager bank is faster over a whole fit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from . import bank_grad, distributed
from .bank_grad import nll_and_grads, tanh
from .errors import ConfigError, TrainingError
from .mechanisms.base import MAX_GRAD_NORM, Mechanism
from .mechanisms.flow import _HALF_LOG_2PI, _LOG_SLOPE, ConditionalFlow, _knots, _rqs_forward_and_ladj
from .training import Plateau, TrainingHistory, _advice, _check_diverged, _check_finite, check_options

__all__ = [
    "COMPILE_MAX_BATCH",
    "COMPILE_MIN_STEPS",
    "FlowBank",
    "bank_groups",
    "bankable",
    "merge_histories",
    "train_bank",
]

#: ``compile="auto"`` compiles when a fit runs at least this many full mini-batch steps for
#: sure (twice the measured break-even; see the module docstring).
COMPILE_MIN_STEPS = 10_000
#: ... and its mini-batches have at most this many rows (larger ones measured slower compiled).
COMPILE_MAX_BATCH = 1024
_BETAS = (0.9, 0.999)
_EPS = 1e-8
_CLIP_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_'s


def bankable(mech: Mechanism) -> bool:
    """Whether the bank can train ``mech``: a built scalar-node :class:`ConditionalFlow` with
    parents, on its fast path and with the default negative-log-likelihood step."""
    return (
        isinstance(mech, ConditionalFlow)
        and mech.spec is not None
        and mech.spec.x_dim == 1
        and mech.spec.context_dim >= 1
        and bool(mech._fast)
        and mech.uses_default_step
    )


def _key(mech: ConditionalFlow) -> tuple:
    p = next(mech.parameters())
    h = mech.hparams
    return (h["flow"], h["transforms"], tuple(h["hidden_features"]), h["bins"], p.dtype, str(p.device))


def bank_groups(mechanisms: Mapping[str, Mechanism]) -> list[list[str]]:
    """The names of the :func:`bankable` mechanisms, grouped by hyper-parameters, dtype and
    device (one bank per group), in the mapping's order."""
    groups: dict[tuple, list[str]] = {}
    for name, mech in mechanisms.items():
        if bankable(mech):
            groups.setdefault(_key(mech), []).append(name)
    return list(groups.values())


def merge_histories(into: TrainingHistory, other: TrainingHistory) -> TrainingHistory:
    """Add ``other``'s terms to ``into`` (``epochs_run`` becomes the larger); returns ``into``."""
    into.train_loss.update(other.train_loss)
    into.val_loss.update(other.val_loss)
    into.best_epoch.update(other.best_epoch)
    into.epochs_run = max(into.epochs_run, other.epochs_run)
    return into


def _linears(seq: nn.Sequential) -> list[nn.Linear]:
    return [m for m in seq if isinstance(m, nn.Linear)]


class _Tanh(torch.autograd.Function):
    """:func:`deepscm.bank_grad.tanh` (the faster of ``torch.tanh`` and ``2σ(2x) − 1`` on this
    machine, float32 results within 2e-7 of each other) with tanh's own backward
    ``g · (1 − y²)``. Where ``torch.tanh``'s CPU kernel is slow (~3 ns per element against ~1 ns
    for ``sigmoid``; ``[2, 512, 64]``: 204 µs against 62 µs) the sigmoid form made a bank step
    2–6 % faster (``benchmarks/bank_tanh.py``); elsewhere ``torch.tanh`` is the faster."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


class FlowBank(nn.Module):
    """The conditioners of ``N`` scalar-node spline flows with stacked weights.

    Layout (weights as ``[N, in, out]``, i.e. ``nn.Linear.weight`` transposed, biases as
    ``[N, 1, out]``): ``w_in`` fuses each node's location skip ``Linear``, the location MLP's
    first layer and the shape MLP's first layer (columns ``[skip | location | shape]``);
    ``loc`` and ``shape`` hold the remaining layers of the two MLPs. Rows of ``w_in`` beyond a
    node's own context width are padding and stay zero.
    """

    def __init__(self, mechanisms: Sequence[ConditionalFlow]) -> None:
        super().__init__()
        if not mechanisms or not all(bankable(m) for m in mechanisms):
            raise ConfigError("a flow bank needs built scalar-node ConditionalFlow mechanisms with parents")
        if len({_key(m) for m in mechanisms}) != 1:
            raise ConfigError(
                "the mechanisms of one flow bank must share hyper-parameters, dtype and device; "
                "group them with deepscm.bank.bank_groups"
            )
        first = mechanisms[0]
        self.nodes = len(mechanisms)
        self.widths = [m.spec.context_dim for m in mechanisms]
        self.hidden = list(first.hparams["hidden_features"])
        self.bins = first.hparams["bins"]
        self.splines = first._splines
        ref = next(first.parameters())
        n, c = self.nodes, max(self.widths)

        def zeros(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.zeros(n, *shape, dtype=ref.dtype, device=ref.device))

        n_shape = 1 + self.splines * (3 * self.bins - 1)
        first_out = 1 + 2 * self.hidden[0] if self.hidden else 2 + n_shape
        self.w_in, self.b_in = zeros(c, first_out), zeros(1, first_out)
        pairs = list(zip(self.hidden[:-1], self.hidden[1:])) + ([(self.hidden[-1], None)] if self.hidden else [])
        self.loc = nn.ParameterList()
        self.shape = nn.ParameterList()
        for a, b in pairs:
            self.loc.extend([zeros(a, 1 if b is None else b), zeros(1, 1 if b is None else b)])
            self.shape.extend([zeros(a, n_shape if b is None else b), zeros(1, n_shape if b is None else b)])
        with torch.no_grad():
            for i, mech in enumerate(mechanisms):
                for bank_view, mech_view in self._pairs(i, mech):
                    bank_view.copy_(mech_view)
        self._cache_layers()

    def _cache_layers(self) -> None:
        # the hidden layers' weights as plain tuples: indexing an nn.ParameterList costs a few
        # µs a call (index normalisation and a getattr), and a step indexed it 12 times
        self.layers = (tuple(self.loc), tuple(self.shape))

    def _pairs(self, i: int, mech: ConditionalFlow) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(bank slice, mechanism tensor)`` views of node ``i``, both ``[in, out]``/``[1, out]``."""
        c = self.widths[i]
        skip, loc, shape = mech.location.linear, _linears(mech.location.mlp), _linears(mech.shape)
        firsts = [skip, loc[0], shape[0]]
        out, start = [], 0
        for layer in firsts:
            stop = start + layer.out_features
            out += [(self.w_in[i, :c, start:stop], layer.weight.T), (self.b_in[i, :, start:stop], layer.bias[None])]
            start = stop
        for bank, layers in ((self.loc, loc[1:]), (self.shape, shape[1:])):
            for j, layer in enumerate(layers):
                out += [(bank[2 * j][i], layer.weight.T), (bank[2 * j + 1][i], layer.bias[None])]
        return out

    def write_back(self, mechanisms: Sequence[ConditionalFlow]) -> None:
        """Copy every node's weights into its mechanism (in place, so optimisers or views held
        on the mechanism's parameters stay valid)."""
        with torch.no_grad():
            for i, mech in enumerate(mechanisms):
                for bank_view, mech_view in self._pairs(i, mech):
                    mech_view.copy_(bank_view)

    def log_prob(self, context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``log p(x_i | pa_i)`` ``[N, B]`` of every node from the padded contexts ``[N, B, C]``
        and values ``[N, B]``; the expressions of ``ConditionalFlow._fast_forward_and_ladj``."""
        h = torch.baddbmm(self.b_in, context, self.w_in)
        if self.hidden:
            width = self.hidden[0]
            # split, not slices: its backward is one concatenation, where each slice's would
            # zero-fill a gradient of h's whole shape
            skip, h_loc, h_shape = h.split([1, width, width], dim=-1)
            skip, h_loc, h_shape = skip[..., 0], torch.relu(h_loc), _Tanh.apply(h_shape)
            locs, shapes = self.layers
            depth = len(locs) // 2
            for j in range(depth):
                h_loc = torch.baddbmm(locs[2 * j + 1], h_loc, locs[2 * j])
                h_shape = torch.baddbmm(shapes[2 * j + 1], h_shape, shapes[2 * j])
                if j < depth - 1:
                    h_loc, h_shape = torch.relu(h_loc), _Tanh.apply(h_shape)
            shift, params = skip + h_loc[..., 0], h_shape
        else:
            shift, params = h[..., 0] + h[..., 1], h[..., 2:]
        scale, *splines = params.split([1] + [3 * self.bins - 1] * self.splines, dim=-1)
        scale = scale[..., 0]
        log_scale = scale / (1 + abs(scale / _LOG_SLOPE))  # MonotonicAffineTransform
        v = (x - shift) / log_scale.exp()
        ladj = -log_scale
        for block in splines:
            knots = _knots(block, self.bins)
            v, part = _rqs_forward_and_ladj(knots, v)
            ladj = ladj + part
        return -0.5 * v.square() - _HALF_LOG_2PI + ladj

    def nll(self, context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Every node's mean negative log-likelihood over the rows, ``[N]``."""
        return -self.log_prob(context, x).mean(dim=1)

    def select(self, keep: torch.Tensor) -> FlowBank:
        """A bank of the nodes at positions ``keep`` (copies of their weights, same layout)."""
        out = FlowBank.__new__(FlowBank)
        nn.Module.__init__(out)
        out.nodes, out.widths = len(keep), [self.widths[i] for i in keep.tolist()]
        out.hidden, out.bins, out.splines = self.hidden, self.bins, self.splines
        out.w_in = nn.Parameter(self.w_in.detach()[keep].clone())
        out.b_in = nn.Parameter(self.b_in.detach()[keep].clone())
        out.loc = nn.ParameterList([nn.Parameter(p.detach()[keep].clone()) for p in self.loc])
        out.shape = nn.ParameterList([nn.Parameter(p.detach()[keep].clone()) for p in self.shape])
        out._cache_layers()
        return out


class _MaskedAdam:
    """One Adam over the stacked weights (``torch.optim.Adam``'s update), with per-node
    gradient clipping and a per-node update mask.

    The moments are kept flat, ``[N, P]`` with ``P`` the weights per node, and every step
    concatenates the gradients into that layout once: the clipping norm is then one reduction
    and each moment update one operation for all weights, where a list of tensors costs one
    operation per weight (``torch._foreach_*`` runs tensor by tensor on CPU). Adam is
    element-wise, so the layout changes no update."""

    def __init__(self, params: list[nn.Parameter], lr: float, weight_decay: float, max_grad_norm: float,
                 moments: tuple[torch.Tensor, torch.Tensor] | None = None, t: int = 0) -> None:
        self.params, self.lr, self.wd, self.max_norm = params, lr, weight_decay, max_grad_norm
        self.sizes = [p[0].numel() for p in params]
        ref = params[0]
        if moments is None:
            zeros = torch.zeros(ref.shape[0], sum(self.sizes), dtype=ref.dtype, device=ref.device)
            moments = (zeros, torch.zeros_like(zeros))
        self.m, self.v = moments
        self.t = t
        self.rates: torch.Tensor | None = None  # per node, × lr (0: frozen); None: all 1
        # the update's numerator and denominator are computed into these buffers, whose
        # per-weight views are made once (splitting a new [N, P] tensor every step cost 4 %)
        self._numer, self._denom = torch.empty_like(self.m), torch.empty_like(self.m)
        self._m_views, self._numer_views, self._denom_views = (
            self._per_weight(flat) for flat in (self.m, self._numer, self._denom))

    def select(self, params: list[nn.Parameter], keep: torch.Tensor) -> _MaskedAdam:
        """This optimiser's state for the nodes at positions ``keep``, stepping ``params``
        (their weights in a :meth:`FlowBank.select` bank); Adam's update is element-wise and
        the clipping per node, so the kept nodes' updates are unchanged."""
        out = _MaskedAdam(params, self.lr, self.wd, self.max_norm,
                          (self.m[keep].clone(), self.v[keep].clone()), self.t)
        if self.rates is not None:
            out.scale(self.rates[keep])
        return out

    def scale(self, rates: torch.Tensor) -> None:
        """Step node ``i`` with learning rate ``rates[i] · lr`` from now on (``[N]``; 0 freezes
        a node, as a compiled bank does with the nodes that stopped)."""
        self.rates = None if bool((rates == 1).all()) else rates.to(self.m.dtype).reshape(-1, 1)

    def _per_weight(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """``flat`` ``[N, P]`` as one view per weight, shaped like it."""
        return [part.view(p.shape) for part, p in zip(flat.split(self.sizes, dim=1), self.params)]

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor]) -> None:
        """Clip per node, then ``m ← β₁m + (1−β₁)g``, ``v ← β₂v + (1−β₂)g²``,
        ``θ ← θ − rate · lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε)`` (torch.optim.Adam's order)."""
        n = self.m.shape[0]
        g = torch.cat([grad.reshape(n, -1) for grad in grads], dim=1)
        coef = (self.max_norm / (g.square().sum(1, keepdim=True).sqrt() + _CLIP_EPS)).clamp(max=1.0)
        g.mul_(coef)
        if self.wd:
            g.add_(torch.cat([p.reshape(n, -1) for p in self.params], dim=1), alpha=self.wd)
        b1, b2 = _BETAS
        self.t += 1
        self.m.lerp_(g, 1 - b1)
        self.v.mul_(b2).addcmul_(g, g, value=1 - b2)
        torch.sqrt(self.v, out=self._denom).div_(math.sqrt(1 - b2**self.t)).add_(_EPS)
        if self.rates is None:
            numer = self._m_views
        else:
            torch.mul(self.m, self.rates, out=self._numer)
            numer = self._numer_views
        torch._foreach_addcdiv_(self.params, numer, self._denom_views, -self.lr / (1 - b1**self.t))


def train_bank(
    mechanisms: Mapping[str, ConditionalFlow],
    values: Mapping[str, torch.Tensor],
    contexts: Mapping[str, torch.Tensor],
    train_rows: torch.Tensor,
    val_rows: torch.Tensor | None,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    patience: int = 20,
    weight_decay: float = 0.0,
    max_grad_norm: float = MAX_GRAD_NORM,
    min_delta: float = 1e-4,
    lr_decay: float = 1.0,
    progress: bool = True,
    desc: str = "training flow bank",
    compile: bool | str = "auto",
) -> TrainingHistory:
    """Train the named flows (one :func:`bank_groups` group) as one :class:`FlowBank` and
    write their weights back; the options and the returned history are those of
    :func:`deepscm.training.train` on the mechanisms' default terms (``values[name]`` ``(n, 1)``,
    ``contexts[name]`` ``(n, c_name)``, rows indexing both). Mini-batches are drawn from
    ``generator`` as ``train`` draws them.

    ``compile``: ``True`` compiles the log-density with ``torch.compile`` (full mini-batches;
    the ragged last one runs eagerly), ``False`` never, ``"auto"`` when the fit runs at least
    :data:`COMPILE_MIN_STEPS` full steps for sure and ``batch_size ≤`` :data:`COMPILE_MAX_BATCH`.
    """
    check_options(epochs, batch_size, lr)
    if compile not in (True, False, "auto"):
        raise ConfigError(f"compile must be True, False or 'auto', got {compile!r}")
    names = list(mechanisms)
    mechs = [mechanisms[n] for n in names]
    dp = distributed.current()  # data-parallel: rank 0's start, shares of each batch (as train())
    if dp is not None:
        dp.broadcast(mechs)
    full = FlowBank(mechs)
    history = TrainingHistory(train_loss={n: [] for n in names}, val_loss={n: [] for n in names})
    n_nodes, width = len(names), max(full.widths)
    ref = full.w_in
    x = torch.stack([values[n].reshape(-1).to(ref) for n in names])  # [N, rows]
    ctx = torch.zeros(n_nodes, x.shape[1], width, dtype=ref.dtype, device=ref.device)
    for i, n in enumerate(names):
        ctx[i, :, : full.widths[i]] = contexts[n]
    sure_steps = (len(train_rows) // batch_size) * (min(epochs, patience + 1) if val_rows is not None else epochs)
    compiled = compile is True or (
        compile == "auto" and sure_steps >= COMPILE_MIN_STEPS and batch_size <= COMPILE_MAX_BATCH
    )
    # the nodes still training (positions in ``full``): eager banks drop a node once it stops
    # (its best weights are kept in ``best_state``); a compiled bank keeps its shapes and masks
    bank, live = full, torch.arange(n_nodes, device=ref.device)
    if compiled and ref.device.type == "cpu":
        bank_grad.cpu_tanh()  # the kernel is chosen by timing it: before tracing, not in it
    nll = torch.compile(full.nll, dynamic=False) if compiled else None
    params = list(full.parameters())
    optimiser = _MaskedAdam(params, lr, weight_decay, max_grad_norm)
    active = torch.ones(n_nodes, dtype=torch.bool, device=ref.device)
    schedule = Plateau(patience, min_delta, lr_decay, {i: m.patience_factor for i, m in enumerate(mechs)})
    best_state = [p.detach().clone() for p in params]
    rates = torch.ones(n_nodes, device=ref.device)  # × lr, per node
    start: list[float] | None = None
    val_start: list[float | None] = [None] * n_nodes
    validate = val_rows is not None and len(val_rows) > 0
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        running = live[active[live]].tolist()
        weight = active[live].to(ref.dtype)
        order = train_rows[torch.randperm(len(train_rows), generator=generator, device=generator.device)]
        sums = torch.zeros(len(live), dtype=torch.float64, device=ref.device)
        seen = 0
        for first in range(0, len(order), batch_size):
            rows = order[first : first + batch_size]
            full_batch = len(rows) == batch_size
            share = 1.0
            if dp is not None:
                shared = dp.share(rows)
                if shared is None:
                    continue
                rows, share = shared
            if compiled and full_batch and dp is None:
                loss = nll(ctx[:, rows], x[:, rows])
                grads = list(torch.autograd.grad((loss * weight).sum(), params))
            else:  # the gradient derived by hand: the same numbers, half the operations
                loss, grads = nll_and_grads(bank, ctx[:, rows], x[:, rows], weight)
            if dp is not None:
                grads = dp.reduce_tensors(grads, share)
            optimiser.step(grads)
            loss = loss.detach()
            if start is None:
                start = loss.tolist()
            sums += loss.double() * len(rows)
            seen += len(rows)
        if dp is not None:
            *totals, seen = dp.all_sum(sums.tolist() + [seen], ref.device)
            sums = torch.tensor(totals, dtype=torch.float64, device=ref.device)
        if not seen:
            raise ConfigError("an epoch had no training rows: give more rows or a smaller batch_size")
        means = dict(zip(live.tolist(), (sums / seen).tolist()))
        finite = dict(zip(live.tolist(), torch.stack(
            [torch.isfinite(p.detach()).flatten(1).all(1) for p in params]).all(0).tolist()))
        for i in running:
            history.train_loss[names[i]].append(means[i])
            _check_finite(names[i], means[i], epoch, "training")
            _check_diverged(names[i], means[i], start[i], epoch, "training")
            if not finite[i]:
                raise TrainingError(
                    f"a weight of {names[i]!r} became non-finite at epoch {epoch + 1}: training "
                    f"diverged. {_advice()}"
                )
        history.epochs_run = epoch + 1
        if not validate:
            continue
        scores = dict(zip(live.tolist(), _score(bank, ctx, x, val_rows, dp)))
        improved = []
        for i in running:
            value = scores[i]
            _check_finite(names[i], value, epoch, "held-out")
            if val_start[i] is None:
                val_start[i] = value
            _check_diverged(names[i], value, val_start[i], epoch, "held-out")
            history.val_loss[names[i]].append(value)
            outcome = schedule.update(i, value)
            if outcome == "improved":
                history.best_epoch[names[i]] = epoch
                improved.append(i)
            elif outcome == "stopped":
                active[i] = False
            elif outcome == "decayed":
                rates[i] = schedule.rate(i)
        if improved:
            local = torch.searchsorted(live, torch.tensor(improved, device=ref.device))
            for p, b in zip(params, best_state):
                b.index_copy_(0, live[local], p.detach().index_select(0, local))
        bar.set_postfix(val=f"{sum(schedule.best.values()):.3f}", active=int(active.sum()))
        if not bool(active.any()):
            break
        if len(running) != int(active.sum()) and not compiled:
            keep = torch.nonzero(active[live]).flatten()
            bank, live = bank.select(keep), live[keep]
            params = list(bank.parameters())
            optimiser = optimiser.select(params, keep)
            ctx, x = ctx[keep], x[keep]
        optimiser.scale(rates[live] * active[live])
    bar.close()
    with torch.no_grad():
        for p, b, q in zip(full.parameters(), best_state, params):
            if validate:
                p.copy_(b)
            else:  # no early stopping: nothing was dropped, the last weights are the result
                p.copy_(q)
    full.write_back(mechs)
    for mech in mechs:
        mech.eval()
    return history


def _score(bank: FlowBank, ctx: torch.Tensor, x: torch.Tensor, rows: torch.Tensor,
           dp: distributed.DataParallel | None = None, chunk: int = 4096) -> list[float]:
    """Every node's mean held-out negative log-likelihood, in chunks, without gradients (the
    score of :func:`deepscm.training.evaluate`, by the hand-written forward pass of
    :mod:`deepscm.bank_grad`, which keeps what a backward pass would need until a chunk is
    done; hence the smaller chunks); data-parallel, each process scores its shard and every
    process gets the same mean."""
    local = rows if dp is None else rows[dp.rank :: dp.world_size]
    total = torch.zeros(bank.nodes, dtype=torch.float64, device=x.device)
    with torch.no_grad():
        for first in range(0, len(local), chunk):
            part = local[first : first + chunk]
            total += bank_grad.nll(bank, ctx[:, part], x[:, part]).double() * len(part)
    if dp is not None:
        total = torch.tensor(dp.all_sum(total.tolist(), x.device), dtype=torch.float64)
    return (total / len(rows)).tolist()

