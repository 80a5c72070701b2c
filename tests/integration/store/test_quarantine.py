"""On-call repairs of the queue, on SQLite and PostgreSQL: quarantined messages listed, released
and delivered by a real worker; stuck leases of dead workers requeued and taken over at once."""

import asyncio
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from steadymail.clock import FakeClock
from steadymail.domain.states import MessageState
from steadymail.errors import Conflict, NotFound, ValidationError
from steadymail.monitor.after_revert import RevertSweep, late_after_revert
from steadymail.services import flag_admin
from steadymail.services import quarantine as service
from steadymail.store import events, instances, queue, sends
from steadymail.store import quarantine as store
from steadymail.store.queue import Checkpoint, Result
from steadymail.store.schema import batches, messages
from steadymail.store.schema import instances as instance_rows
from tests.conftest import Recorder
from tests.helpers import CLOCK, make_campaign, run_worker_until, send_state, worker_for

T0 = 4_000_000_000.0  # after the real clock that created the send


def message_id(engine: Engine, send_id: int, email: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(messages.c.id).where(
                    messages.c.send_id == send_id, messages.c.email == email
                )
            ).scalar_one()
        )


def message(engine: Engine, mid: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(messages).where(messages.c.id == mid)).one()


def batch(engine: Engine, send_id: int, seq: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            select(batches).where(batches.c.send_id == send_id, batches.c.seq == seq)
        ).one()


def poison(engine: Engine, mid: int, crashes: int) -> None:
    """As if `crashes` holders had died with the message in flight."""
    with engine.begin() as conn:
        conn.execute(update(messages).where(messages.c.id == mid).values(crashes=crashes))


def test_a_quarantined_message_is_listed_released_and_delivered(
    engine: Engine, db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any
) -> None:
    recorder, port = smtp_server
    settings = settings_for(db_url, port, quarantine_after=3)
    send_id = make_campaign(engine, settings, 15)  # batches of 10: two
    bad = message_id(engine, send_id, "user12@example.com")
    good = message_id(engine, send_id, "user1@example.com")
    poison(engine, bad, 3)

    # The real worker quarantines it; the send completes with it as its only undelivered one.
    asyncio.run(
        run_worker_until(
            worker_for(settings, engine), lambda: send_state(engine, send_id) == "completed"
        )
    )
    assert message(engine, bad).state == MessageState.QUARANTINED.value
    assert "user12@example.com" not in {m.rcpt for m in recorder.messages}
    assert batch(engine, send_id, 1).state == "done"

    listed = service.listing(engine, send_id)
    assert [(q.id, q.send_id, q.email, q.crashes) for q in listed] == [
        (bad, send_id, "user12@example.com", 3)
    ]
    assert "3 workers died" in (listed[0].last_error or "")
    assert listed[0].quarantined_at is not None  # from the worker's message_quarantined event
    assert service.listing(engine) == listed
    with pytest.raises(NotFound, match="no send 424242"):
        service.listing(engine, 424242)

    # Refused whole: a message that is not quarantined is named, and nothing is released.
    with pytest.raises(Conflict, match=f"message {good} is sent"):
        service.release(engine, CLOCK, messages=[bad, good])
    with pytest.raises(NotFound, match="no message 999999"):
        service.release(engine, CLOCK, messages=[bad, 999999])
    assert message(engine, bad).state == MessageState.QUARANTINED.value
    assert send_state(engine, send_id) == "completed"

    before = CLOCK.now()
    assert service.release(engine, CLOCK, messages=[bad]) == {"released": 1, "messages": [bad]}
    m = message(engine, bad)
    assert (m.state, m.crashes, m.next_attempt_at) == ("queued", 0, None)
    b = batch(engine, send_id, 1)
    assert b.state == "pending" and before <= b.available_at <= CLOCK.now()
    assert batch(engine, send_id, 0).state == "done"
    s = sends.get_send(engine, send_id)
    assert s.state == "running" and s.completed_at is None
    assert s.last_progress_at >= before  # no stall counted for the time it sat completed
    assert service.listing(engine, send_id) == []
    with pytest.raises(Conflict, match=f"message {bad} is queued"):
        service.release(engine, CLOCK, messages=[bad])

    # A real worker delivers it and the send completes again, every address exactly once.
    asyncio.run(
        run_worker_until(
            worker_for(settings, engine), lambda: send_state(engine, send_id) == "completed"
        )
    )
    rcpts = Counter(m.rcpt for m in recorder.messages)
    assert len(rcpts) == 15 and max(rcpts.values()) == 1
    assert sends.progress(engine, send_id).counts == {"sent": 15}
    assert batch(engine, send_id, 1).state == "done"


def test_release_leaves_a_live_holder_alone_and_makes_a_waiting_batch_due(
    engine: Engine, settings_for: Any, db_url: str
) -> None:
    send_id = make_campaign(engine, settings_for(db_url, 25, batch_size=10), 10)
    a = queue.claim_batch(engine, "A", 10, T0)
    assert a is not None
    ids = [m.id for m in queue.load_messages(engine, a, T0)]
    why = "3 workers died while sending it"
    results = [
        Result(ids[0], MessageState.QUARANTINED, 0, T0, error=why),
        Result(ids[1], MessageState.DEFERRED, 1, T0, next_attempt_at=T0 + 600, smtp_code=451),
        *[Result(i, MessageState.SENT, 1, T0, sent_at=T0, smtp_code=250) for i in ids[2:]],
    ]
    queue.apply_checkpoints(engine, [Checkpoint(a, results=results)], T0)

    # A still holds the batch: the message is released, the lease is not touched.
    assert store.release(engine, [ids[0]], T0 + 1) == 1
    b = batch(engine, send_id, 0)
    assert (b.state, b.lease_owner, b.lease_epoch, b.lease_expires_at) == (
        "leased",
        "A",
        1,
        T0 + 10,
    )
    # A's release finds the message open: the batch is pending and due at once.
    assert queue.release_batch(engine, a, T0 + 2)
    b = batch(engine, send_id, 0)
    assert (b.state, b.available_at) == ("pending", T0 + 2)
    c = queue.claim_batch(engine, "B", 10, T0 + 2)
    assert c is not None and not c.reclaimed
    assert [m.id for m in queue.load_messages(engine, c, T0 + 2)] == [ids[0]]

    # Quarantined again; the batch now waits for the deferred message.
    again = Checkpoint(c, results=[Result(ids[0], MessageState.QUARANTINED, 0, T0, error=why)])
    queue.apply_checkpoints(engine, [again], T0 + 3)
    assert queue.release_batch(engine, c, T0 + 3)
    assert batch(engine, send_id, 0).available_at == T0 + 600
    assert store.release(engine, [ids[0]], T0 + 4) == 1
    assert batch(engine, send_id, 0).available_at == T0 + 4  # due now, not when the retry is
    assert send_state(engine, send_id) == "running"

    # A cancelled send's messages stay where they are.
    d = queue.claim_batch(engine, "C", 10, T0 + 5)
    assert d is not None
    queue.apply_checkpoints(
        engine,
        [Checkpoint(d, results=[Result(ids[0], MessageState.QUARANTINED, 0, T0, error=why)])],
        T0 + 5,
    )
    sends.change_state(engine, send_id, "cancel", T0 + 6)
    with pytest.raises(Conflict, match=f"send {send_id} is cancelled"):
        store.release(engine, [ids[0]], T0 + 7)
    assert message(engine, ids[0]).state == "quarantined"


def register(engine: Engine, instance_id: str, beat_at: float) -> None:
    instances.register(
        engine,
        instance_id=instance_id,
        service="worker",
        region="R1",
        host="elsewhere",
        pid=4242,
        version="test",
        now=beat_at,
        slot=instance_id,
    )


def test_requeue_hands_a_dead_workers_batches_to_a_live_worker_at_once(
    engine: Engine, db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any
) -> None:
    recorder, port = smtp_server
    settings = settings_for(db_url, port)  # dead after 3 beats of lease_ttl / 3: 3 s
    send_id = make_campaign(engine, settings, 25)  # batches of 10, 10 and 5
    now = CLOCK.now()
    register(engine, "stopped-1", now)
    register(engine, "silent-1", now - 600)  # no heartbeat for 10 minutes
    register(engine, "live-1", now)
    with engine.begin() as conn:
        conn.execute(
            update(instance_rows)
            .where(instance_rows.c.instance_id == "stopped-1")
            .values(exit_reason="signal SIGKILL")
        )
    # Ten-minute leases: without a requeue nobody could take these batches over before then.
    held = [
        queue.claim_batch(engine, owner, 600, now) for owner in ("stopped-1", "silent-1", "live-1")
    ]
    dead, silent, live = held
    assert dead is not None and silent is not None and live is not None
    for claim, inflight in ((dead, 4), (silent, 2)):
        ids = [m.id for m in queue.load_messages(engine, claim, now)][:inflight]
        queue.apply_checkpoints(engine, [Checkpoint(claim, inflight_ids=ids)], now)
    queue.load_messages(engine, live, now)
    assert queue.claim_batch(engine, "probe", 3, CLOCK.now(), expired_only=True) is None

    instances.heartbeat(engine, "live-1", CLOCK.now())  # however slow the setup was
    counts = service.requeue(engine, CLOCK, settings, send_id)
    assert counts == store.Requeued(
        expired_leases=0,
        dead_owner_leases=2,
        live_leases=1,
        batches_due=0,
        deferred=0,
    )
    for claim in (dead, silent):
        b = batch(engine, send_id, claim.seq)
        # Lapsed now, but still the dead holder's until a claim takes it (and bumps the epoch).
        assert b.lease_expires_at < CLOCK.now()
        assert (b.state, b.lease_owner, b.lease_epoch) == ("leased", claim.owner, 1)
    b = batch(engine, send_id, live.seq)
    assert (b.lease_owner, b.lease_epoch, b.lease_expires_at) == ("live-1", 1, now + 600)

    # The live holder finishes its way (here: gives the batch back undelivered).
    assert queue.release_batch(engine, live, CLOCK.now())
    asyncio.run(
        run_worker_until(
            worker_for(settings, engine),
            lambda: send_state(engine, send_id) == "completed",
            timeout=20,  # far less than the ten-minute leases
        )
    )
    rcpts = Counter(m.rcpt for m in recorder.messages)
    assert len(rcpts) == 25 and max(rcpts.values()) == 1
    assert sends.progress(engine, send_id).counts == {"sent": 25}
    assert sends.get_send(engine, send_id).resent_after_crash == 6  # the 4 + 2 in flight
    for claim in (dead, silent):
        b = batch(engine, send_id, claim.seq)
        assert (b.state, b.reclaims, b.lease_epoch) == ("done", 1, 2)
    assert batch(engine, send_id, live.seq).reclaims == 0

    # The dead holder's writes are fenced off by the reclaim's epoch.
    stale = Checkpoint(
        dead,
        results=[
            Result(
                message_id(engine, send_id, "user0@example.com"),
                MessageState.FAILED,
                9,
                now,
                error="stale",
            )
        ],
    )
    queue.apply_checkpoints(engine, [stale], CLOCK.now())
    assert not stale.accepted
    assert not queue.release_batch(engine, dead, CLOCK.now())
    assert sends.progress(engine, send_id).counts == {"sent": 25}


def test_requeue_makes_deferred_work_due_and_leaves_unknown_owners_alone(
    engine: Engine, settings_for: Any, db_url: str
) -> None:
    send_id = make_campaign(engine, settings_for(db_url, 25, batch_size=10), 20)
    a = queue.claim_batch(engine, "A", 10, T0)
    assert a is not None
    ids = [m.id for m in queue.load_messages(engine, a, T0)]
    results = [
        Result(ids[0], MessageState.DEFERRED, 1, T0, next_attempt_at=T0 + 600, smtp_code=451),
        *[Result(i, MessageState.SENT, 1, T0, sent_at=T0, smtp_code=250) for i in ids[1:]],
    ]
    queue.apply_checkpoints(engine, [Checkpoint(a, results=results)], T0)
    assert queue.release_batch(engine, a, T0)
    assert batch(engine, send_id, 0).available_at == T0 + 600
    # The other batch is held by an owner the registry does not know: not provably dead.
    other = queue.claim_batch(engine, "unknown", 10, T0 + 1)
    assert other is not None and other.seq == 1
    assert queue.claim_batch(engine, "B", 10, T0 + 2) is None

    counts = store.requeue_stuck(engine, send_id, T0 + 2, dead_age=9)
    assert counts == store.Requeued(
        expired_leases=0,
        dead_owner_leases=0,
        live_leases=1,
        batches_due=1,
        deferred=1,
    )
    assert batch(engine, send_id, 1).lease_expires_at == T0 + 11
    b = queue.claim_batch(engine, "B", 10, T0 + 2)
    assert b is not None and b.seq == 0
    assert [m.id for m in queue.load_messages(engine, b, T0 + 2)] == [ids[0]]
    # Once its lease lapsed by itself, it is counted as such and left to the next claim.
    later = store.requeue_stuck(engine, send_id, T0 + 20, dead_age=9)
    assert later.expired_leases == 2 and later.dead_owner_leases == 0


def test_arguments_are_checked(engine: Engine, settings_for: Any, db_url: str) -> None:
    settings = settings_for(db_url, 25, batch_size=10)
    send_id = make_campaign(engine, settings, 3)
    with pytest.raises(ValidationError):
        service.release(engine, CLOCK)
    with pytest.raises(ValidationError):
        service.release(engine, CLOCK, messages=[1], send_id=send_id)
    with pytest.raises(ValidationError):
        service.release(engine, CLOCK, messages=[])
    with pytest.raises(NotFound, match="no send 999"):
        service.release(engine, CLOCK, send_id=999)
    assert service.release(engine, CLOCK, send_id=send_id) == {"released": 0, "messages": []}
    with pytest.raises(NotFound, match="no send 999"):
        service.requeue(engine, CLOCK, settings, 999)
    with pytest.raises(ValidationError):
        service.listing(engine, send_id, limit=0)
    sends.change_state(engine, send_id, "cancel", CLOCK.now())
    with pytest.raises(Conflict, match="cancelled"):
        service.requeue(engine, CLOCK, settings, send_id)


def quarantined(engine: Engine, mid: int, at: float) -> None:
    """As the worker leaves a message it quarantines: the state and the platform event."""
    with engine.begin() as conn:
        conn.execute(
            update(messages).where(messages.c.id == mid).values(state="quarantined", crashes=3)
        )
    events.append(
        engine,
        region="R1",
        kind="message_quarantined",
        subject=f"message:{mid}",
        detail={"message": mid},
        now=at,
    )


def test_a_revert_releases_what_was_quarantined_under_the_reverted_value(
    engine: Engine, db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any
) -> None:
    """A flag set back to its value before its latest change (a rollback, the revert window, a
    human) releases the messages quarantined since that change, due once workers have read the
    revert; a message quarantined before the change stays, and other changes release nothing."""
    settings = settings_for(db_url, smtp_server[1], quarantine_after=3)
    send_id = make_campaign(engine, settings, 15)
    early = message_id(engine, send_id, "user3@example.com")
    late = message_id(engine, send_id, "user12@example.com")
    clock = FakeClock(CLOCK.now())
    quarantined(engine, early, clock.now())  # before the change
    clock.advance(10)
    flag_admin.set_flag(engine, clock, "tracking.version", "v2", "rollout 1", "wave 1")
    clock.advance(5)
    quarantined(engine, late, clock.now())  # while v2 ran
    clock.advance(5)

    out = flag_admin.set_flag(
        engine, clock, "tracking.version", None, "rollout 1", "rolled back", settle=2.0
    )
    assert out["released"] == 1
    m = message(engine, late)
    assert (m.state, m.crashes) == ("deferred", 0)
    assert m.next_attempt_at == pytest.approx(clock.now() + 3.0)
    assert message(engine, early).state == MessageState.QUARANTINED.value

    # Not a revert (a new value): nothing released, even with a quarantine since the change.
    quarantined(engine, late, clock.now())
    out = flag_admin.set_flag(engine, clock, "tracking.version", "v1", "alice", "try v1")
    assert "released" not in out
    assert message(engine, late).state == MessageState.QUARANTINED.value


def test_a_revert_whose_release_is_refused_still_sets_the_flag(
    engine: Engine, db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any
) -> None:
    """The release after a revert is all or nothing, like any release: when it is refused (here
    the message's send was cancelled meanwhile) the flag is still set back and nothing moves."""
    settings = settings_for(db_url, smtp_server[1], quarantine_after=3)
    send_id = make_campaign(engine, settings, 15)
    late = message_id(engine, send_id, "user12@example.com")
    clock = FakeClock(CLOCK.now())
    flag_admin.set_flag(engine, clock, "tracking.version", "v2", "rollout 1", "wave 1")
    clock.advance(5)
    quarantined(engine, late, clock.now())
    sends.change_state(engine, send_id, "cancel", clock.now())
    clock.advance(5)

    out = flag_admin.set_flag(engine, clock, "tracking.version", None, "rollout 1", "rolled back")
    assert (out["value"], out["previous"], out["released"]) == (None, "v2", 0)
    assert message(engine, late).state == MessageState.QUARANTINED.value


def test_a_quarantine_by_a_worker_still_running_the_reverted_value_is_released_by_the_sweep(
    engine: Engine, db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any
) -> None:
    """A worker reads flags once a beat: it can still run the old value after a revert, die on
    a message, and the worker that reclaims its lease quarantines the message after the revert
    was written. The monitor's sweep releases such late quarantines (once each), not one after
    the window, nor one under a change that was not reverted."""
    settings = settings_for(db_url, smtp_server[1], quarantine_after=3, lease_ttl=6.0)
    late_window = late_after_revert(settings)
    assert late_window == pytest.approx(2.5 * 2.0 + 6.0)
    send_id = make_campaign(engine, settings, 15)
    stale, after, kept = (message_id(engine, send_id, f"user{i}@example.com") for i in (4, 9, 13))
    clock = FakeClock(CLOCK.now())
    sweep = RevertSweep(engine, settings)
    flag_admin.set_flag(engine, clock, "tracking.version", "v1", "rollout 1", "wave 1")
    clock.advance(5)
    quarantined(engine, kept, clock.now())  # under a change nobody reverted
    clock.advance(1)
    flag_admin.set_flag(engine, clock, "tracking.version", "v2", "rollout 2", "wave 1")
    clock.advance(5)
    revert_at = clock.now()
    out = flag_admin.set_flag(
        engine, clock, "tracking.version", "v1", "rollout 2", "rolled back", settle=2.0
    )
    assert out["released"] == 0  # nothing was quarantined under v2 yet
    clock.advance(2)
    quarantined(engine, stale, clock.now())  # a worker that had not read the revert
    assert sweep.tick(clock.now()) == 1
    m = message(engine, stale)
    assert (m.state, m.crashes) == ("deferred", 0)
    # Due once every worker has read the revert, counted from the revert.
    assert m.next_attempt_at == pytest.approx(revert_at + 3.0)
    assert sweep.tick(clock.now()) == 0  # once

    clock.advance(late_window)  # past the window: poison by itself, for a human
    quarantined(engine, after, clock.now())
    assert sweep.tick(clock.now()) == 0
    assert message(engine, after).state == MessageState.QUARANTINED.value
    assert message(engine, kept).state == MessageState.QUARANTINED.value
