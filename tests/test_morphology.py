"""Tests of the Morpho-MNIST stroke operations (deepscm.datasets.morphology)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from deepscm.datasets.morpho import load_digit_images
from deepscm.datasets.morphology import (
    StrokeMorphology,
    measure_intensity,
    measure_intensity_batch,
    measure_thickness,
    measure_thickness_batch,
    set_intensity,
    set_intensity_batch,
    set_thickness,
    upscale,
)
from deepscm.errors import DataError

DIGITS = load_digit_images()[:20]


def _ring(width: float, radius: float = 8.0, size: int = 28, value: float = 255.0) -> np.ndarray:
    """Anti-aliased annulus of stroke ``width`` px (16x16 supersampling per pixel)."""
    sub = 16
    c = (np.arange(size * sub) + 0.5) / sub - size / 2
    r = np.hypot(*np.meshgrid(c, c, indexing="ij"))
    inside = np.abs(r - radius) <= width / 2
    return value * inside.reshape(size, sub, size, sub).mean(axis=(1, 3))


def _bar(width: float, size: int = 28) -> np.ndarray:
    """Anti-aliased vertical bar of ``width`` px, 16 px long, centred."""
    img = np.zeros((size, size))
    lo, hi = size / 2 - width / 2, size / 2 + width / 2
    cols = np.arange(size)
    img[6:22] = np.clip(np.minimum(cols + 1, hi) - np.maximum(cols, lo), 0, 1)
    return 255.0 * img


@pytest.mark.parametrize("width", [1.5, 2.0, 3.0, 4.5])
def test_thickness_of_a_ring(width):
    # analytic width; a measure off by half a high-res pixel reads 0.25 px off
    assert measure_thickness(_ring(width)) == pytest.approx(width, abs=0.1)


@pytest.mark.parametrize("width", [2.0, 3.0, 4.5])
def test_thickness_of_a_bar(width):
    # (a 1.5 px bar reads 2.0: its two pixels are equally grey, so half-maximum binarisation
    # cannot tell it from a 2 px bar)
    assert measure_thickness(_bar(width)) == pytest.approx(width, abs=0.1)


def test_thickness_is_invariant_to_intensity_and_batch_matches():
    ring = _ring(3.0)
    assert measure_thickness(0.3 * ring) == pytest.approx(measure_thickness(ring), abs=1e-9)
    batch = measure_thickness_batch(DIGITS[:4])
    assert batch == pytest.approx([measure_thickness(d) for d in DIGITS[:4]])


def test_upscale_is_scipy_cubic_zoom():
    img = DIGITS[0].astype(np.float64)
    ref = ndi.zoom(img, 4, order=3, grid_mode=True, mode="grid-constant")
    np.testing.assert_allclose(upscale(img), ref, atol=1e-9)


@pytest.mark.parametrize("target", [1.5, 2.0, 2.5, 3.0, 3.5, 4.0])
def test_set_thickness_hits_target(target):
    # achieved over these 20 digits: max error 0.23 px, mean <= 0.05 px
    measured = np.array([measure_thickness(set_thickness(d, target)) for d in DIGITS])
    err = np.abs(measured - target)
    assert err.max() <= 0.25
    assert err.mean() <= 0.06


@pytest.mark.parametrize("target", [4.5, 5.0])
def test_set_thickness_thick_targets_on_average(target):
    # thick strokes fill small loops, so single digits miss by up to 0.71 px; mean <= 0.08 px
    measured = np.array([measure_thickness(set_thickness(d, target)) for d in DIGITS])
    assert np.abs(measured - target).mean() <= 0.1


def test_thicker_means_more_ink_and_keeps_peak_and_format():
    d = DIGITS[3]
    imgs = [set_thickness(d, t) for t in (1.5, 2.5, 4.0)]
    ink = [img.sum() for img in imgs]
    assert ink[0] < ink[1] < ink[2]
    for img in imgs:
        assert img.dtype == np.float32 and img.shape == (28, 28)
        assert img.min() >= 0 and img.max() <= 255
        assert img.max() == pytest.approx(d.max())


def test_thinning_keeps_every_stroke_connected():
    d = DIGITS[0]  # a zero: one ring
    thin = set_thickness(d, 1.0)
    labels = ndi.label(thin > 0.25 * thin.max())[1]
    assert labels == ndi.label(d > 0.25 * d.max())[1]


@pytest.mark.parametrize("target", [64.0, 100.0, 160.0, 255.0])
def test_set_intensity_hits_median(target):
    out = set_intensity(set_thickness(DIGITS[5], 2.5), target)
    assert out.dtype == np.float32 and out.shape == (28, 28)
    assert 0 <= out.min() and out.max() <= 255
    assert measure_intensity(out) == pytest.approx(target, abs=1e-3)
    # the stroke median, not the mean or the max
    stroke = out[out >= 0.5 * out.max()]
    assert np.median(stroke) == pytest.approx(target, abs=1e-3)


def test_set_intensity_batch_and_measure_batch():
    out = set_intensity_batch(DIGITS[:3], np.array([80.0, 160.0, 255.0]))
    np.testing.assert_allclose(measure_intensity_batch(out), [80, 160, 255], atol=1e-3)


def test_stroke_morphology_curve_is_increasing_and_inverted():
    s = StrokeMorphology(DIGITS[7])
    grid, measured = s.curve
    assert np.all(np.diff(measured) > 0)
    np.testing.assert_allclose(s.nominal(measured), grid, atol=1e-6)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: measure_thickness(np.zeros((28, 28))), "blank"),
        (lambda: measure_thickness(np.full((28, 28), np.nan)), "NaN"),
        (lambda: measure_thickness(np.ones((2, 28, 28))), "2-D"),
        (lambda: measure_intensity(-np.ones((28, 28))), "negative"),
        (lambda: set_thickness(DIGITS[0], 0.0), "thickness"),
        (lambda: set_thickness(DIGITS[0], np.inf), "thickness"),
        (lambda: set_intensity(DIGITS[0], 300.0), "intensity"),
        (lambda: set_intensity_batch(DIGITS[:2], [10.0, 20.0, 30.0]), None),
        (lambda: measure_thickness_batch(np.ones((28, 28))), "n, height, width"),
    ],
)
def test_bad_inputs_raise_data_error(call, match):
    with pytest.raises((DataError, ValueError), match=match):
        call()
