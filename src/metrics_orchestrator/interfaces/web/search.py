"""Where the header's search box goes (issue 25 "finding things"): pure, over what one read found.

A text is looked up as each kind at once (`QueryService.search`): an exact metric code, an
exact dataset id, an event key, a prefix of run ids. One match is a place to go; several (a
code that is also a dataset id, a prefix that begins several runs) are listed for a person to
choose; none says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote

from metrics_orchestrator.application.ports.queries import RunMatch, SearchHits
from metrics_orchestrator.interfaces.web.presenters import dataset_href, when


class Kind(StrEnum):
    METRIC = "metric"
    DATASET = "dataset"
    EVENT = "event"
    RUN = "run"


@dataclass(frozen=True, slots=True)
class Candidate:
    """One thing the text names: what kind, how it reads, where its page is."""

    kind: Kind
    label: str
    href: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SearchOutcome:
    """Go to `go_to`, or list `candidates` (none: nothing matched); `more_runs`: more runs
    begin with the text than are listed."""

    text: str
    go_to: str | None
    candidates: tuple[Candidate, ...]
    more_runs: bool = False


def search_outcome(hits: SearchHits) -> SearchOutcome:
    """A single match, and nothing more, is where the search goes; anything else is a list."""
    candidates = tuple(_candidates(hits))
    single = len(candidates) == 1 and not hits.more_runs
    return SearchOutcome(
        text=hits.text,
        go_to=candidates[0].href if single else None,
        candidates=candidates,
        more_runs=hits.more_runs,
    )


def _candidates(hits: SearchHits) -> list[Candidate]:
    found = []
    if hits.metric_code is not None:
        code = hits.metric_code
        found.append(Candidate(Kind.METRIC, code, f"/ui/metrics/{quote(code, safe='')}"))
    if hits.dataset_id is not None:
        found.append(Candidate(Kind.DATASET, hits.dataset_id, dataset_href(hits.dataset_id)))
    if hits.event_id is not None:
        found.append(
            Candidate(
                Kind.EVENT,
                hits.text,
                f"/ui/events/{hits.event_id}",
                f"the newest logged event with this key (#{hits.event_id})",
            )
        )
    found.extend(_run_candidate(run) for run in hits.runs)
    return found


def _run_candidate(run: RunMatch) -> Candidate:
    detail = (
        f"{run.metric_code} · {run.status} · attempt {run.attempt} · created {when(run.created_at)}"
    )
    return Candidate(Kind.RUN, str(run.id), f"/ui/runs/{run.id}", detail)
