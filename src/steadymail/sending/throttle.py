"""Client side of the shared per-relay rate limit: grants from the DB, spent locally."""

import asyncio
from collections.abc import Callable

from steadymail.clock import Clock

# take(relay, limit, want, now) -> granted (None: the row is locked this moment); the store's
# ratelimit.take bound to an engine.
TakeTokens = Callable[[str, int, int, float], int | None]
# A take that finds the window row locked is tried again this often, this many times, then the
# second counts as spent: another worker holds the row for a moment (or is frozen holding it).
_TRIES, _RETRY = 20, 0.005


class RelayThrottle:
    """Waits until the region-wide limit of one relay allows one more message."""

    def __init__(self, relay: str, limit: int, take: TakeTokens, clock: Clock) -> None:
        self._relay, self._limit, self._take, self._clock = relay, limit, take, clock
        self._window = -1
        self._tokens = 0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        if self._limit <= 0:
            return
        async with self._lock:
            while True:
                now = self._clock.now()
                if int(now) != self._window:
                    # Unspent tokens die with their second, so no worker can hoard a burst.
                    self._window, self._tokens = int(now), 0
                if self._tokens > 0:
                    self._tokens -= 1
                    return
                want = max(1, min(10, self._limit // 4))
                self._tokens = await self._grant(want, now)
                if self._tokens == 0:
                    await asyncio.sleep(max(0.005, int(now) + 1 - self._clock.now()))

    async def _grant(self, want: int, now: float) -> int:
        for _ in range(_TRIES):
            grant = await asyncio.to_thread(self._take, self._relay, self._limit, want, now)
            if grant is not None:
                return grant
            # Try again soon rather than wait on the holder's lock.
            await asyncio.sleep(_RETRY)
        return 0
