"""The flow bank's hand-derived gradient (deepscm.bank_grad) against autograd."""

import pytest
import torch

from deepscm.bank import FlowBank
from deepscm import bank_grad
from deepscm.bank_grad import nll_and_grads
from deepscm.mechanisms import ConditionalFlow
from deepscm.mechanisms.base import MechanismSpec

HPARAMS = [dict(hidden_features=(16, 16), bins=6), dict(transforms=2, bins=4, hidden_features=(8, 8, 8)),
           dict(hidden_features=(), bins=4), dict(flow="maf", hidden_features=(8,)), dict()]


def _bank(hparams, widths=(1, 3, 2), seed=0):
    """A bank of random (not linear-start) flows whose spline parameters are far from zero,
    so that bins, both bounds and the soft clips are all exercised."""
    torch.manual_seed(seed)
    mechs = []
    for c in widths:
        mech = ConditionalFlow(**hparams)
        mech.build(MechanismSpec(1, c))
        mechs.append(mech.double())
    bank = FlowBank(mechs)
    with torch.no_grad():
        for p in bank.parameters():
            p.add_(torch.randn_like(p), alpha=0.5)
        for i, c in enumerate(bank.widths):
            bank.w_in[i, c:] = 0  # padding rows stay zero, as in training
    return bank


@pytest.mark.parametrize("hparams", HPARAMS, ids=lambda h: ",".join(f"{k}={v}" for k, v in h.items()) or "default")
def test_gradient_equals_autograd(hparams):
    """The NLL and every parameter's gradient equal FlowBank.nll's and autograd's to 1e-10
    (float64, relative to the gradient's scale), with values inside and outside the splines'
    bound [-5, 5], node weights 1, 0 and 0.5, and padded contexts."""
    bank = _bank(hparams)
    g = torch.Generator().manual_seed(1)
    ctx = torch.randn(3, 300, 3, generator=g, dtype=torch.float64)
    for i, c in enumerate(bank.widths):
        ctx[i, :, c:] = 0
    x = 4 * torch.randn(3, 300, generator=g, dtype=torch.float64)
    weight = torch.tensor([1.0, 0.0, 0.5], dtype=torch.float64)
    params = list(bank.parameters())
    reference = bank.nll(ctx, x)
    expected = torch.autograd.grad((reference * weight).sum(), params)
    nll, grads = nll_and_grads(bank, ctx, x, weight)
    torch.testing.assert_close(nll, reference.detach(), rtol=0, atol=1e-10)
    torch.testing.assert_close(bank_grad.nll(bank, ctx, x), reference.detach(), rtol=0, atol=1e-10)  # the score's forward pass
    assert len(grads) == len(expected)
    for got, want in zip(grads, expected):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10 * (1 + want.abs().max().item()))
    assert all(grad[1].abs().max() == 0 for grad in grads)  # weight 0: no gradient for node 1


def test_tanh_matches_torch_tanh_whichever_kernel_is_chosen():
    """The bank's tanh (the faster of torch.tanh and 2σ(2x) − 1 on this machine) and the
    sigmoid form itself are within 2e-7 of torch.tanh in float32, tails included."""
    x = torch.cat([torch.linspace(-20, 20, 4001), torch.randn(10_000, generator=torch.Generator().manual_seed(0))])
    torch.testing.assert_close(bank_grad.tanh(x), torch.tanh(x), rtol=0, atol=2e-7)
    torch.testing.assert_close(bank_grad.tanh_by_sigmoid(x), torch.tanh(x), rtol=0, atol=2e-7)
    assert bank_grad.cpu_tanh() in (torch.tanh, bank_grad.tanh_by_sigmoid)
