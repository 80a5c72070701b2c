"""The event recorder on both databases: once-only opens and unsubscribes, a bounded buffer."""

import pytest
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.exc import OperationalError

from steadymail.clock import SystemClock
from steadymail.store.schema import tracking_events
from steadymail.tracking.events import EVENTS_DROPPED, EventRecorder, Recorded
from steadymail.tracking.tokens import Kind, TokenData

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/130.0"
OPEN = TokenData(Kind.OPEN, 1, 7)
UNSUB = TokenData(Kind.UNSUBSCRIBE, 1, 7)


def recorder(engine: Engine, cap: int = 1000) -> EventRecorder:
    return EventRecorder(engine, SystemClock(), b"k", 0.0, 3600.0, max_pending=cap)


def kinds(engine: Engine) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(select(tracking_events.c.kind, tracking_events.c.machine))
        return sorted((r.kind, r.machine) for r in rows)


def test_repeated_opens_and_unsubscribes_are_written_once(engine: Engine) -> None:
    rec = recorder(engine)
    assert rec.record(OPEN, "GET", BROWSER, "1.2.3.4") == Recorded.QUEUED
    assert rec.record(OPEN, "GET", BROWSER, "1.2.3.5") == Recorded.REPEAT
    assert rec.record(OPEN, "GET", "Mozilla/5.0", "") == Recorded.QUEUED  # Apple's proxy
    assert not rec.already(UNSUB)
    assert rec.record(UNSUB, "POST", BROWSER, "") == Recorded.QUEUED
    assert rec.already(UNSUB) and rec.record(UNSUB, "POST", BROWSER, "") == Recorded.REPEAT
    for _ in range(3):
        assert rec.record(TokenData(Kind.CLICK, 1, 7, 0, "https://a.example/"), "GET", BROWSER, "")
    assert rec.flush() == 6
    # Another process (or this one after a restart) knows nothing: the unique index keeps one.
    other = recorder(engine)
    other.record(OPEN, "GET", BROWSER, "")
    other.record(UNSUB, "POST", BROWSER, "")
    other.flush()
    assert kinds(engine) == [("click", 0)] * 3 + [("open", 0), ("open", 1), ("unsubscribe", 0)]


def test_the_buffer_is_bounded_and_drops_are_counted(engine: Engine) -> None:
    rec = recorder(engine, cap=5)
    before = EVENTS_DROPPED.labels("click")._value.get()
    got = [
        rec.record(TokenData(Kind.CLICK, 1, i, 0, "https://a.example/"), "GET", BROWSER, "")
        for i in range(20)
    ]
    assert got == [Recorded.QUEUED] * 5 + [Recorded.DROPPED] * 15
    assert rec.pending == 5 and rec.dropped == 15
    assert EVENTS_DROPPED.labels("click")._value.get() - before == 15
    assert rec.flush() == 5 and rec.pending == 0


def test_a_failing_database_keeps_at_most_the_cap() -> None:
    broken = create_engine("sqlite:////nonexistent-dir/x.db")
    rec = recorder(broken, cap=4)
    for i in range(4):
        rec.record(TokenData(Kind.CLICK, 1, i, 0, "https://a.example/"), "GET", BROWSER, "")
    with pytest.raises(OperationalError):
        rec.flush()
    # Kept for the next try, and new events still do not grow it past the cap.
    assert rec.pending == 4
    assert rec.record(OPEN, "GET", BROWSER, "") == Recorded.DROPPED
    assert rec.pending == 4
