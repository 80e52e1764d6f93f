"""Tests for deepscm.identification: ID / IDC on textbook graphs with known answers, hedges,
plug-in evaluation, a property test against simulated discrete SCMs with explicit latent
confounders, and a side-by-side check with the y0 package."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from deepscm.errors import DataError, GraphError, NotIdentifiableError
from deepscm.graph import CausalGraph
from deepscm.identification import (
    Estimand,
    HedgeError,
    Query,
    QueryError,
    identify,
    parse_query,
)

BACKDOOR = "z -> x -> y; z -> y"
FRONTDOOR = "s -> t -> c; s <-> c"
INSTRUMENT = "z -> x -> y; x <-> y"
BOW = "x -> y; x <-> y"
NAPKIN = "w1 -> w2 -> x -> y; w1 <-> x; w1 <-> y"
M_BIAS = "a -> m; b -> m; a -> x; b -> y; x -> y"
VERMA = "v1 -> v2 -> v3 -> v4; v1 <-> v3; v2 <-> v4"

TEXTBOOK = [  # (graph, query, identifiable)
    (BACKDOOR, "p(y | do(x))", True),
    (FRONTDOOR, "p(c | do(s))", True),
    (INSTRUMENT, "p(y | do(x))", False),
    (BOW, "p(y | do(x))", False),
    (NAPKIN, "p(y | do(x))", True),
    (M_BIAS, "p(y | do(x))", True),
    (VERMA, "p(v4 | do(v3))", True),
    (VERMA, "p(v4 | do(v1))", True),
    (VERMA, "p(v3 | do(v2))", True),
    (BACKDOOR, "p(y | do(x), z)", True),
    ("x -> y; x -> z; z -> y; x <-> z", "p(y | do(x), z)", True),
    ("z -> x -> y; z -> y; x <-> y", "p(y | do(x), z)", False),
    ("x -> z -> y; x <-> y", "p(y | do(x), z)", True),
    ("x1 -> z -> x2 -> y; x1 -> y; x1 <-> z; z <-> y", "p(y | do(x1, x2))", True),
    ("x1 -> z -> x2 -> y; x1 <-> y; z <-> y", "p(y | do(x1, x2))", True),
    ("x1 -> x2 -> y; x1 <-> x2; x2 <-> y", "p(y | do(x1, x2))", False),
]


# ---------------------------------------------------------------------- discrete SCMs
class DiscreteSCM:
    """Binary SCM on a semi-Markovian graph with its latent confounders made explicit: one
    binary latent ``U ~ Bernoulli(q)`` per bidirected edge, and a logistic mechanism
    ``P(v = 1 | inputs) = σ(b + Σ_k w_k (2 input_k - 1))`` with strong weights
    ``|w_k| ∈ [1, 2.5]``, clipped to [lo, 1 - lo] so every configuration has positive mass."""

    def __init__(self, graph: CausalGraph, seed: int, lo: float = 0.05) -> None:
        rng = np.random.default_rng(seed)
        self.graph, self.nodes = graph, graph.nodes
        self.latents = graph.bidirected_edges
        self.q = rng.uniform(0.3, 0.7, len(self.latents))
        self.inputs = {
            v: (graph.parents(v), [k for k, e in enumerate(self.latents) if v in e])
            for v in self.nodes
        }
        self.cpt = {}
        for v, (pa, lat) in self.inputs.items():
            k = len(pa) + len(lat)
            w = rng.uniform(1.0, 2.5, k) * rng.choice([-1, 1], k)
            bits = (np.arange(2**k)[:, None] >> np.arange(k)) & 1  # row i: the bits of i
            logit = rng.uniform(-1, 1) + (2 * bits - 1) @ w
            self.cpt[v] = np.clip(1 / (1 + np.exp(-logit)), lo, 1 - lo)

    def _index(self, v: str, values: dict[str, np.ndarray], u: np.ndarray) -> np.ndarray:
        pa, lat = self.inputs[v]
        bits = [values[p] for p in pa] + [u[:, k] for k in lat]
        return sum((b.astype(int) << i for i, b in enumerate(bits)), np.zeros(len(u), int))

    def sample(self, n: int, seed: int, do: dict[str, int] | None = None) -> pd.DataFrame:
        """``n`` rows simulated from the SCM (under the hard intervention ``do``)."""
        do = do or {}
        rng = np.random.default_rng(seed)
        u = rng.random((n, len(self.latents))) < self.q
        values: dict[str, np.ndarray] = {}
        for v in self.nodes:
            p1 = self.cpt[v][self._index(v, values, u)]
            values[v] = np.full(n, do[v]) if v in do else (rng.random(n) < p1).astype(int)
        return pd.DataFrame(values)

    def joint(self, do: dict[str, int] | None = None) -> pd.DataFrame:
        """Every configuration of the observed variables with its exact probability under
        ``do`` (column ``weight``), summing out the latents."""
        do = do or {}
        obs = np.array(list(itertools.product([0, 1], repeat=len(self.nodes))))
        lat = np.array(list(itertools.product([0, 1], repeat=len(self.latents))))
        o = np.repeat(obs, len(lat), axis=0)
        u = np.tile(lat, (len(obs), 1)).reshape(len(o), len(self.latents))
        weight = np.prod(np.where(u == 1, self.q, 1 - self.q), axis=1)
        values = {v: o[:, i] for i, v in enumerate(self.nodes)}
        for v in self.nodes:
            if v in do:
                weight = weight * (values[v] == do[v])
            else:
                p1 = self.cpt[v][self._index(v, values, u)]
                weight = weight * np.where(values[v] == 1, p1, 1 - p1)
        table = pd.DataFrame(values)
        table["weight"] = weight
        return table.groupby(self.nodes, as_index=False)["weight"].sum()

    def truth(self, table: pd.DataFrame, query: Query) -> np.ndarray:
        """``P(y | do(x), z)`` for every row of an evaluated estimand table."""
        out = []
        for _, row in table.iterrows():
            joint = self.joint({v: int(row[v]) for v in query.treatment})
            match_z = np.ones(len(joint), bool)
            for v in query.given:
                match_z &= joint[v].to_numpy() == row[v]
            match_y = match_z.copy()
            for v in query.outcome:
                match_y &= joint[v].to_numpy() == row[v]
            w = joint["weight"].to_numpy()
            out.append(w[match_y].sum() / w[match_z].sum())
        return np.array(out)


def test_exact_interventional_distribution_matches_simulation():
    """The harness: P(v | do(x)) by enumerating the latents equals simulation under do(x)."""
    g = CausalGraph(NAPKIN)
    scm = DiscreteSCM(g, seed=0)
    exact = scm.joint({"x": 1}).set_index(g.nodes)["weight"]
    simulated = scm.sample(100_000, seed=1, do={"x": 1}).value_counts(normalize=True)
    assert np.abs(simulated.reindex(exact.index, fill_value=0) - exact).max() < 0.01


def exact_error(est: Estimand, scm: DiscreteSCM) -> float:
    """Largest error of the estimand evaluated on the exact observational distribution."""
    table = est.evaluate(scm.joint(), weight="weight")
    return float(np.max(np.abs(table["p"].to_numpy() - scm.truth(table, est.query))))


SAMPLE_N = 200_000
TOL = 0.02  # max abs error allowed for plug-in estimates from SAMPLE_N rows


def sample_error(est: Estimand, scm: DiscreteSCM, seed: int) -> float:
    table = est.evaluate(scm.sample(SAMPLE_N, seed))
    return float(np.max(np.abs(table["p"].to_numpy() - scm.truth(table, est.query))))


def check_hedge(graph: CausalGraph, forest, subforest, roots, x, y) -> None:
    """The definition of a hedge for P(y | do(x)) (Shpitser & Pearl 2006, Def. 4-5),
    checked with CausalGraph's own primitives."""

    def is_c_forest(nodes: frozenset) -> bool:
        sub = graph.subgraph(nodes)
        return (
            bool(nodes)
            and roots <= nodes
            and len(sub.c_components()) == 1
            and sub.ancestors(roots) == set(nodes)
        )

    assert subforest < forest
    assert is_c_forest(forest) and is_c_forest(subforest)
    assert forest & x and not subforest & x
    assert roots <= graph.remove_incoming(x).ancestors(y)


# ---------------------------------------------------------------------- textbook answers
def test_backdoor_formula_and_shortcut():
    est = identify(BACKDOOR, "p(y | do(x))")
    assert str(est) == "P(y | do(x)) = Σ_z P(y|x,z) P(z)"
    assert est.to_latex() == r"P(y \mid \mathrm{do}(x)) = \sum_{z} P(y \mid x, z) P(z)"
    assert est.shortcut == "backdoor" and est.adjustment_set == {"z"}
    assert est.shortcut_text.startswith("back-door criterion with adjustment set {z}")


def test_frontdoor_smoking_tar_cancer():
    est = identify(FRONTDOOR, "p(c | do(s))")
    assert str(est) == "P(c | do(s)) = Σ_t P(t|s) Σ_s' P(c|s',t) P(s')"
    assert est.shortcut == "frontdoor" and est.mediators == {"t"}
    assert est.adjustment_set is None
    long = identify("smoking -> tar -> cancer; smoking <-> cancer", "p(cancer | do(smoking))")
    assert str(long.expression) == (
        "Σ_tar P(tar|smoking) Σ_smoking' P(cancer|smoking',tar) P(smoking')"
    )
    assert r"\sum_{\mathit{smoking}'}" in long.to_latex()


@pytest.mark.parametrize("graph", [INSTRUMENT, BOW])
def test_instrument_and_bow_are_not_identifiable(graph):
    with pytest.raises(NotIdentifiableError) as info:
        identify(graph, "p(y | do(x))")
    err = info.value
    assert isinstance(err, HedgeError)
    assert (err.hedge.forest, err.hedge.subforest) == ({"x", "y"}, {"y"})
    assert err.hedge.confounders == [("x", "y")]
    message = str(err)
    assert "P(y | do(x)) is not identifiable" in message
    assert "F = {x, y} and F' = {y}" in message and "x <-> y" in message
    assert "measure" in message


def test_napkin_ratio_with_free_variable():
    est = identify(NAPKIN, "p(y | do(x))")
    assert str(est.expression) == "[Σ_w1 P(x,y|w1,w2) P(w1)] / [Σ_w1 P(x|w1,w2) P(w1)]"
    assert est.free_variables == ("w2",)
    assert str(est).endswith("(holds for every value of w2)")
    assert est.shortcut is None and est.shortcut_text is None
    assert r"\frac{" in est.to_latex()


def test_m_bias_needs_no_adjustment_for_the_collider():
    est = identify(M_BIAS, "p(y | do(x))")
    assert "m" not in str(est.expression)
    assert est.shortcut == "backdoor" and est.adjustment_set == set()
    assert est.shortcut_text.endswith("P(y | do(x)) = P(y|x)")


def test_verma_graph():
    est = identify(VERMA, "p(v4 | do(v3))")
    assert est.free_variables == ("v1",)
    assert str(est.expression) == "Σ_v2 P(v4|v3,v1,v2) P(v2|v1)"
    assert str(identify(VERMA, "p(v3 | do(v2))").expression) == "Σ_v1 P(v3|v2,v1) P(v1)"


def test_conditional_queries():
    assert str(identify(BACKDOOR, "p(y | do(x), z)")) == "P(y | do(x), z) = P(y|x,z)"
    # z is a mediator; the confounding between x and z does not reach y given x.
    est = identify("x -> y; x -> z; z -> y; x <-> z", "p(y | do(x), z)")
    assert est.expression.free_variables == {"x", "y", "z"}
    with pytest.raises(HedgeError, match="IDC reduces it"):
        identify("z -> x -> y; z -> y; x <-> y", "p(y | do(x), z)")


@pytest.mark.parametrize("graph,query,identifiable", TEXTBOOK)
def test_textbook_graphs_against_exact_interventions(graph, query, identifiable):
    g = CausalGraph(graph)
    if not identifiable:
        with pytest.raises(HedgeError) as info:
            identify(g, query)
        h = info.value.hedge
        check_hedge(g, h.forest, h.subforest, h.roots, h.treatment, h.outcome)
        return
    est = identify(g, query)
    for seed in range(3):
        scm = DiscreteSCM(g, seed)
        assert exact_error(est, scm) < 1e-10


# ---------------------------------------------------------------------- queries
def test_parse_query_forms():
    assert parse_query("p(y | do(x), z)") == Query(("y",), ("x",), ("z",))
    assert parse_query("P(y1, y2 | z, do(x1, x2))") == Query(("y1", "y2"), ("x1", "x2"), ("z",))
    assert parse_query("y | do(a), do(b)") == Query(("y",), ("a", "b"))
    assert parse_query("p(y)") == Query(("y",))
    assert str(Query(("y",), ("x",), ("z",))) == "P(y | do(x), z)"


@pytest.mark.parametrize(
    "text,match",
    [
        ("p(y | do(x=1))", "fixes a value"),
        ("p(y | do(x)", "unbalanced"),
        ("p( | do(x))", "not a variable name"),
        ("p(y | do(y))", "both as outcome and as do"),
        ("p(y | x | z)", "more than one"),
    ],
)
def test_malformed_queries(text, match):
    with pytest.raises(QueryError, match=match):
        parse_query(text)


def test_unknown_variables_are_named():
    with pytest.raises(GraphError, match="'q'") as info:
        identify(BACKDOOR, "p(q | do(x), w)")
    assert "'w'" in str(info.value)
    with pytest.raises(GraphError, match="not both"):
        identify(BACKDOOR, "p(y | do(x))", outcome="y")


def test_structured_arguments_match_the_string_form():
    a = identify(NAPKIN, outcome="y", treatment=["x"])
    assert str(a) == str(identify(NAPKIN, "p(y | do(x))"))
    assert str(identify(BACKDOOR, outcome="y")) == "P(y) = P(y)"


# ---------------------------------------------------------------------- evaluation
def test_evaluate_table_shape_and_napkin_averaging():
    g = CausalGraph(NAPKIN)
    scm = DiscreteSCM(g, seed=7)
    est = identify(g, "p(y | do(x))")
    table = est.evaluate(scm.joint(), weight="weight")
    assert list(table.columns) == ["x", "y", "p"]
    assert len(table) == 4
    np.testing.assert_allclose(table.groupby("x")["p"].sum(), 1.0)
    assert table.attrs["free_variables"] == ["w2"] and table.attrs["spread"] < 1e-12
    per_value = est.evaluate(scm.joint(), weight="weight", average_free=False)
    assert list(per_value.columns) == ["x", "y", "w2", "p"] and len(per_value) == 8
    # On a finite sample the values at w2 = 0 and 1 differ a little: the spread shows it.
    noisy = est.evaluate(scm.sample(5_000, seed=1))
    assert 0 < noisy.attrs["spread"] < 0.2


def test_evaluate_conditional_query_columns():
    g = CausalGraph(BACKDOOR)
    table = identify(g, "p(y | do(x), z)").evaluate(DiscreteSCM(g, 0).sample(2_000, seed=0))
    assert list(table.columns) == ["x", "z", "y", "p"]


def test_evaluate_data_errors():
    g = CausalGraph(BACKDOOR)
    est = identify(g, "p(y | do(x))")
    df = DiscreteSCM(g, 0).sample(500, seed=0)
    with pytest.raises(DataError, match="'z'"):
        est.evaluate(df.drop(columns="z"))
    with pytest.raises(DataError, match="discretise"):
        est.evaluate(df.assign(z=np.linspace(0, 1, len(df))))
    with pytest.raises(DataError, match="positivity"):
        est.evaluate(df[~((df.x == 1) & (df.z == 1))])


# ---------------------------------------------------------------------- property test
@st.composite
def graphs_and_queries(draw, max_nodes: int = 5):
    """A random semi-Markovian graph on up to ``max_nodes`` nodes, a query ``P(y | do(x), z)``
    whose outcomes are descendants of the treatment where possible, and an SCM seed."""
    n = draw(st.integers(3, max_nodes))  # edges with probability 0.6 (directed), 0.4 (<->)
    names = [f"v{i}" for i in range(n)]
    pairs = list(itertools.combinations(names, 2))
    directed = [f"{a} -> {b}" for a, b in pairs if draw(st.integers(0, 4)) < 3]
    bidirected = [f"{a} <-> {b}" for a, b in pairs if draw(st.integers(0, 4)) < 2]
    graph = CausalGraph("; ".join(directed + bidirected + names))
    x = draw(st.lists(st.sampled_from(names), min_size=1, max_size=min(2, n - 1), unique=True))
    rest = [v for v in names if v not in x]
    effects = [v for v in rest if v in graph.descendants(x)] or rest
    y = draw(st.lists(st.sampled_from(effects), min_size=1, max_size=2, unique=True))
    rest = [v for v in rest if v not in y]
    z = draw(st.lists(st.sampled_from(rest), max_size=1)) if rest else []
    return graph, Query.build(y, x, z), draw(st.integers(0, 2**31))


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(graphs_and_queries())
def test_identified_estimands_match_simulated_interventions(case):
    graph, query, seed = case
    try:
        est = identify(graph, query)
    except HedgeError as err:
        event("not identifiable")
        h = err.hedge
        assert set(query.treatment) <= h.treatment <= set(query.treatment) | set(query.given)
        assert h.outcome == set(query.outcome) | (set(query.given) - h.treatment)
        check_hedge(graph, h.forest, h.subforest, h.roots, h.treatment, h.outcome)
        return
    scm = DiscreteSCM(graph, seed)
    assert exact_error(est, scm) < 1e-9  # the formula is right, for every free value too
    assert sample_error(est, scm, seed) < TOL  # and its plug-in estimate is consistent
    # Teeth: the estimand of the same query in the graph without latent confounders is
    # wrong whenever confounding matters; the sample comparison must then reject it.
    unconfounded = [f"{a} -> {b}" for a, b in graph.directed_edges] + graph.nodes
    naive = identify("; ".join(unconfounded), query)
    if exact_error(naive, scm) > 2 * TOL:
        event("confounding changes the answer: the naive estimand is rejected")
        assert sample_error(naive, scm, seed) > TOL


@pytest.mark.parametrize(
    "graph,query,x,y,seed",
    [
        (BACKDOOR, "p(y | do(x))", "x", "y", 3),
        (FRONTDOOR, "p(c | do(s))", "s", "c", 3),
        (NAPKIN, "p(y | do(x))", "x", "y", 24),
    ],
)
def test_wrong_estimand_fails_the_comparison(graph, query, x, y, seed):
    """The comparison has teeth: on confounded data the naive P(y | x), which is what ID
    answers in a graph without the confounding, fails it while the identified estimand passes."""
    g = CausalGraph(graph)
    scm = DiscreteSCM(g, seed)
    right = identify(g, query)
    wrong = identify(f"{x} -> {y}", query)
    assert str(wrong.expression) == f"P({y}|{x})"
    assert exact_error(wrong, scm) > 2 * TOL
    assert sample_error(right, scm, seed=0) < TOL
    assert sample_error(wrong, scm, seed=0) > TOL


# ---------------------------------------------------------------------- y0 side by side
def y0_identifiable(graph: CausalGraph, query: Query) -> bool | None:
    """Whether y0's ID / IDC identifies the query (test-only dependency); ``None`` where y0
    0.2.11 crashes: its ``remove_in_edges`` drops nodes left isolated, and IDC then raises
    ``KeyError`` for a conditioning variable."""
    pytest.importorskip("y0")
    from y0.algorithm.identify import identify_outcomes
    from y0.dsl import Variable
    from y0.graph import NxMixedGraph

    g = NxMixedGraph.from_str_edges(
        nodes=graph.nodes, directed=graph.directed_edges, undirected=graph.bidirected_edges
    )

    def variables(names):
        return {Variable(n) for n in names}

    conditions = variables(query.given) or None
    try:
        found = identify_outcomes(
            g, variables(query.treatment), variables(query.outcome), conditions=conditions
        )
    except KeyError:
        return None
    return found is not None


def ours_identifiable(graph: CausalGraph, query: Query) -> bool:
    try:
        identify(graph, query)
    except NotIdentifiableError:
        return False
    return True


@pytest.mark.parametrize("graph,query,identifiable", TEXTBOOK)
def test_y0_agrees_on_textbook_graphs(graph, query, identifiable):
    g, q = CausalGraph(graph), parse_query(query)
    assert y0_identifiable(g, q) == identifiable == ours_identifiable(g, q)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(graphs_and_queries())
def test_y0_agrees_on_random_graphs(case):
    graph, query, _ = case
    theirs = y0_identifiable(graph, query)
    assume(theirs is not None)
    ours = ours_identifiable(graph, query)
    event("identifiable" if ours else "not identifiable")
    assert theirs == ours


def test_queries_name_nodes_with_spaces_and_dashes():
    from deepscm.identification.query import QueryError, parse_query

    q = parse_query("p(\"blood pressure\" | do('dose-mg'), age)")
    assert (q.outcome, q.treatment, q.given) == (("blood pressure",), ("dose-mg",), ("age",))
    assert parse_query("p(y | do(x-1))").treatment == ("x-1",)
    from deepscm import identify

    graph = CausalGraph('dose -> "blood pressure"; "blood pressure" -> y')
    assert "blood pressure" in str(identify(graph, query="p(y | do(dose))"))
    with pytest.raises(QueryError, match="quote names"):
        parse_query("p(blood pressure | do(dose))")
    with pytest.raises(QueryError, match="unclosed"):
        parse_query('p("y | do(x))')
