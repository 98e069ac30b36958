"""One delivery of a run request computes it, and `current/manifest.json` only moves forward.

SQS delivers at least once and a run request may be published twice: two deliveries of one
run-attempt computed at once wrote two outputs, and the marker or the current manifest could
name another version than the one the control plane recorded (issue 20, item 11).

The claim `{basePath}runs/{runId}-{attempt}.claim` is created by a conditional put
(`If-None-Match: *`), which exactly one delivery wins. It names the SQS message of that
delivery and its stage, `computing` and then `writing`. A delivery that finds it:

- of another message (a duplicate publish): the run is in hand elsewhere; this copy is
  dropped, unanswered (the owner answers; if the owner dies, its own message comes back);
- of the same message (a redelivery: its worker died or stopped, or its visibility ran out)
  while `computing`: the claim is taken over (`If-Match` on the ETag read), so of two takers
  one wins; while `writing`: the message waits (it comes back after its visibility timeout and
  is then answered from the marker).

Before writing any output the owner moves its claim to `writing` (`If-Match` on its own ETag):
if that fails the claim was taken over, and this delivery stops without writing or reporting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from metrics_orchestrator.domain.messages.run_requested import RunRequest
from metrics_orchestrator.domain.s3_locations import S3Location
from metrics_orchestrator.worker.outputs import (
    JSON_TYPE,
    claim_location,
    json_bytes,
    supersedes,
    timestamp,
)
from metrics_orchestrator.worker.ports import Clock, ObjectNotFound, ObjectStore, WriteConflict

COMPUTING = "computing"
WRITING = "writing"
# Conflicting writers of one metric's current manifest are few; each conflict means another
# writer got in between, so the loop ends quickly. Bounded all the same.
MAX_CURRENT_ATTEMPTS = 20


class Verdict(StrEnum):
    """What a delivery that did not create the claim does."""

    TAKE_OVER = "take over"
    IN_HAND_ELSEWHERE = "in hand elsewhere"  # drop this copy
    WAIT = "wait"  # leave the message; it comes back after its visibility timeout


def verdict(claim: object, delivery: str) -> Verdict:
    """Decide from the claim found (its JSON document; anything else is unreadable)."""
    if not isinstance(claim, dict) or not isinstance(claim.get("delivery"), str):
        return Verdict.TAKE_OVER  # not a claim this worker wrote: nothing to respect
    if claim["delivery"] != delivery:
        return Verdict.IN_HAND_ELSEWHERE
    return Verdict.WAIT if claim.get("stage") == WRITING else Verdict.TAKE_OVER


@dataclass(frozen=True, slots=True)
class Claim:
    """This delivery's claim, as last written (`tag` is its ETag)."""

    location: S3Location
    delivery: str
    tag: str


class Claims:
    def __init__(self, store: ObjectStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def acquire(self, request: RunRequest, delivery: str) -> Claim | Verdict:
        """This delivery's claim, or what to do since another holds it. Raises if S3 fails."""
        location = claim_location(request)
        body = self._body(request, delivery, COMPUTING)
        try:
            return Claim(
                location, delivery, self._store.put(location, body, JSON_TYPE, if_absent=True)
            )
        except WriteConflict:
            pass
        try:
            raw, tag = self._store.get_tagged(location)
        except ObjectNotFound:  # removed by hand in between: let the message come back
            return Verdict.WAIT
        decided = verdict(_json(raw), delivery)
        if decided is not Verdict.TAKE_OVER:
            return decided
        try:
            return Claim(location, delivery, self._store.put(location, body, JSON_TYPE, if_tag=tag))
        except WriteConflict:  # another taker won
            return Verdict.WAIT

    def begin_writing(self, request: RunRequest, claim: Claim) -> Claim:
        """Move the claim to `writing`; WriteConflict if it was taken over meanwhile."""
        body = self._body(request, claim.delivery, WRITING)
        return Claim(
            claim.location,
            claim.delivery,
            self._store.put(claim.location, body, JSON_TYPE, if_tag=claim.tag),
        )

    def _body(self, request: RunRequest, delivery: str, stage: str) -> bytes:
        return json_bytes(
            {
                "run_id": request.run_id,
                "attempt": request.attempt,
                "delivery": delivery,
                "stage": stage,
                "at": timestamp(self._clock.now()),
            }
        )


def advance_current(store: ObjectStore, location: S3Location, body: bytes, version: str) -> bool:
    """Write `body` (the manifest of `version`) at `location` unless a later version is there.

    Read, compare `version_ts`, write on the ETag read (or if still absent); a conflict means
    another writer got in between, so read again. True if written.
    """
    for _ in range(MAX_CURRENT_ATTEMPTS):
        try:
            raw, tag = store.get_tagged(location)
        except ObjectNotFound:
            try:
                store.put(location, body, JSON_TYPE, if_absent=True)
                return True
            except WriteConflict:
                continue
        current = _json(raw)
        if not supersedes(
            version, current.get("version_ts") if isinstance(current, dict) else None
        ):
            return False
        try:
            store.put(location, body, JSON_TYPE, if_tag=tag)
            return True
        except WriteConflict:
            continue
    raise RuntimeError(f"{location.uri} kept changing: not updated")


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
