"""CausalGraph: parsing, validation, structure queries, d-separation and adjustment criteria."""

import itertools

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepscm import CausalGraph, GraphError


def test_parse_edges_chains_reversed_and_bidirected():
    g = CausalGraph("a -> b -> c; d <- c\n a <-> d; e")
    assert g.directed_edges == [("a", "b"), ("b", "c"), ("c", "d")]
    assert g.bidirected_edges == [("a", "d")]
    assert g.nodes == ["a", "b", "c", "d", "e"]
    assert g.has_latent_confounders


def test_cycle_is_rejected_and_shown():
    with pytest.raises(GraphError, match=r"cycle: a -> b -> c -> a"):
        CausalGraph("a -> b; b -> c; c -> a")


@pytest.mark.parametrize(
    "spec, fragment",
    [("a -> a", "self-loop"), ("a <-> a", "self-loop"), ("a => b", "'a => b'"), ("a -> ", "'a ->'"),
     ('a -> "b', "close the quote"), ("blood pressure -> y", "'blood' and 'pressure'"),
     ("x; -> y", "'-> y'")],
)
def test_malformed_specs_name_the_fragment(spec, fragment):
    with pytest.raises(GraphError, match=fragment):
        CausalGraph(spec)


def test_names_with_spaces_dashes_and_digits():
    g = CausalGraph('"blood pressure" -> y; x-1 -> y; 3b -> y; \'a;b\' <-> y')
    assert g.directed_edges == [("3b", "y"), ("blood pressure", "y"), ("x-1", "y")]
    assert g.bidirected_edges == [("a;b", "y")]
    assert str(g) == '3b -> y; "blood pressure" -> y; x-1 -> y; "a;b" <-> y'
    assert CausalGraph(str(g)) == g
    assert CausalGraph("x-1->y").directed_edges == [("x-1", "y")]  # '->' still splits
    with pytest.raises(GraphError, match=r"cycle: blood pressure -> y -> blood pressure"):
        CausalGraph('"blood pressure" -> y -> "blood pressure"')


def test_networkx_names_any_string_but_refuses_integer_labels():
    g = CausalGraph(nx.DiGraph([("blood pressure", "heart-rate"), ("heart-rate", "y")]))
    assert g.nodes == ["blood pressure", "heart-rate", "y"]
    assert CausalGraph(str(g)) == g
    with pytest.raises(GraphError, match=r"node 1 has type int.*nx\.relabel_nodes\(G, str\)"):
        CausalGraph(nx.DiGraph([(1, 2)]))
    with pytest.raises(GraphError, match="must not be empty"):
        CausalGraph("a -> b", nodes=[" "])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=8).filter(str.strip), min_size=2, max_size=5, unique=True),
       st.data())
def test_str_of_a_graph_parses_back_for_any_names(names, data):
    edges = [(a, b) for i, a in enumerate(names) for b in names[i + 1:] if data.draw(st.booleans())]
    dag = nx.DiGraph(edges)
    dag.add_nodes_from(names)
    g = CausalGraph(dag)
    assert CausalGraph(str(g)) == g


def test_unknown_node_in_query_is_named():
    g = CausalGraph("x -> y")
    with pytest.raises(GraphError, match=r"unknown node in query: 'z'"):
        g.parents("z")
    with pytest.raises(GraphError, match="'q'"):
        g.d_separated("x", "q")


def test_networkx_round_trip_does_not_touch_the_input():
    nxg = nx.DiGraph([("a", "b"), ("b", "c")])
    nxg.add_edge("a", "c", bidirected=True)
    before = nx.to_dict_of_dicts(nxg)
    g = CausalGraph(nxg)
    assert g.directed_edges == [("a", "b"), ("b", "c")]
    assert g.bidirected_edges == [("a", "c")]
    assert nx.to_dict_of_dicts(nxg) == before
    assert CausalGraph(g.to_networkx()) == g


def test_structure_queries():
    g = CausalGraph("z -> x; x -> m; m -> y; z -> y; x <-> y; w")
    assert g.parents("y") == ["z", "m"]
    assert g.children("x") == ["m"]
    assert g.ancestors("y", include_self=False) == {"z", "x", "m"}
    assert g.descendants("x") == {"x", "m", "y"}
    assert g.roots() == ["w", "z"]
    assert sorted(map(sorted, g.c_components())) == [["m"], ["w"], ["x", "y"], ["z"]]
    assert g.spouses("x") == ["y"]


def test_backdoor_and_minimal_adjustment():
    g = CausalGraph("z1 -> x; z1 -> z2; z2 -> y; x -> y; z3 -> x; z3 -> y")
    assert g.is_backdoor_set("x", "y", {"z1", "z3"})
    assert g.is_backdoor_set("x", "y", {"z2", "z3"})
    assert not g.is_backdoor_set("x", "y", {"z3"})
    found = g.adjustment_set("x", "y")
    assert g.is_backdoor_set("x", "y", found)
    assert all(not g.is_backdoor_set("x", "y", found - {v}) for v in found)  # minimal
    # a descendant of the treatment is never allowed
    assert not CausalGraph("x -> m; m -> y; x -> y; u -> x; u -> y").is_backdoor_set("x", "y", {"m", "u"})


def test_latent_confounder_blocks_adjustment_but_frontdoor_works():
    g = CausalGraph("smoking -> tar; tar -> cancer; smoking <-> cancer")
    assert g.adjustment_set("smoking", "cancer") is None
    assert g.is_frontdoor_set("smoking", "cancer", {"tar"})
    assert g.frontdoor_set("smoking", "cancer") == {"tar"}
    # a direct edge smoking -> cancer breaks condition (i)
    g2 = CausalGraph("smoking -> tar; tar -> cancer; smoking -> cancer; smoking <-> cancer")
    assert g2.frontdoor_set("smoking", "cancer") is None
    # a confounder of tar and cancer breaks condition (iii)
    g3 = CausalGraph("smoking -> tar; tar -> cancer; smoking <-> cancer; tar <-> cancer")
    assert not g3.is_frontdoor_set("smoking", "cancer", {"tar"})


def test_surgery_returns_new_graphs():
    g = CausalGraph("a -> b; b -> c; a <-> c")
    assert g.remove_incoming("c").bidirected_edges == []
    assert g.remove_outgoing("a").directed_edges == [("b", "c")]
    assert g.without_edge("a", "b").directed_edges == [("b", "c")]
    assert g.directed_edges == [("a", "b"), ("b", "c")]
    with pytest.raises(GraphError, match="no edge"):
        g.without_edge("a", "c")


@st.composite
def random_dags(draw):
    n = draw(st.integers(2, 7))
    names = [f"v{i}" for i in range(n)]
    pairs = list(itertools.combinations(range(n), 2))
    mask = draw(st.lists(st.booleans(), min_size=len(pairs), max_size=len(pairs)))
    edges = [(names[i], names[j]) for (i, j), keep in zip(pairs, mask) if keep]
    dag = nx.DiGraph(edges)
    dag.add_nodes_from(names)
    x = draw(st.sampled_from(names))
    y = draw(st.sampled_from([v for v in names if v != x]))
    rest = [v for v in names if v not in (x, y)]
    z = draw(st.lists(st.sampled_from(rest), unique=True)) if rest else []
    return dag, x, y, set(z)


@settings(max_examples=300, deadline=None)
@given(random_dags())
def test_d_separation_matches_networkx(case):
    dag, x, y, z = case
    assert CausalGraph(dag).d_separated({x}, {y}, z) == nx.is_d_separator(dag, {x}, {y}, z)


@settings(max_examples=100, deadline=None)
@given(random_dags())
def test_adjustment_set_is_a_valid_minimal_backdoor_set(case):
    dag, x, y, _ = case
    g = CausalGraph(dag)
    found = g.adjustment_set(x, y)
    if y in g.parents(x):  # the path x <- y cannot be blocked
        assert found is None
        return
    # otherwise, in a DAG without latents, the parents of x form a valid back-door set
    assert g.is_backdoor_set(x, y, set(g.parents(x)))
    assert found is not None
    assert g.is_backdoor_set(x, y, found)
    assert all(not g.is_backdoor_set(x, y, found - {v}) for v in found)
