"""Child processes that die with their parent, even a parent that is SIGKILLed or crashes.

Every child that sllm starts goes through `popen`, `run` or `create_subprocess_exec`; so
do the tests' long-lived children (the short commands they wait for on the spot, such
as `--help` or ruff, use subprocess.run).

Linux: between fork and exec the child asks the kernel for SIGKILL when its parent dies
(prctl PR_SET_PDEATHSIG). The kernel sends it when the parent *thread* that forked ends,
not the parent process, so `popen` forks every child on one thread that lives as long as
the process: a child started from asyncio.to_thread or a thread pool would otherwise be
killed as soon as that thread is done. asyncio forks on the event loop's thread and has no
way around it, so `create_subprocess_exec`'s child dies with that thread: the main
thread under asyncio.run, which ends only with the process.

Elsewhere (macOS has no such call) nothing is added: children are stopped by their
owners' stop paths (terminate on exit, Ctrl-C reaching the whole process group), and a
SIGKILLed parent leaves them running.

Why preexec_fn although Python warns it is unsafe with threads: the danger is code in the
forked child waiting on a lock that another thread held at the fork. Ours calls one C
function resolved before the fork, then os.getppid and os._exit: no import, no lock.
start_new_session / process_group are no alternative: they let a parent kill a whole
group when it gets the chance, and a SIGKILLed parent gets none (a new group would also
take the child out of the terminal's Ctrl-C).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from queue import SimpleQueue
from typing import Any, TypeVar

_T = TypeVar("_T")

_PR_SET_PDEATHSIG = 1
# Resolved once here: looking a symbol up in the forked child could take the loader's lock.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def _die_with_parent() -> Callable[[], None] | None:
    """The preexec_fn for a child of this process (None where there is no prctl)."""
    if _prctl is None:
        return None
    prctl = _prctl
    parent = os.getpid()
    kill = int(signal.SIGKILL)

    def in_child() -> None:
        if prctl(_PR_SET_PDEATHSIG, kill) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        # The parent may have died between fork and prctl, with no one left to signal us.
        # (Its forking thread cannot have ended: Popen holds it until our exec.)
        if os.getppid() != parent:
            os._exit(1)

    return in_child


class _Spawner:
    """The one thread that forks every child; a daemon, blocked on its queue until the
    process exits, so it never ends before the process does."""

    def __init__(self) -> None:
        self._jobs: SimpleQueue[Callable[[], None]] = SimpleQueue()
        threading.Thread(target=self._serve, name="sllm-children", daemon=True).start()

    def _serve(self) -> None:
        while True:
            self._jobs.get()()

    def call(self, function: Callable[[], _T]) -> _T:
        future: Future[_T] = Future()

        def job() -> None:
            try:
                future.set_result(function())
            except BaseException as error:
                future.set_exception(error)

        self._jobs.put(job)
        return future.result()


_spawner: _Spawner | None = None
_spawner_lock = threading.Lock()


def _the_spawner() -> _Spawner:
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = _Spawner()
        return _spawner


def popen(args: Sequence[str], **options: Any) -> subprocess.Popen[Any]:
    """subprocess.Popen(args, **options), from any thread, for a child that dies with this
    process."""
    preexec_fn = _die_with_parent()
    return _the_spawner().call(lambda: subprocess.Popen(args, preexec_fn=preexec_fn, **options))


async def create_subprocess_exec(
    program: str, *args: str, **options: Any
) -> asyncio.subprocess.Process:
    """asyncio.create_subprocess_exec for a child that dies with this process (see the
    module's note: with the event loop's thread, in fact)."""
    return await asyncio.create_subprocess_exec(
        program, *args, preexec_fn=_die_with_parent(), **options
    )


def run(
    args: Sequence[str], *, input: str | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """subprocess.run(args, input=..., capture_output=True, text=True, timeout=...) for a
    child that dies with this process; one that outlives `timeout` is killed, then
    TimeoutExpired raised, as subprocess.run does."""
    with popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            stdout, stderr = process.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)
