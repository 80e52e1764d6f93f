"""A synthetic brain-imaging SCM for the demo (magnitudes loosely follow adult MRI volumetry):

- ``sex`` ~ Bernoulli(0.5), labels ``"female"`` / ``"male"`` (root);
- ``age = 20 + 70 sigmoid(0.2 + 0.9 u)`` years, in (20, 90), median about 58;
- ``brain_volume = m(age, sex) exp(0.06 u)`` ml with
  ``m = (1170 + 130 [male]) (1 - 3e-5 (age - 20)²)`` (multiplicative noise; ~900-1450 ml);
- ``ventricle_volume = exp(log 18 + 0.018 (age - 20) - 2 (brain / 1200 - 1) + s(age) u)`` ml
  with ``s(age) = 0.25 + 0.002 (age - 20)`` (log-normal, heteroscedastic; ~10-80 ml, growing
  with age and with atrophy).

Every continuous equation is invertible in its noise, so :meth:`GroundTruthSCM.abduct` is exact;
``sex`` is a categorical root, abducted as the midpoint of its noise interval.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .base import GroundTruthSCM, categorical, equation, logit, normal, sigmoid

__all__ = ["SCMS"]


def _brain_mean(v: dict[str, np.ndarray]) -> np.ndarray:
    return (1170.0 + 130.0 * v["sex"]) * (1 - 3e-5 * (v["age"] - 20) ** 2)


def _ventricle_loc(v: dict[str, np.ndarray]) -> np.ndarray:
    return np.log(18.0) + 0.018 * (v["age"] - 20) - 2.0 * (v["brain_volume"] / 1200 - 1)


def _ventricle_scale(v: dict[str, np.ndarray]) -> np.ndarray:
    return 0.25 + 0.002 * (v["age"] - 20)


def medical_brain() -> GroundTruthSCM:
    """sex, age -> brain_volume; age, brain_volume -> ventricle_volume (see the module doc)."""
    n01 = normal()
    return GroundTruthSCM(
        "medical_brain",
        {
            "sex": categorical([], ["female", "male"], lambda v: [0.5, 0.5]),
            "age": equation([], lambda v, u: 20 + 70 * sigmoid(0.2 + 0.9 * u), n01,
                            inverse=lambda v, x: (logit((x - 20) / 70) - 0.2) / 0.9),
            "brain_volume": equation(
                ["sex", "age"],
                lambda v, u: _brain_mean(v) * np.exp(0.06 * u),
                n01,
                inverse=lambda v, x: np.log(x / _brain_mean(v)) / 0.06,
            ),
            "ventricle_volume": equation(
                ["age", "brain_volume"],
                lambda v, u: np.exp(_ventricle_loc(v) + _ventricle_scale(v) * u),
                n01,
                inverse=lambda v, x: (np.log(x) - _ventricle_loc(v)) / _ventricle_scale(v),
            ),
        },
        family="mixed",
        description="Synthetic brain MRI volumes: sex, age (years), brain and ventricle volume "
        "(ml) with multiplicative noise (deepscm demo; mixed)",
    )


SCMS: dict[str, Callable[[], GroundTruthSCM]] = {"medical_brain": medical_brain}
"""Registry entries of this module: name -> builder."""
