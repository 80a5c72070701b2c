"""A wall-clock deadline for CPU-bound work in the calling thread (a render, a rewrite).

Templates compile to Python bytecode, so an exception raised asynchronously in the thread
running one lands between two of its bytecodes and unwinds it like any other. Work stuck
inside one long C call only sees it when that call returns; the sandbox's size budgets keep
such calls short, and an async caller can add its own timeout on top (see the worker).
"""

import ctypes
import threading
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


def within(seconds: float, what: str, fn: Callable[[], T]) -> T:
    """Run ``fn()`` here; past ``seconds`` stop it and raise DeadlinePassed (a ValidationError)."""
    watch = _Watch(threading.get_ident())
    timer = threading.Timer(seconds, watch.fire)
    timer.daemon = True
    timer.start()
    try:
        try:
            return fn()
        finally:
            with watch.lock:
                watch.done = True
            timer.cancel()
            if watch.fired:
                # Fired as fn returned: the exception may still be pending, undelivered.
                _raise_in(watch.thread_id, None)
    except _Stop:
        raise DeadlinePassed(f"{what} took longer than {seconds:g}s") from None
