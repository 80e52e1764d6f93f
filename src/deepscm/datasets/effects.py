"""Data sets for treatment-effect estimation: semi-synthetic IHDP, the NHEFS cohort and LaLonde.

- :func:`load_ihdp` — the IHDP covariates (Infant Health and Development Program) with Hill's
  (2011, JCGS 20(1), "Bayesian nonparametric modeling for causal inference", §4) simulated
  response surfaces A (linear, constant effect 4) and B (exponential control surface,
  heterogeneous effect, CATT 4). Any number of replications, each with known true potential-
  outcome means, hence known individual effects.
- :func:`load_nhefs` — the NHEFS smoking-cessation cohort used in Hernán & Robins, "Causal
  Inference: What If" (2020), ch. 12–13: effect of quitting smoking (``qsmk``) on the 1971→1982
  weight change (``wt82_71``), with the book's confounders, raw or as the book's design matrix.
- :func:`load_lalonde` — LaLonde (1986) / Dehejia & Wahba (1999): the NSW job-training
  treated units against the experimental NSW controls or the observational CPS controls.

Example:
    >>> data = load_ihdp(replication=3)                        # doctest: +SKIP
    >>> train, test = data.split(test_fraction=0.1, seed=3)    # doctest: +SKIP
    >>> train.true_ate, train.ite[:3]                          # doctest: +SKIP
"""

from __future__ import annotations

import importlib

from dataclasses import dataclass, field
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError

__all__ = [
    "EffectData",
    "IHDP_CONTINUOUS",
    "IHDP_COVARIATES",
    "LALONDE_COVARIATES",
    "LALONDE_EXPERIMENTAL_ATT",
    "NHEFS_COVARIATES",
    "load_ihdp",
    "load_lalonde",
    "load_nhefs",
]

#: IHDP covariates of Hill (2011): 6 continuous, then 19 binary (``site1``–``site7`` are the
#: study sites, site 8 the reference). Mother's race is *not* a covariate: it drives selection.
IHDP_CONTINUOUS = ("bw", "b.head", "preterm", "birth.o", "nnhealth", "momage")
IHDP_COVARIATES = IHDP_CONTINUOUS + (
    "sex", "twin", "b.marr", "mom.lths", "mom.hs", "mom.scoll", "cig", "first", "booze",
    "drugs", "work.dur", "prenatal", "site1", "site2", "site3", "site4", "site5", "site6",
    "site7",
)  # fmt: skip

#: Confounders of the NHEFS analyses in "What If" (Program 12.1–13.4).
NHEFS_COVARIATES = (
    "sex", "race", "age", "education", "smokeintensity", "smokeyrs", "exercise", "active",
    "wt71",
)  # fmt: skip
_NHEFS_CATEGORICAL = {"education": (1, 2, 3, 4, 5), "exercise": (0, 1, 2), "active": (0, 1, 2)}
_NHEFS_SQUARED = ("age", "smokeintensity", "smokeyrs", "wt71")

#: Hill's coefficient distributions: (values, probabilities) per response surface.
_BETA = {
    "A": ((0.0, 1.0, 2.0, 3.0, 4.0), (0.5, 0.2, 0.15, 0.1, 0.05)),
    "B": ((0.0, 0.1, 0.2, 0.3, 0.4), (0.6, 0.1, 0.1, 0.1, 0.1)),
}
_EFFECT = 4.0  # surface A's constant effect and surface B's CATT
_OFFSET = 0.5  # surface B's offset matrix W


@dataclass(frozen=True)
class EffectData:
    """Covariates ``X``, binary treatment ``T`` and outcome ``Y`` of one effect-estimation task.

    ``mu0`` / ``mu1`` are the true conditional means of the potential outcomes
    ``E[Y(0) | x]``, ``E[Y(1) | x]`` when the data are semi-synthetic, else ``None``.
    ``treatment`` / ``outcome`` name ``T`` / ``Y`` in :meth:`to_frame`; ``meta`` holds the
    generating settings (e.g. IHDP's surface, replication and coefficients ``beta``).
    """

    name: str
    X: pd.DataFrame
    T: np.ndarray
    Y: np.ndarray
    mu0: np.ndarray | None = None
    mu1: np.ndarray | None = None
    description: str = ""
    treatment: str = "T"
    outcome: str = "Y"
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.T)

    @property
    def ite(self) -> np.ndarray | None:
        """True individual (conditional) effects ``mu1 − mu0``; ``None`` for real data."""
        if self.mu0 is None or self.mu1 is None:
            return None
        return self.mu1 - self.mu0

    @property
    def true_ate(self) -> float | None:
        """Sample average of the true individual effects (``None`` for real data)."""
        ite = self.ite
        return None if ite is None else float(np.mean(ite))

    @property
    def true_att(self) -> float | None:
        """Sample average of the true effects over the treated (Hill's CATT)."""
        ite = self.ite
        return None if ite is None else float(np.mean(ite[self.T == 1]))

    def to_frame(self) -> pd.DataFrame:
        """``X`` with the treatment and outcome appended as columns ``treatment`` / ``outcome``."""
        return self.X.assign(**{self.treatment: self.T.astype(float), self.outcome: self.Y})

    def subset(self, rows: np.ndarray, suffix: str) -> EffectData:
        """The rows ``rows`` (integer positions) as a new :class:`EffectData`."""
        rows = np.asarray(rows)
        mu0 = None if self.mu0 is None else self.mu0[rows]
        mu1 = None if self.mu1 is None else self.mu1[rows]
        return EffectData(
            f"{self.name}/{suffix}", self.X.iloc[rows].reset_index(drop=True), self.T[rows],
            self.Y[rows], mu0, mu1, self.description, self.treatment, self.outcome, dict(self.meta),
        )  # fmt: skip

    def split(self, test_fraction: float = 0.1, seed: int = 0) -> tuple[EffectData, EffectData]:
        """Random (train, test) split with ``round(test_fraction · n)`` test rows."""
        if not 0 < test_fraction < 1:
            raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
        n_test = int(round(test_fraction * len(self)))
        if not 0 < n_test < len(self):
            raise DataError(
                f"test_fraction={test_fraction} leaves {n_test} of {len(self)} rows for testing; "
                "choose a fraction that gives both parts at least one row"
            )
        rows = np.random.default_rng(seed).permutation(len(self))
        train, test = np.sort(rows[n_test:]), np.sort(rows[:n_test])
        return self.subset(train, "train"), self.subset(test, "test")


# --------------------------------------------------------------------------------------- IHDP
def _econml_sim_csv() -> Path:
    spec = find_spec("econml")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "load_ihdp needs the IHDP covariates that ship with EconML: pip install econml"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "ihdp" / "sim.csv"
    if not path.is_file():
        raise DataError(
            f"econml is installed but {path} is missing; reinstall it: "
            "pip install --force-reinstall econml"
        )
    return path


@lru_cache(maxsize=1)
def _ihdp_covariates() -> tuple[pd.DataFrame, np.ndarray]:
    """Hill's (2011, §4.1) observational IHDP subset and its 25 covariates.

    Treated children of non-white mothers are removed, leaving 747 units (139 treated,
    608 control). Continuous covariates are standardised over these 747 rows (mean, sample
    sd); binary ones are left as they are, except ``first``, recoded 1/2 as in Hill's data
    (EconML's ``sim.csv`` stores it as 0/1).
    """
    raw = pd.read_csv(_econml_sim_csv())
    keep = ~((raw["treat"] == 1) & (raw["momwhite"] == 0))
    kept = raw.loc[keep].reset_index(drop=True)
    x = kept[list(IHDP_COVARIATES)].astype(float)
    cont = list(IHDP_CONTINUOUS)
    x[cont] = (x[cont] - x[cont].mean()) / x[cont].std(ddof=1)
    x["first"] = x["first"] + 1.0
    return x, kept["treat"].to_numpy(dtype=np.int64)


def load_ihdp(replication: int = 0, surface: str = "B") -> EffectData:
    """IHDP with Hill's (2011, §4.1) simulated response surface ``surface`` for ``replication``.

    With ``Z = [1, X]`` (an intercept and the 25 covariates) and ``β`` drawn per replication:

    - **A** (linear, constant effect): ``β_j ∈ {0,1,2,3,4}`` w.p. ``(.5,.2,.15,.1,.05)``;
      ``Y(0) ~ N(Zβ, 1)``, ``Y(1) ~ N(Zβ + 4, 1)``.
    - **B** (heterogeneous): ``β_j ∈ {0,.1,.2,.3,.4}`` w.p. ``(.6,.1,.1,.1,.1)``;
      ``Y(0) ~ N(exp((Z + W)β), 1)``, ``Y(1) ~ N(Zβ − ω, 1)``, ``W`` the offset matrix 0.5 on
      every covariate (not the intercept), ``ω`` set so that the CATT (mean of
      ``mu1 − mu0`` over the 139 treated) is exactly 4.

    The observed ``Y`` is the potential outcome of the received treatment; ``mu0``/``mu1``
    are the noiseless means, so ``ite = mu1 − mu0`` is the true conditional effect that
    PEHE is computed against. ``replication`` seeds numpy's PCG64 generator: same number,
    identical data. Replication ``r`` is *not* NPCI's replication ``r`` (see ``description``).
    """
    integer = isinstance(replication, (int, np.integer)) and not isinstance(replication, bool)
    if not integer or replication < 0:
        raise DataError(f"replication must be a non-negative integer, got {replication!r}")
    if surface not in _BETA:
        raise DataError(f"surface must be 'A' or 'B' (Hill 2011), got {surface!r}")
    x, t = _ihdp_covariates()
    z = np.column_stack([np.ones(len(x)), x.to_numpy()])
    rng = np.random.default_rng(int(replication))
    values, probs = _BETA[surface]
    beta = rng.choice(values, size=z.shape[1], p=probs)
    if surface == "A":
        mu0 = z @ beta
        mu1 = mu0 + _EFFECT
    else:
        offset = np.full_like(z, _OFFSET)
        offset[:, 0] = 0.0
        mu0 = np.exp((z + offset) @ beta)
        lin = z @ beta
        omega = float(np.mean((lin - mu0)[t == 1])) - _EFFECT
        mu1 = lin - omega
    y0 = mu0 + rng.standard_normal(len(z))
    y1 = mu1 + rng.standard_normal(len(z))
    y = np.where(t == 1, y1, y0)
    return EffectData(
        name=f"ihdp_{surface}_{replication}",
        X=x.copy(),
        T=t.copy(),
        Y=y,
        mu0=mu0,
        mu1=mu1,
        description=_IHDP_DESCRIPTION,
        treatment="treat",
        outcome="y",
        meta={"surface": surface, "replication": int(replication), "beta": beta.tolist()},
    )


_IHDP_DESCRIPTION = """\
IHDP (Hill 2011, §4.1): 747 children (139 treated, 608 control) after removing treated
children of non-white mothers; 25 covariates (6 continuous, standardised; 19 binary) from
EconML's copy of the IHDP covariates (econml/data/ihdp/sim.csv); response surface simulated
by Hill's recipe with numpy's generator seeded by the replication number.
Differences from the NPCI replications (Dorie's npci package; the ihdp_npci_1-1000 files of
Johansson/Shalit) that published numbers use: (1) NPCI draws with R's generator,
set.seed(565 + 5 r), so replication r here is a different draw from the same recipe, not
NPCI's r-th data set; (2) NPCI's "setting A" is Hill's surface B (the one used by CFR, CEVAE,
Dragonnet); (3) NPCI also adds the offset W to Y(1)'s linear predictor, a constant that the
CATT calibration omega absorbs, so the surfaces are identical. Published splits are
63/27/10 (train/validation/test) over 1000 (Shalit 2017, Shi 2019) or 100 (Louizos 2017)
replications; the benchmark here uses 90/10 with validation carved from the 90."""


# -------------------------------------------------------------------------------------- NHEFS


def load_nhefs(design: str = "raw") -> EffectData:
    """NHEFS (Hernán & Robins, "What If", ch. 12–13): ``qsmk`` → ``wt82_71`` (kg).

    The 1,566 participants with a 1982 weight (``wt82`` not missing; 63 censored rows are
    dropped). Covariates are the book's confounders: sex, race, age, education (5 levels),
    smokeintensity, smokeyrs, exercise (3), active (3), wt71.

    ``design="raw"``: those 9 columns; sex and race as 0/1 floats, education, exercise and
    active as pandas ``category`` columns with integer labels, the rest float.
    ``design="book"``: the design matrix of the book's propensity model (Program 12.2):
    age, smokeintensity, smokeyrs and wt71 with their squares (``<name>_sq``), and
    treatment-coded dummies ``education_2..5``, ``exercise_1..2``, ``active_1..2``
    (references: education 1, exercise 0, active 0); every column float.
    """
    if design not in ("raw", "book"):
        raise DataError(f"design must be 'raw' or 'book', got {design!r}")
    df = _causaldata_frame("nhefs", "load_nhefs needs the NHEFS data")
    df = df.loc[df["wt82"].notna()].reset_index(drop=True)
    x = pd.DataFrame(index=df.index)
    for col in NHEFS_COVARIATES:
        values = df[col]
        if isinstance(values.dtype, pd.CategoricalDtype):  # causaldata: string-coded categories
            values = values.astype(str)
        values = values.astype(float)
        if col in _NHEFS_CATEGORICAL:
            x[col] = pd.Categorical(values.astype(int), categories=list(_NHEFS_CATEGORICAL[col]))
        else:
            x[col] = values
    if design == "book":
        x = _nhefs_book_design(x)
    return EffectData(
        name=f"nhefs_{design}",
        X=x,
        T=df["qsmk"].to_numpy(dtype=np.int64),
        Y=df["wt82_71"].to_numpy(dtype=float),
        description=(
            "NHEFS (Hernán & Robins, What If, ch. 12-13) from the causaldata package: "
            "1566 uncensored smokers, treatment qsmk (quit smoking 1971-82), outcome wt82_71 "
            f"(weight change, kg), {design} design of the book's 9 confounders."
        ),
        treatment="qsmk",
        outcome="wt82_71",
        meta={"design": design},
    )


def _nhefs_book_design(x: pd.DataFrame) -> pd.DataFrame:
    """The regressors of What If Program 12.2 (without the intercept), in the book's order."""
    out: dict[str, pd.Series] = {}
    for col in NHEFS_COVARIATES:
        if col in _NHEFS_CATEGORICAL:
            for level in _NHEFS_CATEGORICAL[col][1:]:
                out[f"{col}_{level}"] = (x[col] == level).astype(float)
        else:
            out[col] = x[col].astype(float)
            if col in _NHEFS_SQUARED:
                out[f"{col}_sq"] = x[col].astype(float) ** 2
    return pd.DataFrame(out)


# ------------------------------------------------------------------------------------ LaLonde
#: Covariates of Dehejia & Wahba (1999): the eight raw ones plus the zero-earnings indicators.
LALONDE_COVARIATES = (
    "age", "educ", "black", "hisp", "marr", "nodegree", "re74", "re75", "u74", "u75",
)  # fmt: skip

#: The experimental benchmark: mean re78 of the 185 NSW treated minus that of the 260 NSW
#: controls (Dehejia & Wahba 1999 sample), in 1978 dollars.
LALONDE_EXPERIMENTAL_ATT = 1794.34
_LALONDE_NEED = "load_lalonde needs the LaLonde data"


def _causaldata_frame(name: str, need: str) -> pd.DataFrame:
    """Table ``name`` of the causaldata package; ``need`` says who needs it if it is missing."""
    try:
        importlib.import_module("causaldata")  # the package first: its absence is what to report
        module = importlib.import_module(f"causaldata.{name}")
    except ImportError as exc:
        raise ImportError(f"{need} of the causaldata package: pip install causaldata") from exc
    return module.load_pandas().data


def load_lalonde(controls: str = "cps") -> EffectData:
    """LaLonde's (1986) NSW job-training data in the Dehejia & Wahba (1999) sample.

    The 185 NSW treated men (``causaldata.nsw_mixtape``) against ``controls``:

    - ``"cps"``: the 15,992 CPS-1 comparison men (``causaldata.cps_mixtape``), an observational
      design with very poor overlap (most controls have propensity near 0);
    - ``"nsw"``: the 260 randomised NSW controls (the experiment).

    Covariates: :data:`LALONDE_COVARIATES` (``u74``/``u75`` are the indicators of zero earnings
    in 1974/1975), outcome ``re78`` (1978 earnings, dollars), treatment ``treat``. The target is
    the ATT; the experimental estimate :data:`LALONDE_EXPERIMENTAL_ATT` ($1,794) is in
    ``meta["experimental_att"]``. No PSID sample ships with causaldata.
    """
    if controls not in ("cps", "nsw"):
        raise DataError(f"controls must be 'cps' or 'nsw', got {controls!r}")
    nsw = _causaldata_frame("nsw_mixtape", _LALONDE_NEED)
    df = nsw if controls == "nsw" else pd.concat(
        [nsw.loc[nsw["treat"] == 1], _causaldata_frame("cps_mixtape", _LALONDE_NEED)], ignore_index=True
    )
    df = df.reset_index(drop=True)
    x = df[["age", "educ", "black", "hisp", "marr", "nodegree", "re74", "re75"]].astype(float)
    x["u74"] = (x["re74"] == 0).astype(float)
    x["u75"] = (x["re75"] == 0).astype(float)
    t = df["treat"].to_numpy(dtype=np.int64)
    return EffectData(
        name=f"lalonde_{controls}",
        X=x,
        T=t,
        Y=df["re78"].to_numpy(dtype=float),
        description=(
            f"LaLonde NSW (Dehejia-Wahba sample) from causaldata: {int(t.sum())} treated vs "
            f"{int((1 - t).sum())} {controls.upper()} controls; outcome re78 (1978 earnings, $). "
            f"Experimental ATT ${LALONDE_EXPERIMENTAL_ATT:,.0f}."
        ),
        treatment="treat",
        outcome="re78",
        meta={"controls": controls, "experimental_att": LALONDE_EXPERIMENTAL_ATT},
    )
