"""ISO-8601 durations of the freshness objectives (SPEC §9): parsed, bounded, written back.

Only the exact units are accepted (weeks, days, hours, minutes, seconds): a month or a year has
no fixed length, so `P1M` is refused rather than guessed. Pure, standard library only.
"""

from __future__ import annotations

import re
from datetime import timedelta

# SPEC §9: "from PT1S to P366D".
SHORTEST_OBJECTIVE = timedelta(seconds=1)
LONGEST_OBJECTIVE = timedelta(days=366)

_DURATION = re.compile(
    r"P(?:(?P<weeks>\d{1,4})W)?(?:(?P<days>\d{1,4})D)?"
    r"(?:T(?:(?P<hours>\d{1,6})H)?(?:(?P<minutes>\d{1,8})M)?(?:(?P<seconds>\d{1,10})S)?)?"
)
_MAX_TEXT = 64


class DurationError(ValueError):
    """Not an ISO-8601 duration this product accepts; the message says why."""


def parse_duration(
    text: object,
    *,
    shortest: timedelta = SHORTEST_OBJECTIVE,
    longest: timedelta = LONGEST_OBJECTIVE,
) -> timedelta:
    """`P1D`, `PT6H`, `P1DT12H`, `PT90M`, `P2W` … as a timedelta within [shortest, longest]."""
    if not isinstance(text, str) or len(text) > _MAX_TEXT:
        raise DurationError("must be an ISO-8601 duration such as PT6H or P1D")
    match = _DURATION.fullmatch(text.strip().upper())
    # "P" alone names no unit; a trailing "T" (PT, P1DT) opens a time part with none
    if match is None or text.strip().upper() == "P" or text.strip().upper().endswith("T"):
        raise DurationError(
            f"{text!r} is not an ISO-8601 duration of weeks, days, hours, minutes and seconds "
            "(such as PT6H, P1D or P1DT12H; months and years have no fixed length)"
        )
    parts = {name: int(value) for name, value in match.groupdict().items() if value}
    value = timedelta(**parts)
    if not shortest <= value <= longest:
        raise DurationError(
            f"{text!r} is out of range: from {format_duration(shortest)} "
            f"to {format_duration(longest)}"
        )
    return value


def format_duration(value: timedelta) -> str:
    """The shortest ISO-8601 text of a non-negative whole-second duration: PT0S, PT90S → PT1M30S."""
    seconds = int(value.total_seconds())
    if seconds < 0:
        raise ValueError("a duration of an objective is never negative")
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    date = f"{days}D" if days else ""
    time = "".join(
        f"{amount}{unit}"
        for amount, unit in ((hours, "H"), (minutes, "M"), (seconds, "S"))
        if amount
    )
    if not date and not time:
        return "PT0S"
    return f"P{date}" + (f"T{time}" if time else "")
