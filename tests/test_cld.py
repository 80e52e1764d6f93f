"""Counterfactual latent divergence (``deepscm.evaluation.cld``; issue 12, items 2 and 5).

- the latent KL is the closed form and is exactly 0 for identical images;
- CLD takes its known values: ``log(w_CF + w_F·e)`` for an unchanged image, the minimum
  ``log(w_CF + w_F)`` for a change between the factual class and the target class, and
  ``log(w_CF·e + w_F)`` past every reference image; the divergence grows with the change;
- an embedding from a fitted VAE gives finite moments of the right shape.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepscm.errors import ConfigError, DataError
from deepscm.evaluation.cld import (
    ImageEmbedding, cld_score, counterfactual_latent_divergence, fit_image_embedding, latent_kl,
)


def toy_embedding(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """μ = the mean pixel, σ = 1: the latent KL of two images is (Δ mean pixel)² / 2."""
    flat = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    return flat.mean(1, keepdims=True), np.ones((len(images), 1))


def reference_set():
    """Class 0 images have mean pixel in [0, 1], class 1 in [10, 11] (8×8)."""
    rng = np.random.default_rng(0)
    levels = np.concatenate([rng.uniform(0, 1, 50), rng.uniform(10, 11, 50)])
    images = levels[:, None, None] * np.ones((1, 8, 8))
    return images, np.repeat([0, 1], 50)


def test_latent_kl_is_the_gaussian_closed_form():
    ma, sa, mb, sb = np.array([[0.3, -1.0]]), np.array([[0.5, 2.0]]), np.array([[1.0, 0.0]]), np.array([[1.5, 1.0]])
    expected = sum(math.log(b / a) + (a * a + (m - n) ** 2) / (2 * b * b) - 0.5
                   for m, a, n, b in zip(ma[0], sa[0], mb[0], sb[0]))
    np.testing.assert_allclose(latent_kl(ma, sa, mb, sb), [expected], rtol=1e-12)
    np.testing.assert_array_equal(latent_kl(ma, sa, ma, sa), [0.0])


@pytest.mark.parametrize("weights", [(1.0, 1.0), (0.8, 0.2)])
def test_cld_has_its_known_values_and_the_divergence_grows_with_the_change(weights):
    w_cf, w_f = weights
    reference, labels = reference_set()
    factual = np.full((4, 8, 8), 0.5)  # a class-0 image
    # unchanged; past every class-0 image but short of class 1; well inside class 1; far past
    shifts = np.array([0.0, 3.0, 10.0, 40.0])
    cf = factual + shifts[:, None, None]
    out = counterfactual_latent_divergence(toy_embedding, factual, cf, [0] * 4, [1] * 4,
                                           reference, labels, weights=weights)
    np.testing.assert_allclose(out["divergence"], shifts**2 / 2, rtol=1e-12)
    assert out["divergence"].iloc[0] == 0.0 and np.all(np.diff(out["divergence"]) > 0)
    e = math.e
    np.testing.assert_allclose(out["cld"].iloc[0], math.log(w_cf + w_f * e), rtol=1e-12)
    np.testing.assert_allclose(out["cld"].iloc[1], math.log(w_cf + w_f), rtol=1e-12)
    np.testing.assert_allclose(out["cld"].iloc[3], math.log(w_cf * e + w_f), rtol=1e-12)
    assert out["cld"].iloc[1] < out["cld"].iloc[2] < out["cld"].iloc[3]
    assert out["cld"].iloc[1] == out["cld"].min()  # the minimal, effective change scores best
    assert out.attrs["cld"] == pytest.approx(out["cld"].mean())
    # inside the target class: P(S_CF ≤ div) is the fraction of class-1 images nearer than it
    p = np.mean((reference[labels == 1].mean((1, 2)) - 0.5) ** 2 / 2 <= 50.0)
    assert out["p_cf"].iloc[2] == pytest.approx(p) and 0 < p < 1


def test_bad_inputs_are_refused():
    reference, labels = reference_set()
    with pytest.raises(DataError, match="one row per unit"):
        counterfactual_latent_divergence(toy_embedding, reference[:3], reference[:2], [0] * 3, [1] * 3,
                                         reference, labels)
    with pytest.raises(ConfigError, match="positive"):
        cld_score(np.zeros(1), [np.zeros(2)], [np.zeros(2)], weights=(1.0, 0.0))
    with pytest.raises(DataError, match="both"):
        counterfactual_latent_divergence(toy_embedding, reference[:1], reference[:1], [0], [7],
                                         reference, labels)


def test_a_fitted_vae_embedding_gives_moments_per_image():
    reference, _ = reference_set()
    rng = np.random.default_rng(1)
    images = (reference + rng.normal(size=reference.shape)).astype(np.float32)
    embed = fit_image_embedding(images, latent_dim=3, epochs=2, channels=(4,), hidden=(16,), device="cpu")
    assert isinstance(embed, ImageEmbedding)
    mean, std = embed(images[:7])
    assert mean.shape == std.shape == (7, 3) and np.isfinite(mean).all() and (std > 0).all()
    again = embed(images[:7])
    np.testing.assert_array_equal(mean, again[0])  # deterministic: the encoder's moments
