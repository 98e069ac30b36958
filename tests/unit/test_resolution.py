"""Series → dataset resolution (SPEC §2), the pure rule of domain/resolution.py, no database."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from metrics_orchestrator.domain.errors import FieldError
from metrics_orchestrator.domain.expressions import SeriesReference
from metrics_orchestrator.domain.model import MetricDependency
from metrics_orchestrator.domain.resolution import CatalogFacts, Resolution, resolve_dependencies

FACTS = CatalogFacts(
    known_series={"A", "B", "C", "ORPHAN"},
    known_datasets={"a1", "a2", "b1", "other"},
    providers={"A": {"a2", "a1"}, "B": {"b1"}, "C": {"a1"}},
)


def _ref(code: str, dataset_id: str | None = None, index: int = 0) -> SeriesReference:
    return SeriesReference(code, dataset_id, f"metrics[0].expression.series[{index}]")


def _messages(resolution: Resolution) -> list[str]:
    return [str(error) for error in resolution.errors]


def test_the_only_provider_is_chosen_in_first_seen_order() -> None:
    resolution = resolve_dependencies([_ref("C", index=0), _ref("B", index=1)], FACTS)
    assert resolution.resolved
    assert resolution.dependencies == (MetricDependency("C", "a1"), MetricDependency("B", "b1"))


def test_a_pin_to_a_provider_decides_among_several() -> None:
    resolution = resolve_dependencies([_ref("A", "a2")], FACTS)
    assert resolution.dependencies == (MetricDependency("A", "a2"),)
    assert resolution.errors == ()


def test_one_pin_applies_to_every_reference_of_the_series() -> None:
    refs = [_ref("A", index=0), _ref("A", "a1", index=1), _ref("A", index=2)]
    assert resolve_dependencies(refs, FACTS).dependencies == (MetricDependency("A", "a1"),)


def test_a_repeated_series_gives_one_dependency() -> None:
    refs = [_ref("B", index=0), _ref("B", index=1)]
    assert resolve_dependencies(refs, FACTS).dependencies == (MetricDependency("B", "b1"),)


def test_an_unknown_series_is_named_at_its_first_reference() -> None:
    resolution = resolve_dependencies([_ref("ZZ", index=3), _ref("ZZ", index=4)], FACTS)
    assert _messages(resolution) == [
        "metrics[0].expression.series[3].series_code: unknown series 'ZZ'"
    ]
    assert resolution.dependencies == ()


def test_a_series_nobody_provides() -> None:
    assert _messages(resolve_dependencies([_ref("ORPHAN")], FACTS)) == [
        "metrics[0].expression.series[0].series_code: "
        "series 'ORPHAN' is not provided by any dataset"
    ]


def test_several_providers_without_a_pin_name_the_candidates_sorted() -> None:
    assert _messages(resolve_dependencies([_ref("A")], FACTS)) == [
        "metrics[0].expression.series[0].series_code: "
        "series 'A' is provided by several datasets (a1, a2); pin one with dataset_id"
    ]


def test_a_pin_to_a_dataset_that_does_not_provide_the_series() -> None:
    assert _messages(resolve_dependencies([_ref("A", "b1")], FACTS)) == [
        "metrics[0].expression.series[0].dataset_id: "
        "dataset 'b1' does not provide series 'A' (candidates: a1, a2)"
    ]


def test_a_pin_to_an_unknown_dataset() -> None:
    assert _messages(resolve_dependencies([_ref("B", "nope")], FACTS)) == [
        "metrics[0].expression.series[0].dataset_id: unknown dataset 'nope' (candidates: b1)"
    ]


def test_a_pin_for_a_series_nobody_provides() -> None:
    assert _messages(resolve_dependencies([_ref("ORPHAN", "other")], FACTS)) == [
        "metrics[0].expression.series[0].dataset_id: "
        "dataset 'other' does not provide series 'ORPHAN' (no dataset provides it)"
    ]


def test_two_different_pins_are_refused_at_the_second() -> None:
    refs = [_ref("A", "a1", index=0), _ref("A", "a2", index=1)]
    assert _messages(resolve_dependencies(refs, FACTS)) == [
        "metrics[0].expression.series[1].dataset_id: series 'A' is pinned to 'a2' here but to "
        "'a1' at metrics[0].expression.series[0]; a series has one dataset per metric"
    ]


def test_every_failing_series_is_reported_and_nothing_is_resolved() -> None:
    refs = [_ref("B", index=0), _ref("A", index=1), _ref("ZZ", index=2)]
    resolution = resolve_dependencies(refs, FACTS)
    assert not resolution.resolved
    assert [error.path for error in resolution.errors] == [
        "metrics[0].expression.series[1].series_code",
        "metrics[0].expression.series[2].series_code",
    ]
    assert resolution.dependencies == ()


def test_a_reference_without_a_path_is_located_by_the_key_alone() -> None:
    resolution = resolve_dependencies([SeriesReference("ZZ", None, "")], FACTS)
    assert resolution.errors == (FieldError("series_code", "unknown series 'ZZ'"),)


# --- the rule as a property, against an independent model ------------------------------------

SERIES = ("A", "B", "C", "D")
DATASETS = ("d1", "d2", "d3")


@st.composite
def catalogs(draw: st.DrawFn) -> CatalogFacts:
    known_series = draw(st.sets(st.sampled_from(SERIES)))
    known_datasets = draw(st.sets(st.sampled_from(DATASETS)))
    providers = {
        code: draw(st.sets(st.sampled_from(sorted(known_datasets)))) if known_datasets else set()
        for code in known_series
    }
    return CatalogFacts(known_series, known_datasets, providers)


reference_lists = st.lists(
    st.tuples(st.sampled_from(SERIES), st.none() | st.sampled_from((*DATASETS, "ghost"))),
    min_size=1,
    max_size=8,
).map(lambda items: [_ref(code, pin, index) for index, (code, pin) in enumerate(items)])


def _expected_dataset(
    code: str, refs: Sequence[SeriesReference], facts: CatalogFacts
) -> str | None:
    """The rule as SPEC §2 states it: one agreed pin that provides it, else the only provider."""
    if code not in facts.known_series:
        return None
    offered = set(facts.providers.get(code, ()))
    pins = {ref.dataset_id for ref in refs if ref.dataset_id is not None}
    if pins:
        return next(iter(pins)) if len(pins) == 1 and pins <= offered else None
    return next(iter(offered)) if len(offered) == 1 else None


@settings(max_examples=300, deadline=None)
@given(facts=catalogs(), refs=reference_lists)
def test_each_series_resolves_to_exactly_one_providing_dataset_or_is_named(
    facts: CatalogFacts, refs: list[SeriesReference]
) -> None:
    resolution = resolve_dependencies(refs, facts)
    distinct = list(dict.fromkeys(ref.series_code for ref in refs))
    expected = {
        code: _expected_dataset(code, [r for r in refs if r.series_code == code], facts)
        for code in distinct
    }
    failing = [code for code in distinct if expected[code] is None]
    if failing:
        assert resolution.dependencies == ()
        # one error per failing series, in first-seen order, at one of its references, naming
        # the series (or, for a pin to an unknown dataset, that dataset)
        assert len(resolution.errors) == len(failing)
        for code, error in zip(failing, resolution.errors, strict=True):
            pins = {r.dataset_id for r in refs if r.series_code == code and r.dataset_id}
            named = [code, *(pin for pin in pins if pin not in facts.known_datasets)]
            assert any(f"'{name}'" in error.message for name in named)
            assert error.path.endswith((".series_code", ".dataset_id"))
            assert any(error.path.startswith(r.path) for r in refs if r.series_code == code)
    else:
        assert resolution.errors == ()
        assert resolution.dependencies == tuple(
            MetricDependency(code, dataset) for code, dataset in expected.items() if dataset
        )
        for dependency in resolution.dependencies:
            assert dependency.dataset_id in facts.providers[dependency.series_code]
