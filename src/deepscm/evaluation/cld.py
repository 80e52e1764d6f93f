"""Counterfactual latent divergence (CLD): minimality of image counterfactuals (Sanchez &
Tsaftaris 2022, §"Counterfactual Latent Divergence"; Melistas et al. 2024).

An image is embedded by the encoder of a separately trained VAE as ``N(μ(x), diag σ(x)²)``.
The divergence of a counterfactual ``x_CF`` from its factual ``x_F`` is

.. math::

    div = D(x_{CF}, x_F), \\qquad D(x_i, x_j) = KL(N(μ_i, σ_i^2) \\,\\|\\, N(μ_j, σ_j^2)),

and it is compared with the divergences of real images from ``x_F``: ``S_CF = {D(x, x_F) :
y(x) = y_CF}`` (images of the target class) and ``S_F = {D(x, x_F) : y(x) = y_F}`` (images of the
factual class). With ``P`` the empirical fraction over a set,

.. math::

    CLD = \\log\\big(w_{CF}\\, e^{P(S_{CF} \\le div)} + w_F\\, e^{P(S_F \\ge div)}\\big).

Lower is better: the counterfactual should be closer to ``x_F`` than target-class images are
(``P(S_CF ≤ div)`` small) but no closer than images of its own class (``P(S_F ≥ div)`` small).
The two ends are known exactly: an unchanged image (``div = 0``) scores
``log(w_CF + w_F·e)``, and one farther from ``x_F`` than every reference image scores
``log(w_CF·e + w_F)``; the best possible score is ``log(w_CF + w_F)`` (0 when the weights sum
to 1). The seed formula has ``w_CF = w_F = 1`` (the default); the Melistas et al. benchmark code
uses ``(0.8, 0.2)``. (Their ``kl_divergence`` reads the location for the log-scale too; here
both moments come from the encoder, as the definition says.) For a continuous parent, pass
labels that bin it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError

__all__ = [
    "ImageEmbedding",
    "cld_score",
    "counterfactual_latent_divergence",
    "fit_image_embedding",
    "latent_kl",
]

#: rows of the reference set compared at once (bounds memory: chunk × rows × latent width).
_CHUNK = 256


def latent_kl(mean_a: np.ndarray, std_a: np.ndarray, mean_b: np.ndarray, std_b: np.ndarray) -> np.ndarray:
    """``KL(N(mean_a, std_a²) ‖ N(mean_b, std_b²))`` summed over the last axis (broadcasting)."""
    return (np.log(std_b / std_a) + (std_a**2 + (mean_a - mean_b) ** 2) / (2 * std_b**2) - 0.5).sum(-1)


def cld_score(
    div: np.ndarray, s_cf: Sequence[np.ndarray], s_f: Sequence[np.ndarray],
    weights: tuple[float, float] = (1.0, 1.0),
) -> np.ndarray:
    """Per unit ``log(w_CF·exp(P(S_CF ≤ div)) + w_F·exp(P(S_F ≥ div)))`` (module docstring)."""
    w_cf, w_f = _weights(weights)
    out = np.empty(len(div))
    for k, (d, a, b) in enumerate(zip(div, s_cf, s_f)):
        if len(a) == 0 or len(b) == 0:
            raise DataError("CLD needs reference images of both the factual and the target class")
        out[k] = np.log(w_cf * np.exp(np.mean(a <= d)) + w_f * np.exp(np.mean(b >= d)))
    return out


@dataclass
class ImageEmbedding:
    """An image encoder ``images (n, H, W) or (n, C, H, W) → (μ, σ)``, each ``(n, k)``."""

    encode: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]

    def __call__(self, images: np.ndarray | pd.Series) -> tuple[np.ndarray, np.ndarray]:
        from ..variables import stack_images

        arr = stack_images(images, "images") if isinstance(images, pd.Series) else np.asarray(images)
        mean, std = self.encode(arr)
        return np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)


def fit_image_embedding(
    images: np.ndarray | pd.Series, latent_dim: int = 16, epochs: int = 20, seed: int = 0,
    channels: tuple[int, ...] = (16, 32), hidden: tuple[int, ...] = (128,),
    device: str = "auto", progress: bool = False,
) -> ImageEmbedding:
    """Fit an unconditional VAE (:class:`~deepscm.mechanisms.ConditionalVAE`, no parents) on
    ``images`` and return its encoder ``q(z | x) = N(μ, σ²)`` as an :class:`ImageEmbedding`."""
    import torch

    from ..mechanisms import ConditionalVAE
    from ..scm import DeepSCM

    cells = np.empty(len(images), dtype=object)
    cells[:] = list(images)
    vae = ConditionalVAE(latent_dim=latent_dim, channels=channels, hidden=hidden)
    scm = DeepSCM("x", mechanisms={"x": vae}, variables={"x": "image"})
    scm.fit(pd.DataFrame({"x": cells}), epochs=epochs, batch_size=128, lr=1e-3, seed=seed,
            device=device, progress=progress)
    mech, var = scm.mechanisms["x"], scm.schema["x"]

    def encode(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        frame = pd.DataFrame({"x": list(arr.astype(np.float32))})
        with torch.no_grad():
            x = var.encode(frame, scm.device)
            mean, std = mech.encode(x, torch.zeros(len(x), 0, device=scm.device))
        return mean.cpu().numpy(), std.cpu().numpy()

    return ImageEmbedding(encode)


def counterfactual_latent_divergence(
    embed: ImageEmbedding | Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    factual: np.ndarray, counterfactual: np.ndarray, factual_labels: Sequence, target_labels: Sequence,
    reference: np.ndarray, reference_labels: Sequence, weights: tuple[float, float] = (1.0, 1.0),
) -> pd.DataFrame:
    """CLD per unit (module docstring), as a DataFrame with columns ``divergence``,
    ``p_cf`` (``P(S_CF ≤ div)``), ``p_f`` (``P(S_F ≥ div)``) and ``cld``; the mean CLD is in
    ``.attrs["cld"]``.

    Args:
        embed: the VAE encoder (e.g. from :func:`fit_image_embedding`).
        factual, counterfactual: images, ``(n, H, W)`` or ``(n, C, H, W)``, row-aligned.
        factual_labels, target_labels: ``y_F`` and ``y_CF`` per unit.
        reference: real images whose divergences from ``x_F`` form ``S_CF`` and ``S_F``.
        reference_labels: their labels.
        weights: ``(w_CF, w_F)``; ``(1, 1)`` is the seed formula, ``(0.8, 0.2)`` Melistas et al.
    """
    factual, counterfactual = np.asarray(factual), np.asarray(counterfactual)
    y_f, y_cf, y_ref = (np.asarray(v) for v in (factual_labels, target_labels, reference_labels))
    if factual.shape != counterfactual.shape or not len(y_f) == len(y_cf) == len(factual):
        raise DataError("factual, counterfactual, factual_labels and target_labels must have one "
                        f"row per unit; got {factual.shape}, {counterfactual.shape}, {len(y_f)}, {len(y_cf)}")
    if len(reference) != len(y_ref):
        raise DataError(f"reference has {len(reference)} images but {len(y_ref)} labels")
    _weights(weights)
    mf, sf = embed(factual)
    mc, sc = embed(counterfactual)
    mr, sr = embed(np.asarray(reference))
    div = latent_kl(mc, sc, mf, sf)
    s_cf, s_f = [], []
    for lo in range(0, len(factual), _CHUNK):
        sl = slice(lo, lo + _CHUNK)
        d = latent_kl(mr[None], sr[None], mf[sl, None], sf[sl, None])  # (chunk, n_ref)
        for k, row in enumerate(d):
            unit = lo + k
            s_cf.append(row[y_ref == y_cf[unit]])
            s_f.append(row[y_ref == y_f[unit]])
    score = cld_score(div, s_cf, s_f, weights)
    out = pd.DataFrame({
        "divergence": div,
        "p_cf": [float(np.mean(a <= d)) for a, d in zip(s_cf, div)],
        "p_f": [float(np.mean(b >= d)) for b, d in zip(s_f, div)],
        "cld": score,
    })
    out.attrs["cld"] = float(score.mean())
    return out


def _weights(weights: tuple[float, float]) -> tuple[float, float]:
    try:
        w_cf, w_f = (float(w) for w in weights)
    except (TypeError, ValueError):
        raise ConfigError(f"weights must be two numbers (w_CF, w_F), got {weights!r}") from None
    if not (w_cf > 0 and w_f > 0):
        raise ConfigError(f"CLD weights must be positive, got {weights!r}")
    return w_cf, w_f
