"""Worker processes that never outlive the process that started them.

`run_children` runs a function in one spawned process per argument tuple and collects the
results. Each child dies with its parent, however the parent ends (`SIGKILL` included):

- on Linux the kernel is asked (`prctl(PR_SET_PDEATHSIG, SIGKILL)`) to kill the child when
  its parent dies (strictly: when the parent's thread that started it ends, so call
  `run_children` from a thread that outlives the children, such as the main one); a parent
  that died before the request took effect is caught by comparing `os.getppid()` with the pid
  the parent gave;
- everywhere, a thread of the child watches a pipe from the parent, on which the parent never
  writes: it turns readable only when the parent's end closes, which the kernel does when the
  parent dies. That thread ends the child even while its main thread is blocked (a write to a
  pipe nobody reads, a query), so an orphan cannot hold database locks for long.

A child sends its result back only once its function has returned (after its last commit),
so a parent that stops reading can never leave a child blocked inside a transaction. A child
that ends without a result (killed, crashed) is reported as `ChildLost`, never waited for.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from typing import Any, TypeVar, cast

T = TypeVar("T")

# <linux/prctl.h>
PR_SET_PDEATHSIG = 1
# the exit status of a child whose parent is gone (as EX_SOFTWARE of sysexits.h)
EXIT_ORPHANED = 70


@dataclass(frozen=True, slots=True)
class ChildLost:
    """A child that ended without sending its result; `exitcode` as multiprocessing has it
    (negative: killed by that signal)."""

    exitcode: int | None


@dataclass(frozen=True, slots=True)
class _Child:
    process: SpawnProcess
    channel: Connection


def run_children(
    target: Callable[..., T], arguments: Sequence[tuple[Any, ...]]
) -> list[T | ChildLost]:
    """`target(*args)` in one spawned process per `args`; the results in the same order.

    `target` must be a module-level function (it is pickled by name) and its result picklable.
    """
    context = multiprocessing.get_context("spawn")
    children: list[_Child] = []
    try:
        for args in arguments:
            children.append(_start(context, target, args))
        return [_result_of(child) for child in children]
    except BaseException:  # interrupted (Ctrl-C): the children stop with us
        for child in children:
            child.process.terminate()
        raise
    finally:
        for child in children:
            child.process.join()
            child.channel.close()


def _start(
    context: multiprocessing.context.SpawnContext,
    target: Callable[..., T],
    args: tuple[Any, ...],
) -> _Child:
    ours, theirs = context.Pipe()
    process = context.Process(
        target=_child_main, args=(target, args, os.getpid(), theirs), daemon=True
    )
    process.start()
    # Only the child may hold its end: the pipe's closing is how it learns that we are gone.
    theirs.close()
    return _Child(process, ours)


def _result_of(child: _Child) -> T | ChildLost:
    try:
        result = child.channel.recv()
    except EOFError:  # it ended without a word
        child.process.join()
        return ChildLost(child.process.exitcode)
    return cast(T, result)


def _child_main(
    target: Callable[..., object], args: tuple[Any, ...], parent_pid: int, channel: Connection
) -> None:
    die_with_parent(parent_pid, channel)
    result = target(*args)
    channel.send(result)


def die_with_parent(parent_pid: int, lifeline: Connection) -> None:
    """End this process when its parent `parent_pid` ends (see the module docstring)."""
    _request_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the kernel knew to tell us
        os._exit(EXIT_ORPHANED)
    exit_when_parent_closes(lifeline)


def exit_when_parent_closes(lifeline: Connection) -> None:
    """The portable guard: a thread that ends the process once `lifeline` closes."""
    threading.Thread(
        target=_wait_for_close, args=(lifeline,), name="parent-lifeline", daemon=True
    ).start()


def _wait_for_close(lifeline: Connection) -> None:
    # The parent never writes on the lifeline: readable means its end has closed.
    with contextlib.suppress(OSError):
        lifeline.poll(None)
    os._exit(EXIT_ORPHANED)


def _request_parent_death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # no libc to ask: the lifeline thread still guards
        pass
