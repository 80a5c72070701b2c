"""The freeze drill: freeze a worker at many points, inside and outside transactions.

Two real worker processes share a send; worker a is stopped (SIGSTOP, as a long GC pause or a
paused VM would stop it) again and again, each time at another point: between steps of its loop,
or right after a statement inside a transaction, holding that statement's locks. Each time, the
other worker must take over every batch a held within the lease TTL plus 2 s and keep sending;
then a is thawed (its stale writes are fenced off) and frozen elsewhere. At the end every
message was sent, and duplicates are no more than the queue counted.

On SQLite the database has one writer: a process stopped inside a write transaction holds
everyone. There the bound is the peer watch, which kills a peer stopped holding the write lock
for `sqlite_frozen_writer_grace` (the supervisor restarts it; here the test does).
"""

import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from steadymail.store import sends
from tests.conftest import Recorder
from tests.e2e.lease_observer import Observer
from tests.helpers import text_campaign, wait_until

pytestmark = pytest.mark.e2e

TTL = 0.75
# Every point is frozen this many times: on PostgreSQL, the store many workers share, twice
# (28 freezes), each kind of point in two states of the queue; on SQLite, whose one writer
# turns most inside-a-transaction freezes into the peer watch's kill, once (16 freezes).
ROUNDS = {"postgresql": 2, "sqlite": 1}
OUTSIDE = ["claimed", "loaded", "window", "delivered", "released", "idle", "beat"]
# Statements inside a worker's transactions: the claim, the fence's lock, in-flight and result
# writes, the progress mark, the heartbeat's lease extension and instance beat, the release.
INSIDE = [
    "state = 'leased'",
    "FROM batches",
    "UPDATE messages SET state",
    "progress_at",
    "UPDATE batches SET lease_expires_at",
    "UPDATE instances",
    "FROM messages",
]


def _points(dialect: str) -> list[str]:
    inside = [f"sql:{s}" for s in INSIDE] + (["sql:BEGIN IMMEDIATE"] if dialect == "sqlite" else [])
    outside = [f"at:{p}" for p in OUTSIDE]
    # Alternate, so both kinds get their share.
    out = []
    for i in range(max(len(inside), len(outside))):
        out += [outside[i % len(outside)], inside[i % len(inside)]]
    return out


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    return stat[stat.rfind(")") + 2 :].split()[0]


def test_a_worker_frozen_anywhere_is_taken_over_within_a_lease(
    engine: Engine,
    db_url: str,
    smtp_server: tuple[Recorder, int],
    settings_for: Any,
    workers_for: Any,
    tmp_path: Path,
) -> None:
    recorder, port = smtp_server
    recorder.data_delay = 0.02  # a relay's latency: the send lasts through the drill
    # Sends of 1000, topped up as the drill goes: enough queued for b, a short tail after it.
    total = 1000
    cfg = settings_for(db_url, port, batch_size=50)
    send_ids = [text_campaign(engine, cfg, total, "drill0")]
    orders = tmp_path / "freeze"
    workers = workers_for(
        db_url,
        port,
        lease_ttl=TTL,
        batch_size=50,
        worker_concurrency=2,
        inflight_window=4,
        poll_interval=0.05,
        peer_check_interval=0.5,
        fault_freeze_dir=orders,
    )
    a = workers.start("a")
    workers.start("b")
    wait_until(lambda: recorder.count() >= 100, timeout=60)
    seen = Observer(engine)
    points = _points(engine.dialect.name)
    freezes = ROUNDS[engine.dialect.name] * len(points)
    takeovers: list[float] = []
    missed: Counter[str] = Counter()
    killed = 0
    i = 0
    while len(takeovers) < freezes:
        assert i < 4 * freezes, f"only {len(takeovers)} freezes reached; missed {missed}"
        point = points[i % len(points)]
        i += 1
        if recorder.count() > len(send_ids) * total - 700:  # keep work queued for b
            name = f"drill{len(send_ids)}"
            send_ids.append(text_campaign(engine, cfg, total, name))
        order = orders / str(a.pid)
        order.write_text(point)
        try:
            wait_until(lambda p=a.pid: _state(p) == "T", 5, "a frozen", interval=0.005)
        except AssertionError:
            order.unlink(missing_ok=True)
            if _state(a.pid) != "T":  # it never reached that point in 5 s: try the next one
                missed[point] += 1
                continue
        frozen_at = time.monotonic()
        owner = seen.instance_of(a.pid)
        assert owner is not None
        held = seen.held_by(owner)
        before = recorder.count()

        def taken_over(held: dict[int, int] = held, before: int = before) -> bool:
            now = seen.epochs(list(held))
            return all(now.get(b, e) > e for b, e in held.items()) and recorder.count() > before

        try:
            wait_until(taken_over, timeout=TTL + 2, interval=0.02)
        except AssertionError:
            raise AssertionError(
                f"freeze {len(takeovers) + 1} at {point}: held {held}, now "
                f"{seen.epochs(list(held))}, sent {before} -> {recorder.count()}, frozen at "
                f"{time.time() - (time.monotonic() - frozen_at):.3f}, now {time.time():.3f}\n"
                + repr(
                    seen.rows(
                        "SELECT id, state, lease_owner, lease_expires_at, lease_epoch FROM batches"
                        " WHERE state = 'leased'"
                    )
                )
                + "\n"
                + (
                    repr(
                        seen.rows(
                            "SELECT pid, state, wait_event_type, left(query, 90),"
                            " extract(epoch from now() - state_change) FROM pg_stat_activity"
                            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                        )
                    )
                    if engine.dialect.name == "postgresql"
                    else ""
                )
                + "\n"
                + workers.logs()[-3000:]
            ) from None
        takeovers.append(time.monotonic() - frozen_at)
        if a.poll() is not None:  # SQLite: the peer watch killed it; restart, as systemd would
            killed += 1
            a = workers.start("a")
            wait_until(lambda p=a.pid: seen.instance_of(p) is not None, timeout=30)
        else:
            workers.kill("a", signal.SIGCONT)
            wait_until(lambda p=a.pid: _state(p) != "T", 5, "a thawed", interval=0.005)
        # No pause here: the next order takes effect only where a's loop reaches that point.

    drilled = time.monotonic()
    for sid in send_ids:
        wait_until(lambda s=sid: sends.get_send(engine, s).state == "completed", timeout=240)
    tail = time.monotonic() - drilled
    distinct, dups = recorder.copies()
    counted = sum(sends.get_send(engine, s).resent_after_crash for s in send_ids)
    takeovers.sort()
    print(
        f"freeze drill ({engine.dialect.name}): {len(takeovers)} freezes over {len(points)} "
        f"points, takeover median {takeovers[len(takeovers) // 2]:.2f}s max {takeovers[-1]:.2f}s "
        f"(bound {TTL + 2:.1f}s); {killed} frozen writers killed; {dups} duplicates, "
        f"{counted} counted; not reached: {dict(missed)}; {len(send_ids)} sends, "
        f"{tail:.0f}s to finish"
    )
    assert distinct == len(send_ids) * total
    assert dups <= counted
    for sid in send_ids:
        assert sends.progress(engine, sid).counts == {"sent": total}
    # Only a process stopped inside a SQLite write transaction is ever killed.
    if engine.dialect.name != "sqlite":
        assert killed == 0
    assert workers.procs["b"].poll() is None, "b died"
    assert "event=lease_lost" in workers.logs()  # a thawed holder's stale writes were fenced
