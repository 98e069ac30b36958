"""How a run goes wrong in the worker: the FAILURE kinds it reports (SPEC §4.2) and the two
ways a computation stops early."""

from __future__ import annotations

INPUT_READ_ERROR = "INPUT_READ_ERROR"
EXPRESSION_EVAL_ERROR = "EXPRESSION_EVAL_ERROR"
OUTPUT_WRITE_ERROR = "OUTPUT_WRITE_ERROR"
WORKER_ERROR = "WORKER_ERROR"


class RunFailed(Exception):
    """The run fails with `{kind}: {detail}`; `retryable=False` when it would fail the same way
    again (an input that does not exist, a series the manifest does not have)."""

    def __init__(self, kind: str, detail: str, *, retryable: bool = True) -> None:
        self.error = f"{kind}: {detail}"
        self.retryable = retryable
        super().__init__(self.error)


class Abandon(Exception):
    """A stop was requested before the output was written."""
