"""A wall-clock deadline for CPU-bound work in the calling thread (a render, a rewrite).

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


class _Watch:
    def __init__(self, thread_id: int) -> None:
        self.thread_id = thread_id
        self.lock = threading.Lock()
        self.done = False
        self.fired = False

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

    def watch(self, seconds: float, watch: _Watch) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + seconds, next(self._seq), watch))
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
                heapq.heappop(self._heap)[2].fire()


_watchdog = _Watchdog()


def _fresh_watchdog() -> None:
    # A forked child has none of its parent's threads, and maybe a lock the watchdog held.
    global _watchdog
    _watchdog = _Watchdog()


os.register_at_fork(after_in_child=_fresh_watchdog)


def within(seconds: float, what: str, fn: Callable[[], T]) -> T:
    """Run ``fn()`` here; past ``seconds`` stop it and raise DeadlinePassed (a ValidationError)."""
    watch = _Watch(threading.get_ident())
    _watchdog.watch(seconds, watch)
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
        raise DeadlinePassed(f"{what} took longer than {seconds:g}s") from None
