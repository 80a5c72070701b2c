"""The per-message deadline: work past it is stopped in its own thread."""

import pytest

from steadymail.sending.deadline import DeadlinePassed, within


def spin() -> int:
    n = 0
    while True:
        n += 1


def test_returns_what_the_work_returns() -> None:
    assert within(5.0, "adding", lambda: 1 + 1) == 2


def test_stops_pure_python_work_past_the_deadline() -> None:
    with pytest.raises(DeadlinePassed, match=r"spinning took longer than 0\.2s"):
        within(0.2, "spinning", spin)
    # The thread is usable again afterwards: nothing pending is left to land later.
    assert within(5.0, "adding", lambda: 2 + 2) == 4


def test_the_works_own_errors_pass_through() -> None:
    class Crash(BaseException):
        pass

    def crash() -> None:
        raise Crash("drill")

    with pytest.raises(Crash):
        within(5.0, "crashing", crash)
    with pytest.raises(ZeroDivisionError):
        within(5.0, "dividing", lambda: 1 / 0)
