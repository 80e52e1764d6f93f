"""Basic SCMs: the textbook example, classic structures with non-Gaussian / non-additive noise,
and a mixed continuous-categorical SCM. These complement the published sets (DCM, Causal NF,
VACA) with the structures and families those leave out (a common-cause fork, a 5-node
nonlinear chain, heavy-tailed and bounded noise, categorical nodes).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .base import (
    GroundTruthSCM,
    additive,
    categorical,
    equation,
    laplace,
    normal,
    softplus,
    student_t,
    uniform,
)

__all__ = ["SCMS"]

_SOURCE = "deepscm basic suite"


def textbook() -> GroundTruthSCM:
    """``x1 := u1 + 1, x2 := 3 x1 + u2``, ``u ~ N(0, 1)``.

    Observing ``(x1, x2) = (2, 4)`` gives ``u = (1, -2)``; under ``do(x1 = 5)``, ``x2 = 13``.
    """
    return GroundTruthSCM(
        "textbook",
        {
            "x1": additive([], lambda v: 1.0, normal()),
            "x2": additive(["x1"], lambda v: 3.0 * v["x1"], normal()),
        },
        family="linear-gaussian",
        description="Textbook 2-node SCM x1 := u1 + 1, x2 := 3 x1 + u2 (linear-gaussian)",
    )


def chain3_laplace() -> GroundTruthSCM:
    """Linear non-Gaussian chain (LiNGAM-style), unit-variance Laplace noise."""
    lap = laplace(1 / np.sqrt(2))
    return GroundTruthSCM(
        "basic_chain3_laplace",
        {
            "x1": additive([], lambda v: 0.0, lap),
            "x2": additive(["x1"], lambda v: 0.8 * v["x1"], lap),
            "x3": additive(["x2"], lambda v: -1.2 * v["x2"], lap),
        },
        family="non-gaussian",
        description=f"3-node linear chain, Laplace noise ({_SOURCE}; non-gaussian)",
    )


def chain5_student_t() -> GroundTruthSCM:
    """5-node nonlinear additive chain with heavy-tailed Student-t(4) noise."""
    t = student_t(4, 0.5)
    return GroundTruthSCM(
        "basic_chain5_student_t",
        {
            "x1": additive([], lambda v: 0.0, student_t(4)),
            "x2": additive(["x1"], lambda v: 2.0 * np.tanh(v["x1"]), t),
            "x3": additive(["x2"], lambda v: np.sin(v["x2"]) + 0.5 * v["x2"], t),
            "x4": additive(["x3"], lambda v: softplus(v["x3"]) - 1.0, t),
            "x5": additive(["x4"], lambda v: -v["x4"] + 0.5 * np.tanh(2.0 * v["x4"]), t),
        },
        family="non-gaussian",
        description=f"5-node nonlinear additive chain, Student-t(4) noise ({_SOURCE}; "
        "non-gaussian)",
    )


def fork_uniform() -> GroundTruthSCM:
    """Common-cause fork ``x2 <- x1 -> x3`` with bounded uniform noise."""
    return GroundTruthSCM(
        "basic_fork_uniform",
        {
            "x1": additive([], lambda v: 0.0, uniform(-np.sqrt(3), np.sqrt(3))),
            "x2": additive(["x1"], lambda v: np.sin(2.0 * v["x1"]), uniform(-0.5, 0.5)),
            "x3": additive(["x1"], lambda v: v["x1"] ** 2 - 1.0, uniform(-0.5, 0.5)),
        },
        family="non-gaussian",
        description=f"Common-cause fork x2 <- x1 -> x3, uniform noise ({_SOURCE}; non-gaussian)",
    )


def collider_nonadditive() -> GroundTruthSCM:
    """Collider ``x1 -> x3 <- x2`` with noise scaled by a parent: ``x3 = x1 + exp(x2/2) u3``."""
    return GroundTruthSCM(
        "basic_collider_nonadditive",
        {
            "x1": additive([], lambda v: 0.0, normal()),
            "x2": additive([], lambda v: 0.0, normal()),
            "x3": equation(
                ["x1", "x2"],
                lambda v, u: v["x1"] + np.exp(v["x2"] / 2) * u,
                normal(),
                inverse=lambda v, x: (x - v["x1"]) / np.exp(v["x2"] / 2),
            ),
        },
        family="non-additive",
        description=f"Collider with heteroscedastic noise x3 = x1 + exp(x2/2) u3 ({_SOURCE}; "
        "non-additive)",
    )


def mixed_categorical() -> GroundTruthSCM:
    """Mixed SCM: a binary root ``b``, a 3-level ``c`` with parents ``z, b``, continuous children.

    ``c`` uses the threshold mechanism on ``p(c | z, b) = softmax(0, z + b/2, 2z - 1 + b)``, so
    its noise cannot be abducted; counterfactuals that re-compute ``c`` need the true noise.
    """

    def c_probs(v: dict[str, np.ndarray]) -> np.ndarray:
        logits = np.stack(
            [np.zeros_like(v["z"]), v["z"] + 0.5 * v["b"], 2.0 * v["z"] - 1.0 + v["b"]], axis=1
        )
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    level = np.array([-1.0, 0.0, 1.5])
    return GroundTruthSCM(
        "basic_mixed_categorical",
        {
            "z": additive([], lambda v: 0.0, normal()),
            "b": categorical([], [0, 1], lambda v: [0.6, 0.4]),
            "c": categorical(["z", "b"], ["low", "mid", "high"], c_probs),
            "y": additive(
                ["z", "b", "c"],
                lambda v: 0.5 * v["z"] + v["b"] + level[v["c"].astype(int)],
                normal(0.5),
            ),
            "w": additive(
                ["y", "c"], lambda v: np.tanh(v["y"]) * (1.0 + 0.5 * v["c"]), laplace(0.3)
            ),
        },
        family="mixed",
        description=f"Binary root b, 3-level c (threshold mechanism), continuous z, y, w "
        f"({_SOURCE}; mixed)",
    )


SCMS: dict[str, Callable[[], GroundTruthSCM]] = {
    "textbook": textbook,
    "basic_chain3_laplace": chain3_laplace,
    "basic_chain5_student_t": chain5_student_t,
    "basic_fork_uniform": fork_uniform,
    "basic_collider_nonadditive": collider_nonadditive,
    "basic_mixed_categorical": mixed_categorical,
}
"""Registry entries of this module: name -> builder."""
