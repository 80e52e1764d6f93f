"""A synthetic credit-approval SCM with a sensitive attribute and known structure.

For the de-biasing benchmarks of :mod:`deepscm.fairness` (DECAF, van Breugel et al. 2021,
evaluate on Credit Approval with injected bias; this is a fully known stand-in). Graph::

    sex -> education -> income -> credit
    sex -> income;  sex -> credit          (the direct, "unfair" edge)
    age -> education; age -> income; age -> credit;  history -> credit

Equations (``sex`` is 0/1, ``age`` and ``education`` in years, ``income`` in k$/year,
``history`` a standardised credit-history score, ``credit`` the approval, 0/1)::

    sex       ~ Bernoulli(0.5)
    age       := 40 + 10 u_age,                                  u ~ N(0, 1)
    history   := u_history,                                      u ~ N(0, 1)
    education := 12 + 1.5 sex + 0.05 (age - 40) + 2 u_edu,       u ~ N(0, 1)
    income    := 30 + 8 sex + 3 (education - 12) + 0.4 (age - 40) + 8 u_inc
    credit    ~ Bernoulli(sigmoid(-0.5 + sex + 0.06 (income - 38) + 0.02 (age - 40) + 1.2 history))

``sex`` reaches ``credit`` directly and through ``income`` (and ``education → income``), so
the data are unfair at every level: FTU removes ``sex → credit``; demographic parity removes
``sex → credit`` and ``income → credit`` (the parents descending from ``sex``), leaving
``age`` and ``history`` — independent of ``sex`` — to predict ``credit``.

Example:
    >>> data = load_credit(1000, seed=0)
    >>> sorted(data.columns)
    ['age', 'credit', 'education', 'history', 'income', 'sex']
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .base import GroundTruthSCM, additive, categorical, normal, sigmoid

__all__ = ["OUTCOME", "SENSITIVE", "approval_probability", "credit_scm", "load_credit"]

SENSITIVE = "sex"
"""The sensitive attribute of :func:`credit_scm`."""

OUTCOME = "credit"
"""The outcome of :func:`credit_scm`."""


def approval_probability(v: Mapping[str, np.ndarray]) -> np.ndarray:
    """``P(credit = 1 | sex, income, age, history)``, the outcome's true equation; with
    parents swapped for independent draws it gives the *true* de-biased data."""
    logit = -0.5 + v["sex"] + 0.06 * (v["income"] - 38.0) + 0.02 * (v["age"] - 40.0) + 1.2 * v["history"]
    return sigmoid(np.asarray(logit, dtype=np.float64))


def _approval(v: Mapping[str, np.ndarray]) -> np.ndarray:
    p = approval_probability(v)
    return np.stack([1.0 - p, p], axis=1)


def credit_scm() -> GroundTruthSCM:
    """The credit-approval SCM of the module docstring (mixed binary/continuous)."""
    return GroundTruthSCM(
        "fairness_credit",
        {
            "sex": categorical([], [0, 1], lambda v: [0.5, 0.5]),
            "age": additive([], lambda v: 40.0, normal(10.0)),
            "history": additive([], lambda v: 0.0, normal()),
            "education": additive(
                ["sex", "age"], lambda v: 12.0 + 1.5 * v["sex"] + 0.05 * (v["age"] - 40.0), normal(2.0)
            ),
            "income": additive(
                ["sex", "education", "age"],
                lambda v: 30.0 + 8.0 * v["sex"] + 3.0 * (v["education"] - 12.0) + 0.4 * (v["age"] - 40.0),
                normal(8.0),
            ),
            "credit": categorical(["sex", "income", "age", "history"], [0, 1], _approval),
        },
        family="mixed",
        description="synthetic credit approval with a sensitive attribute (deepscm, after DECAF's set-up)",
        intervention_nodes=["sex"],
    )


def load_credit(n: int = 10_000, seed: int | None = 0) -> pd.DataFrame:
    """``n`` rows from :func:`credit_scm` (``sex`` and ``credit`` as 0/1 integers).

    ``result.attrs["graph"]`` holds the true graph as an edge string."""
    scm = credit_scm()
    data = scm.sample(n, seed=seed)
    for col in (SENSITIVE, OUTCOME):
        data[col] = data[col].astype(np.int64)
    data.attrs["graph"] = scm.graph
    return data
