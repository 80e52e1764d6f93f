"""A tiny digit-class counterfactual study (issue 12, item 4; ``benchmarks/digit_class.py`` at size).

Morpho-digits on 12×12 images of two digits (1 and 5), the digit a categorical parent of the
image, a tiny conditional DDIM and anti-causal classifier:

- Diff-SCM guidance toward ``digit := 5`` raises the probability that an independent classifier
  of clean images gives 5 to the counterfactuals, the more the larger the scale;
- with ``s = 0``, full inversion and the factual digit (nothing changed) the counterfactual is
  the factual image within the image round-trip tolerance;
- the digit labels are the base digits' scikit-learn labels.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from deepscm.datasets.morpho import MorphoDigits, load_digit_images
from deepscm.errors import DataError
from deepscm.guidance import fit_anticausal_predictor, guided_counterfactual_sweep, guided_counterfactuals
from deepscm.studies.digit_class import (
    DigitClassSettings, digit_frame, digit_labels, evaluate_digit_counterfactuals, fit_digit_scm,
    train_digit_classifier,
)
from deepscm.variables import stack_images

SCALES = (0.0, 0.7, 2.0, 8.0)


@pytest.fixture(scope="module")
def study():
    truth = MorphoDigits(load_digit_images(size=12))
    labels = load_digits().target
    train_scm, test_scm = truth.train_test(truth.images, test_fraction=0.2, seed=0)
    keep = lambda scm: scm.subset([k for k in scm.digits if labels[k] in (1, 5)])  # noqa: E731
    train, test = digit_frame(keep(train_scm), 500, 0), digit_frame(keep(test_scm), 120, 1)
    s = DigitClassSettings(size=12, epochs=4, batch_size=50, unet=(4, 8), inference_steps=10, refine=4,
                           device="cpu")
    scm = fit_digit_scm(train, s)
    predictor = fit_anticausal_predictor(scm, train, "digit", epochs=6, batch_size=50, channels=(8, 16), lr=5e-3)
    judge = train_digit_classifier(stack_images(train["x"], "x"), train["digit"].to_numpy(), epochs=10, batch_size=50)
    return scm, predictor, judge, test


def test_digit_labels_are_the_base_digits_labels():
    truth = MorphoDigits(load_digit_images(size=12))
    data, noise = truth.sample(50, seed=3, return_noise=True)
    np.testing.assert_array_equal(digit_labels(noise), load_digits().target[noise["x"].to_numpy()])
    with pytest.raises(DataError, match="scikit-learn digits"):
        digit_labels(noise.assign(x=noise["x"] + 10_000))


def test_guidance_toward_five_raises_the_clean_classifiers_probability_of_five(study):
    scm, predictor, judge, test = study
    test_images = stack_images(test["x"], "x")
    assert (judge.probabilities(test_images).argmax(1) == test["digit"].to_numpy()).mean() > 0.9
    units = test[test["digit"] == 1].head(24)
    factual = stack_images(units["x"], "x")
    sweep = guided_counterfactual_sweep(scm, units, {"digit": 5}, predictor, SCALES, fraction=0.75)
    assert list(sweep) == list(SCALES) and (sweep[2.0]["digit"] == 5).all()
    scores = [evaluate_digit_counterfactuals(factual, stack_images(sweep[s]["x"], "x"),
                                             units["digit"].to_numpy(), 5, judge) for s in SCALES]
    p5 = [m["p(target) mean"] for m in scores]
    assert np.all(np.diff(p5) > 0), p5
    assert p5[-1] > p5[0] + 0.3, p5
    assert scores[-1]["effectiveness"] > scores[0]["effectiveness"]
    # the one-scale function is the sweep at that scale
    one = guided_counterfactuals(scm, units, {"digit": 5}, predictor, 2.0, fraction=0.75)
    np.testing.assert_array_equal(stack_images(one["x"], "x"), stack_images(sweep[2.0]["x"], "x"))


def test_no_guidance_full_inversion_and_the_factual_digit_give_back_the_factual(study):
    scm, predictor, _, test = study
    units = test.head(16)
    same = guided_counterfactuals(scm, units, {"digit": units["digit"].to_numpy()}, predictor, 0.0, fraction=1.0)
    var, mech = scm.schema["x"], scm.mechanisms["x"]
    error = np.abs(stack_images(same["x"], "x") - stack_images(units["x"], "x")) / var.scale[0]
    assert 0 < error.max() <= mech.abduction_tolerance == mech.image_abduction_tolerance, error.max()
