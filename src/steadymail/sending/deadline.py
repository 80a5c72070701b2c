"""A deadline for CPU-bound work in the calling thread (a render, a rewrite), counted in the
CPU time that thread used.

CPU time, not wall-clock time: the deadline exists to stop runaway work, and a process that is
frozen (SIGSTOP, a paused VM, a long stop of the world) or starved of CPU runs none. Counted
on the wall clock, every render in flight when a worker froze failed on thaw, which lost a
message to a pause (`tests/e2e/test_any_supervisor.py`, every worker frozen).

Templates compile to Python bytecode, so an exception raised asynchronously in the thread
running one lands between two of its bytecodes and unwinds it like any other. Work stuck
inside one long C call only sees it when that call returns; the sandbox's size budgets keep
such calls short, and an async caller can add its own timeout on top (see the worker).
"""

import ctypes
import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from steadymail.errors import ValidationError

T = TypeVar("T")

# Per message: render, link rewriting, MIME and DKIM together.
RENDER_SECONDS = 2.0


class DeadlinePassed(ValidationError):
    """The work did not finish within its deadline."""


class _Stop(BaseException):
    """Raised inside the late thread: a BaseException so no ``except Exception`` swallows it."""


def _raise_in(thread_id: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None
    )


class Running:
    """The CPU time the thread running watched work has used since it started it: readable
    from any thread (the worker's event loop asks it, for the work's outer bound)."""

    def __init__(self) -> None:
        self._clock: int | None = None
        self._start = 0.0

    def begin(self) -> None:
        """Called by the working thread itself, as the work starts."""
        self._clock = time.pthread_getcpuclockid(threading.get_ident())
        self._start = time.clock_gettime(self._clock)

    def used(self) -> float:
        """CPU seconds used so far (0 before the work started or once its thread is gone)."""
        if self._clock is None:
            return 0.0
        try:
            return time.clock_gettime(self._clock) - self._start
        except OSError:  # the thread ended: its clock is gone with it
            return 0.0


class _Watch:
    def __init__(self, thread_id: int, seconds: float, running: Running) -> None:
        self.thread_id = thread_id
        self.seconds = seconds
        self.running = running
        self.lock = threading.Lock()
        self.done = False
        self.fired = False

    def left(self) -> float:
        """CPU seconds of its budget the work has not used yet."""
        return self.seconds - self.running.used()

    def fire(self) -> None:
        with self.lock:
            if self.done:
                return
            self.fired = True
            _raise_in(self.thread_id, _Stop)


class _Watchdog:
    """One thread for every deadline of the process: a thread per call would cost more than
    many renders do."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Watch]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, watch: _Watch) -> None:
        with self._cond:
            self._push(watch.seconds, watch)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="deadlines", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                left = self._heap[0][0] - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                watch = heapq.heappop(self._heap)[2]
                # A thread cannot use more CPU than wall time: it is looked at again no sooner
                # than its budget's rest could be gone.
                rest = watch.left()
                if rest > 0:
                    self._push(rest, watch)
                else:
                    watch.fire()

    def _push(self, seconds: float, watch: _Watch) -> None:
        heapq.heappush(self._heap, (time.monotonic() + seconds, next(self._seq), watch))


_watchdog = _Watchdog()


def _fresh_watchdog() -> None:
    # A forked child has none of its parent's threads, and maybe a lock the watchdog held.
    global _watchdog
    _watchdog = _Watchdog()


os.register_at_fork(after_in_child=_fresh_watchdog)


def within(seconds: float, what: str, fn: Callable[[], T], running: Running | None = None) -> T:
    """Run ``fn()`` here; once it has used ``seconds`` of this thread's CPU time, stop it and
    raise DeadlinePassed (a ValidationError). ``running``, if given, is how another thread can
    see that use."""
    running = running or Running()
    running.begin()
    watch = _Watch(threading.get_ident(), seconds, running)
    _watchdog.watch(watch)
    try:
        try:
            return fn()
        finally:
            with watch.lock:
                watch.done = True
            if watch.fired:
                # Fired as fn returned: the exception may still be pending, undelivered.
                _raise_in(watch.thread_id, None)
    except _Stop:
        raise DeadlinePassed(f"{what} took more than {seconds:g}s of CPU time") from None
