"""The graph of metrics over metrics (SPEC §8): no cycles, chains of at most 16 metrics, and
each metric's depth. Pure functions over `upstream`: metric code -> the codes of the metrics
whose outputs it reads."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

MAX_CHAIN = 16

Upstream = Mapping[str, Collection[str]]


@dataclass(frozen=True, slots=True)
class GraphProblem:
    """Metrics whose inputs would break the graph (the cycle, or the chain's last), and why."""

    metrics: tuple[str, ...]
    message: str


def find_cycle(upstream: Upstream) -> tuple[str, ...] | None:
    """A cycle, as the codes along it with the first repeated at the end, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(code: str) -> tuple[str, ...] | None:
        state[code] = 1
        path.append(code)
        for up in sorted(upstream.get(code, ())):
            if state.get(up) == 1:
                return (*path[path.index(up) :], up)
            if up not in state:
                found = visit(up)
                if found is not None:
                    return found
        path.pop()
        state[code] = 2
        return None

    for code in sorted(upstream):
        if code not in state:
            found = visit(code)
            if found is not None:
                return found
    return None


def depths(upstream: Upstream) -> dict[str, int]:
    """Each metric's depth: 0 for a metric reading datasets only, else one more than its
    deepest upstream metric. The graph must have no cycle (`find_cycle`)."""
    known: dict[str, int] = {}

    def depth(code: str) -> int:
        if code not in known:
            ups = upstream.get(code, ())
            known[code] = 1 + max((depth(up) for up in ups), default=-1)
        return known[code]

    for code in sorted(upstream):
        depth(code)
    return known


def graph_problems(upstream: Upstream) -> list[GraphProblem]:
    """SPEC §8 registration: a reference that closes a cycle is refused with the cycle named
    (`a.x → b.y → a.x`); the longest chain is at most `MAX_CHAIN` metrics."""
    cycle = find_cycle(upstream)
    if cycle is not None:
        named = " → ".join(cycle)
        return [GraphProblem(cycle[:-1], f"metric inputs would form a cycle: {named}")]
    problems = []
    for code, depth in sorted(depths(upstream).items()):
        if depth + 1 > MAX_CHAIN:
            problems.append(
                GraphProblem(
                    (code,),
                    f"a chain of {depth + 1} metrics ends at {code!r}; "
                    f"at most {MAX_CHAIN} metrics may be chained",
                )
            )
    return problems


def downstream(upstream: Upstream, roots: Collection[str]) -> dict[str, int]:
    """Every metric that reads, directly or through others, the output of one of `roots`,
    with its distance from them (1: reads a root's output)."""
    readers: dict[str, set[str]] = {}
    for code, ups in upstream.items():
        for up in ups:
            readers.setdefault(up, set()).add(code)
    found: dict[str, int] = {}
    frontier = sorted(set(roots))
    distance = 0
    while frontier:
        distance += 1
        following = []
        for code in frontier:
            for reader in sorted(readers.get(code, ())):
                if reader not in found:
                    found[reader] = distance
                    following.append(reader)
        frontier = following
    return found
