"""The structured log event names (SPEC §6.4), defined once in `domain/log_events.py` so the
worker applications, which may not import `application`, log the same vocabulary."""

from metrics_orchestrator.domain.log_events import *  # noqa: F403
