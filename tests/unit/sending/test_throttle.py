"""The relay throttle: a window row locked by another worker is tried again, never waited on."""

import asyncio

from steadymail.clock import FakeClock
from steadymail.sending.throttle import RelayThrottle


def test_a_locked_window_is_tried_again_until_it_grants() -> None:
    answers: list[int | None] = [None, None, 3]
    calls: list[tuple[str, int, int]] = []

    def take(relay: str, limit: int, want: int, now: float) -> int | None:
        calls.append((relay, limit, want))
        return answers.pop(0)

    throttle = RelayThrottle("relay:25", 12, take, FakeClock(100.2))

    async def three() -> None:
        for _ in range(3):
            await throttle.acquire()

    asyncio.run(asyncio.wait_for(three(), 5))
    # Two tries found the row locked, the third granted 3: one grant served all three sends.
    assert calls == [("relay:25", 12, 3)] * 3 and answers == []
