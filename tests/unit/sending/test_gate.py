"""The suspect gate: ordinary windows side by side, a suspect alone."""

import asyncio

from steadymail.sending.gate import SuspectGate


def test_a_suspect_runs_alone_and_ordinary_windows_wait_for_it() -> None:
    async def go() -> list[str]:
        gate, log = SuspectGate(), []

        async def ordinary(name: str) -> None:
            async with gate.ordinary():
                log.append(f"+{name}")
                await asyncio.sleep(0.01)
                log.append(f"-{name}")

        async def suspect() -> None:
            async with gate.alone():
                log.append("+s")
                await asyncio.sleep(0.01)
                log.append("-s")

        first = asyncio.create_task(ordinary("a"))
        await asyncio.sleep(0)
        waiting = asyncio.create_task(suspect())
        await asyncio.sleep(0)
        later = asyncio.create_task(ordinary("b"))  # held back while a suspect waits
        await asyncio.gather(first, waiting, later)
        return log

    assert asyncio.run(go()) == ["+a", "-a", "+s", "-s", "+b", "-b"]


def test_a_suspect_cancelled_while_waiting_does_not_block_ordinary_windows() -> None:
    async def go() -> None:
        gate = SuspectGate()
        held = asyncio.Event()
        release = asyncio.Event()

        async def ordinary() -> None:
            async with gate.ordinary():
                held.set()
                await release.wait()

        first = asyncio.create_task(ordinary())
        await held.wait()
        waiting = asyncio.create_task(gate.alone().__aenter__())
        await asyncio.sleep(0)
        waiting.cancel()  # the worker gave up on it (a takeover cancelled, say)
        await asyncio.gather(waiting, return_exceptions=True)
        release.set()
        await first

        async def later() -> None:
            async with gate.ordinary():
                pass

        await asyncio.wait_for(later(), 1.0)

    asyncio.run(go())
