"""Client side of the shared limits: grants from the DB, spent locally.

A limit is a number of sends per window (a second for a relay's or a destination domain's rate,
a day for a relay's warm-up cap) shared by every worker of the region through one row per key
(store/ratelimit.py). Workers take grants of a few sends at a time, so the database sees one
write per grant; unspent grants die with their window, so no worker can hoard a burst.
"""

import asyncio
from collections.abc import Callable

from steadymail.clock import Clock

# take(key, limit, want, now, period) -> granted (None: the row is locked this moment); the
# store's ratelimit.take bound to an engine.
TakeTokens = Callable[[str, int, int, float, float], int | None]
# A take that finds the window row locked is tried again this often, this many times, then the
# window counts as spent for now: another worker holds the row (or is frozen holding it).
_TRIES, _RETRY = 20, 0.005


class WindowThrottle:
    """`limit` sends per `period` seconds for `key`, across the region. `limit` may depend on
    the window (a warm-up cap grows by the day); 0 or less means unlimited."""

    def __init__(
        self,
        key: str,
        limit: int | Callable[[float], int],
        take: TakeTokens,
        clock: Clock,
        period: float = 1.0,
    ) -> None:
        self._key, self._take, self._clock, self._period = key, take, clock, period
        self._limit = limit if callable(limit) else (lambda _now, n=limit: n)
        self._window = -1
        self._tokens = 0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until one more send is allowed."""
        while not await self.try_acquire():
            now = self._clock.now()
            next_window = (int(now // self._period) + 1) * self._period
            await asyncio.sleep(max(0.005, next_window - self._clock.now()))

    async def try_acquire(self) -> bool:
        """Take one send if the current window allows it; False (at once) if it is spent."""
        now = self._clock.now()
        limit = self._limit(now)
        if limit <= 0:
            return True
        async with self._lock:
            window = int(now // self._period)
            if window != self._window:
                self._window, self._tokens = window, 0
            if self._tokens <= 0:
                want = max(1, min(10, limit // 4))
                self._tokens = await self._grant(limit, want, now)
            if self._tokens <= 0:
                return False
            self._tokens -= 1
            return True

    def next_window_at(self, now: float) -> float:
        return (int(now // self._period) + 1) * self._period

    async def _grant(self, limit: int, want: int, now: float) -> int:
        for _ in range(_TRIES):
            grant = await asyncio.to_thread(self._take, self._key, limit, want, now, self._period)
            if grant is not None:
                return grant
            # Try again soon rather than wait on the holder's lock.
            await asyncio.sleep(_RETRY)
        return 0


class DomainThrottles:
    """Per-destination-domain rates (`domain_rate_limits`, e.g. gmail.com: 50 a second) shared
    by every worker; a domain without a limit passes at once."""

    def __init__(self, limits: dict[str, int], take: TakeTokens, clock: Clock) -> None:
        self._throttles = {
            d.lower(): WindowThrottle(f"domain:{d.lower()}", n, take, clock)
            for d, n in limits.items()
        }

    async def acquire(self, recipient: str) -> None:
        throttle = self._throttles.get(recipient.rpartition("@")[2].lower())
        if throttle is not None:
            await throttle.acquire()
