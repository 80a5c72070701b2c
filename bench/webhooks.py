"""Event webhooks benchmark. Prints one figure a line:

  webhook_events_per_s        message-log events delivered by the dispatcher (fan-out from the
                              log, batches signed, POSTed, marked delivered) to a local receiver
  reference_events_per_s      the same batches, signed and POSTed by a bare httpx loop (no
                              database), to the same receiver, in this run
  webhook_ratio               webhook / reference
  webhook_signatures_bad      requests whose signature the receiver refused (must be 0)
  down_s                      how long the receiver answered 503 while events kept coming
  down_events / down_delivered / down_lost   made during the outage, delivered, missing (0)
  down_recovered_s            from the receiver's return to the last event delivered

Usage: python bench/webhooks.py [--events 50000] [--down 600] [--database-url URL]
The outage uses webhook_retry_max = 60 s (the default is 600 s: the same delivery, later).
"""

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import Engine, insert

from steadymail.clock import SystemClock
from steadymail.config import Settings
from steadymail.domain.webhooks import new_secret, sign
from steadymail.services import webhooks
from steadymail.store.db import make_engine, migrate
from steadymail.store.schema import message_events, messages, sends
from steadymail.store.webhooks import Batch
from steadymail.webhooks.dispatcher import Dispatcher, body_of

sys.path.insert(0, str(Path(__file__).parent))
from net import free_port

CLOCK = SystemClock()


def receiver(port: int, secret: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "webhook_receiver.py"), str(port), secret]
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/count", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the receiver did not start")


def count(port: int) -> dict[str, int]:
    counts: dict[str, int] = httpx.get(f"http://127.0.0.1:{port}/count", timeout=5).json()
    return counts


def messages_of(engine: Engine, n: int) -> list[int]:
    now = CLOCK.now()
    with engine.begin() as conn:
        send_id = conn.execute(
            insert(sends)
            .values(
                name="bench",
                kind="campaign",
                state="completed",
                from_addr="a@example.com",
                created_at=now,
            )
            .returning(sends.c.id)
        ).scalar_one()
        conn.execute(
            insert(messages),
            [
                {
                    "send_id": send_id,
                    "batch_seq": i // 100,
                    "email": f"u{i}@example.com",
                    "state": "sent",
                }
                for i in range(n)
            ],
        )
    with engine.connect() as conn:
        return [
            int(r[0])
            for r in conn.exec_driver_sql(
                f"SELECT id FROM messages WHERE send_id = {int(send_id)} ORDER BY id"
            )
        ]


def events(engine: Engine, ids: list[int], send_id: int = 1) -> None:
    now = CLOCK.now()
    with engine.begin() as conn:
        conn.execute(
            insert(message_events),
            [
                {
                    "message_id": i,
                    "send_id": send_id,
                    "at": now,
                    "kind": "sent",
                    "smtp_code": 250,
                    "detail": "",
                }
                for i in ids
            ],
        )


async def run_until(dispatcher: Dispatcher, done: object, timeout: float) -> None:
    task = asyncio.create_task(dispatcher.run())
    deadline = time.monotonic() + timeout
    try:
        while not done() and time.monotonic() < deadline:  # type: ignore[operator]
            await asyncio.sleep(0.05)
    finally:
        dispatcher.stop()
        await task


def reference(port: int, secret: str, n: int, size: int) -> float:
    """The same traffic without the platform: signed batches POSTed one after the other."""
    payloads = [
        {"id": f"ref_{i}", "type": "sent", "timestamp": "", "data": {"message_id": i}}
        for i in range(n)
    ]

    async def go() -> float:
        async with httpx.AsyncClient() as client:
            start = time.perf_counter()
            for i in range(0, n, size):
                batch = Batch(f"msg_ref{i}", 0, 0, 0.0, list(payloads[i : i + size]))
                body = body_of(batch, CLOCK.now())
                stamp = int(time.time())
                r = await client.post(
                    f"http://127.0.0.1:{port}/hooks",
                    content=body,
                    headers={
                        "webhook-id": batch.id,
                        "webhook-timestamp": str(stamp),
                        "webhook-signature": sign(secret, batch.id, stamp, body),
                        "content-type": "application/json",
                    },
                )
                r.raise_for_status()
            return n / (time.perf_counter() - start)

    return asyncio.run(go())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50000)
    ap.add_argument("--down", type=float, default=600.0)
    ap.add_argument("--database-url", default="")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sm-bench-webhooks-"))
    url = args.database_url or f"sqlite:///{tmp / 'region.db'}"
    migrate(url)
    engine = make_engine(url)
    settings = Settings(
        data_dir=tmp,
        database_url=url,
        webhook_allow_private=True,
        webhook_poll=0.05,
        webhook_retry_base=1.0,
        webhook_retry_max=60.0,
    )
    secret = new_secret()
    port = free_port()
    proc = receiver(port, secret)
    try:
        ids = messages_of(engine, args.events)
        webhooks.add(
            engine, CLOCK, settings, f"http://127.0.0.1:{port}/hooks", ["sent"], secret=secret
        )
        events(engine, ids)
        start = time.perf_counter()
        asyncio.run(
            run_until(
                Dispatcher(engine, settings, CLOCK),
                lambda: count(port)["events"] >= args.events,
                600,
            )
        )
        ours = count(port)["events"] / (time.perf_counter() - start)
        ref = reference(port, secret, args.events, settings.webhook_batch_size)
        print(f"webhook_events_per_s {ours:.0f}")
        print(f"reference_events_per_s {ref:.0f}")
        print(f"webhook_ratio {ours / ref:.3f}")
        print(f"webhook_signatures_bad {count(port)['bad']}", flush=True)

        # The outage: events keep coming while the receiver refuses everything.
        before = count(port)["ids"]
        httpx.post(f"http://127.0.0.1:{port}/down?seconds={args.down}", timeout=5)
        made = min(args.events, 10000)
        step = max(1, made // 20)
        dispatcher = Dispatcher(engine, settings, CLOCK)
        up_at: list[float] = []

        async def outage() -> None:
            task = asyncio.create_task(dispatcher.run())
            t0 = time.monotonic()
            for i in range(0, made, step):  # spread over the outage
                await asyncio.to_thread(events, engine, ids[i : i + step])
                await asyncio.sleep(args.down / 20)
            await asyncio.sleep(max(0.0, args.down - (time.monotonic() - t0)))
            up_at.append(time.monotonic())
            deadline = time.monotonic() + args.down + 600
            while count(port)["ids"] < before + made and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            up_at.append(time.monotonic())
            dispatcher.stop()
            await task

        asyncio.run(outage())
        got = count(port)["ids"] - before
        print(f"down_s {args.down:.0f}")
        print(f"down_events {made}")
        print(f"down_delivered {got}")
        print(f"down_lost {made - got}")
        print(f"down_recovered_s {up_at[1] - up_at[0]:.1f}")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
