"""Shared send limits on the worker's side: a locked window row is tried again, never waited
on; a day's warm-up cap says "spent" at once and grants again the next day; per-domain rates
apply to their domain only."""

import asyncio
from datetime import UTC, date, datetime

import pytest

from steadymail.clock import FakeClock
from steadymail.config import RelaySettings
from steadymail.sending.throttle import DomainThrottles, WindowThrottle


def test_a_locked_window_is_tried_again_until_it_grants() -> None:
    answers: list[int | None] = [None, None, 3]
    calls: list[tuple[str, int, int, float]] = []

    def take(key: str, limit: int, want: int, now: float, period: float) -> int | None:
        calls.append((key, limit, want, period))
        return answers.pop(0)

    throttle = WindowThrottle("relay:25", 12, take, FakeClock(100.2))

    async def three() -> None:
        for _ in range(3):
            await throttle.acquire()

    asyncio.run(asyncio.wait_for(three(), 5))
    # Two tries found the row locked, the third granted 3: one grant served all three sends.
    assert calls == [("relay:25", 12, 3, 1.0)] * 3 and answers == []


class Window:
    """A store stand-in: `limit` per window of `period`, shared by everyone asking."""

    def __init__(self) -> None:
        self.used: dict[tuple[str, int], int] = {}

    def take(self, key: str, limit: int, want: int, now: float, period: float) -> int:
        k = (key, int(now // period))
        grant = max(0, min(want, limit - self.used.get(k, 0)))
        self.used[k] = self.used.get(k, 0) + grant
        return grant


def test_a_days_cap_is_spent_then_granted_again_the_next_day() -> None:
    clock = FakeClock(datetime(2026, 12, 1, 9, tzinfo=UTC).timestamp())
    store = Window()
    a = WindowThrottle("warmup:r", 5, store.take, clock, 86400.0)
    b = WindowThrottle("warmup:r", 5, store.take, clock, 86400.0)  # another worker

    async def tries(t: WindowThrottle, n: int) -> list[bool]:
        return [await t.try_acquire() for _ in range(n)]

    got = asyncio.run(tries(a, 3)) + asyncio.run(tries(b, 4))
    assert got.count(True) == 5 and got[-1] is False
    assert a.next_window_at(clock.now()) == datetime(2026, 12, 2, tzinfo=UTC).timestamp()
    clock.advance(86400)
    assert asyncio.run(tries(b, 1)) == [True]


def test_the_warmup_cap_grows_by_the_day_and_ends_with_the_schedule() -> None:
    relay = RelaySettings(warmup=[50, 100, 500], warmup_start=date(2026, 12, 1))
    day = datetime(2026, 12, 1, 12, tzinfo=UTC).timestamp()
    assert [relay.warmup_cap(day + d * 86400) for d in (-3, 0, 1, 2, 3, 30)] == [
        50,
        50,
        100,
        500,
        0,
        0,
    ]
    assert RelaySettings().warmup_cap(day) == 0
    with pytest.raises(ValueError, match="warmup_start"):
        RelaySettings(warmup=[10])
    with pytest.raises(ValueError):
        RelaySettings(warmup=[0], warmup_start=date(2026, 12, 1))


def test_domain_rates_apply_to_their_domain_only() -> None:
    store = Window()
    clock = FakeClock(1000.0)
    domains = DomainThrottles({"Gmail.com": 2}, store.take, clock)

    async def sends() -> None:
        for rcpt in ["a@gmail.com", "b@GMAIL.COM", "c@example.org", "d@example.org"]:
            await domains.acquire(rcpt)

    asyncio.run(asyncio.wait_for(sends(), 5))
    assert store.used == {("domain:gmail.com", 1000): 2}

    async def third() -> None:
        await domains.acquire("e@gmail.com")

    # The second's two are spent: the third waits for the next second.
    with pytest.raises(TimeoutError):
        asyncio.run(asyncio.wait_for(third(), 0.3))
