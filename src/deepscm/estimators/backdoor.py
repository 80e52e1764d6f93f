"""Back-door adjustment from a causal graph (Pearl 2009, "Causality", Theorem 3.3.2):
if Z satisfies the back-door criterion relative to (T, Y), then
E[Y | do(T=t)] = E_Z[ E[Y | T=t, Z] ], estimated here by AIPW or regression adjustment on Z."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from ..errors import DataError, NotFittedError, NotIdentifiableError
from ..graph import CausalGraph, GraphLike
from .aipw import AIPW
from .base import EffectEstimator, as_binary_treatment, as_matrix, as_outcome
from .meta_learners import TLearner

__all__ = ["BackdoorAdjustment"]


class BackdoorAdjustment(BaseEstimator):
    """The effect of a binary ``treatment`` on ``outcome`` by adjusting for a back-door set.

    ``adjustment=None`` takes a minimal set from :meth:`CausalGraph.adjustment_set`; a given set
    is checked with :meth:`CausalGraph.is_backdoor_set`. Either failure raises
    :class:`NotIdentifiableError`. ``fit(df)`` reads the treatment, outcome and adjustment
    columns of a DataFrame; the other methods take DataFrames holding the adjustment columns.

    Args:
        graph: the causal graph (a :class:`CausalGraph` or its string form).
        treatment, outcome: node names, which are also the DataFrame's column names.
        adjustment: the adjustment set, or ``None`` to find one.
        method: ``"aipw"`` (:class:`AIPW`, cross-fitted, doubly robust) or ``"regression"``
            (:class:`TLearner`).
        outcome_model, propensity_model, n_folds, seed: passed to the inner estimator.
    """

    def __init__(
        self,
        graph: GraphLike,
        treatment: str,
        outcome: str,
        adjustment: set[str] | None = None,
        method: str = "aipw",
        outcome_model: RegressorMixin | None = None,
        propensity_model: ClassifierMixin | None = None,
        n_folds: int = 5,
        seed: int = 0,
    ) -> None:
        self.graph = graph
        self.treatment = treatment
        self.outcome = outcome
        self.adjustment = adjustment
        self.method = method
        self.outcome_model = outcome_model
        self.propensity_model = propensity_model
        self.n_folds = n_folds
        self.seed = seed

    def _find_set(self, graph: CausalGraph) -> list[str]:
        t, y = self.treatment, self.outcome
        if self.adjustment is None:
            found = graph.adjustment_set(t, y)
            if found is None:
                raise NotIdentifiableError(
                    f"no set of observed nodes satisfies the back-door criterion for {t!r} → {y!r} "
                    "(a latent confounder or an unblockable path); consider front-door or "
                    "instrumental-variable methods (DeepIV)"
                )
            return [n for n in graph.topological_order() if n in found]
        z = set(self.adjustment)
        if not graph.is_backdoor_set(t, y, z):
            suggestion = graph.adjustment_set(t, y)
            hint = (
                f"; a valid set is {sorted(suggestion)}"
                if suggestion is not None
                else "; no back-door set exists in this graph"
            )
            raise NotIdentifiableError(
                f"{sorted(z)} does not satisfy the back-door criterion for {t!r} → {y!r} (it "
                f"contains a descendant of {t!r} or leaves a back-door path open){hint}"
            )
        return [n for n in graph.topological_order() if n in z]

    def fit(self, df: pd.DataFrame) -> BackdoorAdjustment:
        """Check the adjustment set, then fit the inner estimator on ``df``. Returns ``self``."""
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"BackdoorAdjustment.fit takes a DataFrame, got {type(df).__name__}")
        graph = self.graph if isinstance(self.graph, CausalGraph) else CausalGraph(self.graph)
        graph.check_nodes([self.treatment, self.outcome], "treatment/outcome")
        if self.method not in ("aipw", "regression"):
            raise ValueError(f"method must be 'aipw' or 'regression', got {self.method!r}")
        columns = self._find_set(graph)
        missing = [c for c in [self.treatment, self.outcome, *columns] if c not in df.columns]
        if missing:
            raise DataError(
                f"the DataFrame lacks the column(s) {missing} needed for back-door adjustment"
            )
        self.adjustment_set_ = columns
        x = self._design(df)
        t = as_binary_treatment(df[self.treatment], len(x), self.treatment)
        y = as_outcome(df[self.outcome], len(x), self.outcome)
        inner: EffectEstimator = (
            AIPW(self.outcome_model, self.propensity_model, n_folds=self.n_folds, seed=self.seed)
            if self.method == "aipw"
            else TLearner(self.outcome_model, seed=self.seed)
        )
        self.estimator_ = inner.fit_validated(x, t, y, columns or ["(intercept)"])
        return self

    def _design(self, df: pd.DataFrame) -> np.ndarray:
        """The adjustment columns; an empty set becomes one constant column (no adjustment)."""
        if not self.adjustment_set_:
            return np.ones((len(df), 1))
        return as_matrix(df[self.adjustment_set_], "the adjustment columns")

    def _inner(self) -> EffectEstimator:
        if not hasattr(self, "estimator_"):
            raise NotFittedError("this BackdoorAdjustment is not fitted yet; call fit(df) first")
        return self.estimator_

    def effect(self, df: pd.DataFrame | None = None) -> np.ndarray:
        """CATE given the adjustment variables, per row of ``df`` (``None``: the training rows)."""
        inner = self._inner()
        return inner.effect(None if df is None else self._design(df))

    def predict_outcomes(self, df: pd.DataFrame | None = None) -> pd.DataFrame:
        """``y0``, ``y1`` per row of ``df`` (index kept)."""
        inner = self._inner()
        if df is None:
            return inner.predict_outcomes()
        return inner.predict_outcomes(self._design(df)).set_axis(df.index, axis=0)

    def ate(self, df: pd.DataFrame | None = None) -> float:
        """The ATE (the inner estimator's, see :class:`AIPW` / :class:`TLearner`)."""
        inner = self._inner()
        return inner.ate(None if df is None else self._design(df))

    def att(self) -> float:
        """The effect on the treated rows of the training data."""
        return self._inner().att()

    def ate_interval(self, alpha: float = 0.05) -> tuple[float, float]:
        """The inner estimator's interval (AIPW: influence function; regression: bootstrap)."""
        return self._inner().ate_interval(alpha)
