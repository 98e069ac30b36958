"""The graph of metrics over metrics (SPEC §8), the pure rules of domain/metric_graph.py:
cycles named, chains of at most 16 metrics, depths, what lies downstream. No database.

`upstream` maps a metric code to the codes of the metrics whose outputs it reads, so an edge
runs from a metric to one of its upstream metrics."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from metrics_orchestrator.domain.metric_graph import (
    MAX_CHAIN,
    GraphProblem,
    Upstream,
    depths,
    downstream,
    find_cycle,
    graph_problems,
)

GRAPH_SETTINGS = settings(max_examples=150, deadline=None)


def chain(length: int) -> dict[str, list[str]]:
    """m1 <- m2 <- ... <- m{length}: each metric reads the one before it; m1 reads datasets."""
    graph: dict[str, list[str]] = {"m1": []}
    for index in range(2, length + 1):
        graph[f"m{index}"] = [f"m{index - 1}"]
    return graph


# A diamond: b and c read a, d reads both b and c.
DIAMOND: dict[str, list[str]] = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}


def assert_is_cycle_of(cycle: Sequence[str], upstream: Upstream) -> None:
    """A closed walk along the graph's edges: first equals last, each step an edge."""
    assert len(cycle) >= 2
    assert cycle[0] == cycle[-1]
    for code, up in pairwise(cycle):
        assert up in upstream.get(code, ()), f"{code} → {up} is not an edge of {upstream}"


# --- cycles -----------------------------------------------------------------------------------


def test_a_two_metric_cycle_is_named_with_arrows_and_closes_on_its_first() -> None:
    upstream = {"a": ["b"], "b": ["a"]}
    assert find_cycle(upstream) == ("a", "b", "a")
    assert graph_problems(upstream) == [
        GraphProblem(("a", "b"), "metric inputs would form a cycle: a → b → a")
    ]


def test_a_metric_reading_its_own_output_is_a_cycle() -> None:
    upstream = {"a": ["a"]}
    assert find_cycle(upstream) == ("a", "a")
    assert graph_problems(upstream) == [
        GraphProblem(("a",), "metric inputs would form a cycle: a → a")
    ]


def test_a_cycle_reached_through_a_metric_outside_it_is_named_without_that_metric() -> None:
    upstream = {"entry": ["x.one"], "x.one": ["x.two"], "x.two": ["x.three"], "x.three": ["x.one"]}
    cycle = find_cycle(upstream)
    assert cycle == ("x.one", "x.two", "x.three", "x.one")
    assert graph_problems(upstream) == [
        GraphProblem(
            ("x.one", "x.two", "x.three"),
            "metric inputs would form a cycle: x.one → x.two → x.three → x.one",
        )
    ]


def test_a_diamond_is_no_cycle() -> None:
    assert find_cycle(DIAMOND) is None
    assert graph_problems(DIAMOND) == []


def test_no_metrics_no_cycle_no_problems() -> None:
    assert find_cycle({}) is None
    assert graph_problems({}) == []
    assert depths({}) == {}


def test_upstream_metrics_missing_from_the_mapping_read_datasets_only() -> None:
    upstream = {"b": ["a"]}
    assert find_cycle(upstream) is None
    assert depths(upstream) == {"a": 0, "b": 1}


# --- chain length -----------------------------------------------------------------------------


def test_the_longest_chain_allowed_is_sixteen_metrics() -> None:
    assert MAX_CHAIN == 16
    assert graph_problems(chain(16)) == []


def test_a_chain_of_seventeen_is_refused_naming_the_metric_at_its_end() -> None:
    assert graph_problems(chain(17)) == [
        GraphProblem(
            ("m17",), "a chain of 17 metrics ends at 'm17'; at most 16 metrics may be chained"
        )
    ]


def test_every_metric_beyond_the_limit_is_named() -> None:
    assert [problem.metrics for problem in graph_problems(chain(18))] == [("m17",), ("m18",)]


def test_a_cycle_is_reported_alone_even_beside_a_too_long_chain() -> None:
    upstream = {**chain(17), "a": ["b"], "b": ["a"]}
    assert graph_problems(upstream) == [
        GraphProblem(("a", "b"), "metric inputs would form a cycle: a → b → a")
    ]


def test_the_longest_path_counts_not_the_shortest() -> None:
    # "long" reaches m1 directly (a chain of 2) and through m16 (a chain of 17).
    upstream = {**chain(16), "long": ["m1", "m16"]}
    assert graph_problems(upstream) == [
        GraphProblem(
            ("long",), "a chain of 17 metrics ends at 'long'; at most 16 metrics may be chained"
        )
    ]


# --- depths -----------------------------------------------------------------------------------


def test_depth_is_one_more_than_the_deepest_upstream() -> None:
    upstream = {**DIAMOND, "e": ["a", "d"]}
    assert depths(upstream) == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 3}


def test_depths_along_a_chain() -> None:
    assert depths(chain(5)) == {"m1": 0, "m2": 1, "m3": 2, "m4": 3, "m5": 4}


# --- downstream -------------------------------------------------------------------------------


def test_downstream_gives_each_reader_its_distance_from_the_roots() -> None:
    assert downstream(chain(4), ["m1"]) == {"m2": 1, "m3": 2, "m4": 3}
    assert downstream(chain(4), ["m3"]) == {"m4": 1}


def test_a_diamond_counts_its_bottom_once() -> None:
    assert downstream(DIAMOND, ["a"]) == {"b": 1, "c": 1, "d": 2}


def test_a_metric_reached_along_paths_of_several_lengths_gets_the_shortest() -> None:
    upstream = {**chain(4), "x": ["m4", "m1"]}
    assert downstream(upstream, ["m1"]) == {"m2": 1, "m3": 2, "m4": 3, "x": 1}


def test_downstream_of_several_roots_measures_from_the_nearest() -> None:
    upstream = {"a": [], "b": [], "c": ["a"], "d": ["c", "b"]}
    assert downstream(upstream, ["a", "b"]) == {"c": 1, "d": 1}


def test_a_metric_nobody_reads_has_nothing_downstream() -> None:
    assert downstream(DIAMOND, ["d"]) == {}
    assert downstream(DIAMOND, []) == {}


# --- properties -------------------------------------------------------------------------------


@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    """A small graph with edges only from a higher index to a lower one: never a cycle."""
    size = draw(st.integers(min_value=1, max_value=9))
    codes = [f"m{index}" for index in range(size)]
    return {
        code: draw(st.lists(st.sampled_from(codes[:index]), unique=True)) if index else []
        for index, code in enumerate(codes)
    }


def reaches(upstream: Upstream, start: str, goal: str) -> bool:
    """Whether a path of one or more edges leads from `start` to `goal`."""
    seen: set[str] = set()
    frontier = list(upstream.get(start, ()))
    while frontier:
        code = frontier.pop()
        if code == goal:
            return True
        if code not in seen:
            seen.add(code)
            frontier.extend(upstream.get(code, ()))
    return False


@GRAPH_SETTINGS
@given(dags())
def test_a_graph_built_upward_has_no_cycle_and_consistent_depths(
    upstream: dict[str, list[str]],
) -> None:
    assert find_cycle(upstream) is None
    assert not any("cycle" in problem.message for problem in graph_problems(upstream))
    depth = depths(upstream)
    assert depth.keys() == upstream.keys()
    for code, ups in upstream.items():
        for up in ups:
            assert depth[code] > depth[up]
        assert depth[code] == (1 + max(depth[up] for up in ups) if ups else 0)


@GRAPH_SETTINGS
@given(dags(), st.data())
def test_a_back_edge_closing_a_path_makes_a_cycle_of_edges(
    upstream: dict[str, list[str]], data: st.DataObject
) -> None:
    paths = [(low, high) for high in upstream for low in upstream if reaches(upstream, high, low)]
    low, high = data.draw(st.sampled_from(paths)) if paths else ("m0", "m0")
    # `low` now reads `high`, which already reads `low` (directly or not); with no path at
    # all, a metric reading its own output closes the smallest cycle.
    closed = {code: list(ups) for code, ups in upstream.items()}
    closed[low].append(high)
    cycle = find_cycle(closed)
    assert cycle is not None
    assert_is_cycle_of(cycle, closed)
    assert graph_problems(closed)[0].message.startswith("metric inputs would form a cycle: ")


@GRAPH_SETTINGS
@given(dags(), st.data())
def test_downstream_distances_are_shortest_paths(
    upstream: dict[str, list[str]], data: st.DataObject
) -> None:
    roots = data.draw(st.lists(st.sampled_from(sorted(upstream)), min_size=1, unique=True))
    found = downstream(upstream, roots)
    for code in upstream:
        distances = [shortest(upstream, code, root) for root in roots]
        reachable = [d for d in distances if d is not None]
        if reachable:
            assert found[code] == min(reachable)
        else:
            assert code not in found


def shortest(upstream: Upstream, start: str, goal: str) -> int | None:
    """The fewest edges from `start` (a reader) up to `goal`, if any (at least one edge)."""
    frontier, steps, seen = {start}, 0, set[str]()
    while frontier:
        steps += 1
        frontier = {up for code in frontier for up in upstream.get(code, ())} - seen
        if goal in frontier:
            return steps
        seen |= frontier
    return None
