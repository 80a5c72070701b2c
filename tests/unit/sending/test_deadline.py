"""The per-message deadline: work past it is stopped in its own thread."""

import threading
import time

import pytest

from steadymail.sending.deadline import DeadlinePassed, within


def spin() -> int:
    n = 0
    while True:
        n += 1


def test_returns_what_the_work_returns() -> None:
    assert within(5.0, "adding", lambda: 1 + 1) == 2


def test_stops_pure_python_work_past_the_deadline() -> None:
    with pytest.raises(DeadlinePassed, match=r"spinning took more than 0\.2s of CPU time"):
        within(0.2, "spinning", spin)
    # The thread is usable again afterwards: nothing pending is left to land later.
    assert within(5.0, "adding", lambda: 2 + 2) == 4


def test_time_the_work_did_not_run_does_not_count() -> None:
    """A frozen or starved process runs none of its work: only CPU time counts against the
    deadline. (Sleeping here is the thing under test: 0.6 s of wall time, almost no CPU.)"""
    spent = 0.0

    def mostly_waiting() -> str:
        nonlocal spent
        start = time.monotonic()
        time.sleep(0.6)
        spent = time.monotonic() - start
        return "done"

    assert within(0.2, "waiting", mostly_waiting) == "done"
    assert spent >= 0.6  # it did outlive its budget on the wall clock


def test_the_works_own_errors_pass_through() -> None:
    class Crash(BaseException):
        pass

    def crash() -> None:
        raise Crash("drill")

    with pytest.raises(Crash):
        within(5.0, "crashing", crash)
    with pytest.raises(ZeroDivisionError):
        within(5.0, "dividing", lambda: 1 / 0)


def test_deadlines_in_many_threads_stop_only_their_own_work() -> None:
    results: dict[int, str] = {}

    def run(i: int) -> None:
        try:
            if i % 2:
                results[i] = str(within(5.0, "adding", lambda: i + 1))
            else:
                within(0.1 + i / 100, f"spin {i}", spin)
        except DeadlinePassed as e:
            results[i] = str(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {
        i: (str(i + 1) if i % 2 else f"spin {i} took more than {0.1 + i / 100:g}s of CPU time")
        for i in range(8)
    }
