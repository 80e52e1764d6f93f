"""The residual kernel density (deepscm.mechanisms.residual_density) against its formula."""

import math

import torch

from deepscm.mechanisms.residual_density import DEFENSIVE_WEIGHT, ResidualDensity


def _reference(density: ResidualDensity, u: torch.Tensor) -> torch.Tensor:
    """``log[(1 − w) (1/m) Σ_j N(u − r_j; 0, h²) + w N(u; 0, s²)]`` summed over columns, in
    float64 with ``torch.logsumexp`` (no floor on small kernel terms)."""
    r, h, s = (t.double() for t in (density.residuals, density.bandwidth, density.spread))
    u = u.double()
    z = (u[:, None, :] - r[None]) / h
    kde = torch.logsumexp(-0.5 * z**2, dim=1) - h.log() - 0.5 * math.log(2 * math.pi) - math.log(len(r))
    wide = -0.5 * (u / s) ** 2 - s.log() - 0.5 * math.log(2 * math.pi)
    return torch.logaddexp(kde + math.log(1 - DEFENSIVE_WEIGHT), wide + math.log(DEFENSIVE_WEIGHT)).sum(-1)


def test_log_prob_equals_the_mixture_formula_in_the_bulk_and_far_tails():
    """Skewed two-column residuals; points in the bulk, between residual clusters and 40
    spreads out (where most kernel terms lie below the floor of e^-80 of the largest):
    equal to the float64 formula within 2e-5 relative."""
    g = torch.Generator().manual_seed(0)
    residual = torch.cat([torch.randn(3000, 2, generator=g) ** 3, 8 + torch.randn(200, 2, generator=g)])
    density = ResidualDensity(2, max_residuals=2000)
    density.fit(residual)
    u = torch.cat([torch.randn(500, 2, generator=g), torch.full((5, 2), 4.0), torch.linspace(-40, 40, 9)[:, None].repeat(1, 2)])
    got, want = density.log_prob(u).double(), _reference(density, u)
    torch.testing.assert_close(got, want, rtol=2e-5, atol=1e-5)


def test_density_integrates_to_one():
    """A 1-D density on a fine grid: the Riemann sum of exp(log_prob) is 1 within 1e-3."""
    g = torch.Generator().manual_seed(1)
    density = ResidualDensity(1, max_residuals=2000)
    density.fit(torch.randn(4000, 1, generator=g).exp())
    grid = torch.linspace(-40, 60, 200_001)[:, None]
    mass = float(density.log_prob(grid).exp().sum() * (grid[1, 0] - grid[0, 0]))
    assert abs(mass - 1) < 1e-3


def test_gradient_with_respect_to_the_residual_is_that_of_the_formula():
    """log_prob stays differentiable in ``u`` (e.g. for a gradient of the model's likelihood):
    its gradient equals the float64 formula's within 1e-4."""
    g = torch.Generator().manual_seed(2)
    density = ResidualDensity(1, max_residuals=500)
    density.fit(torch.randn(500, 1, generator=g))
    u = torch.linspace(-6, 6, 49)[:, None].requires_grad_()
    (grad,) = torch.autograd.grad(density.log_prob(u).sum(), u)
    u64 = u.detach().double().requires_grad_()
    (want,) = torch.autograd.grad(_reference(density, u64).sum(), u64)
    torch.testing.assert_close(grad.double(), want, rtol=1e-4, atol=1e-4)
