"""The worker's rescuer: takeovers side by side, up to its width; a crash in one ends it at once."""

import asyncio
import random
from types import SimpleNamespace
from typing import Any

import pytest

from steadymail.sending.worker import Worker, rescue_width
from steadymail.store.queue import Claim


class Crash(BaseException):
    """An injected crash (as RewriterCrash): not an Exception."""


def _worker(concurrency: int) -> Any:
    w: Any = Worker.__new__(Worker)
    w.settings = SimpleNamespace(worker_concurrency=concurrency, poll_interval=0.01)
    w._stopping = asyncio.Event()
    w.rng = random.Random(1)
    w.faults = SimpleNamespace(at=lambda _point: None)
    ids = iter(range(1, 1_000_000))

    async def claim(*, rescue: bool) -> Claim:
        assert rescue
        await asyncio.sleep(0)
        return Claim(next(ids), 1, 0, 1, "me", True)

    w._claim = claim
    return w


def test_takeovers_run_side_by_side_up_to_the_width_and_a_stop_lets_each_finish() -> None:
    async def go() -> None:
        w = _worker(concurrency=3)
        running, finished, most = set(), [], 0
        release = asyncio.Event()

        async def handle(claim: Claim) -> None:
            nonlocal most
            running.add(claim.batch_id)
            most = max(most, len(running))
            await release.wait()
            running.discard(claim.batch_id)
            finished.append(claim.batch_id)

        w._handle = handle
        task = asyncio.create_task(w._rescuer())
        await asyncio.sleep(0.05)
        assert most == rescue_width(3) == 4  # all taken at once, and no more
        w._stopping.set()
        release.set()
        await asyncio.wait_for(task, 1.0)
        assert sorted(finished) == [1, 2, 3, 4]  # none cancelled mid-batch

    asyncio.run(go())


def test_a_crash_in_one_takeover_ends_the_rescuer_at_once_as_itself() -> None:
    async def go() -> None:
        w = _worker(concurrency=2)
        cancelled = []

        async def handle(claim: Claim) -> None:
            if claim.batch_id == 2:
                await asyncio.sleep(0.02)
                raise Crash("the rewriter")
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.append(claim.batch_id)
                raise

        claims: list[int] = []
        hung: list[str] = []

        async def slow_claim(*, rescue: bool) -> Claim | None:
            # Two claims, then one that hangs (SQLite's busy timeout, say): the crash must not
            # wait for it.
            claims.append(1)
            if len(claims) > 2:
                try:
                    await asyncio.sleep(30)
                except asyncio.CancelledError:
                    hung.append("cancelled")
                    raise
            return Claim(len(claims), 1, 0, 1, "me", True)

        w._handle, w._claim = handle, slow_claim
        with pytest.raises(Crash, match="the rewriter"):
            await asyncio.wait_for(w._rescuer(), 10.0)
        assert hung == ["cancelled"]  # raised mid-claim, not after it
        assert cancelled == [1]  # the other takeover stopped with it

    asyncio.run(go())
