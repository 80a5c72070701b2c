"""The lease queue's guarantees, on SQLite and PostgreSQL."""

from typing import Any

import pytest
from sqlalchemy import Engine, select

from steadymail.domain.states import MessageState
from steadymail.store import queue, sends
from steadymail.store.queue import Checkpoint, Result
from steadymail.store.schema import messages
from tests.helpers import CLOCK, make_campaign

T0 = 4_000_000_000.0  # after the real clock that created the send


def sent(ids: list[int], when: float) -> list[Result]:
    return [Result(i, MessageState.SENT, 1, when, sent_at=when, smtp_code=250) for i in ids]


@pytest.fixture
def one_batch(engine: Engine, settings_for: Any, db_url: str) -> int:
    settings = settings_for(db_url, 25, batch_size=10)
    return make_campaign(engine, settings, 10)


def test_a_batch_is_claimed_by_one_worker_at_a_time(engine: Engine, one_batch: int) -> None:
    a = queue.claim_batch(engine, "A", 10, T0)
    assert a is not None and a.epoch == 1 and not a.reclaimed
    assert queue.claim_batch(engine, "B", 10, T0 + 5) is None  # lease still live


def test_stale_holder_is_fenced_off_after_a_reclaim(engine: Engine, one_batch: int) -> None:
    """A paused worker resuming after its lease expired cannot overwrite its successor."""
    a = queue.claim_batch(engine, "A", 10, T0)
    assert a is not None
    msgs = queue.load_messages(engine, a, T0)
    ids = [m.id for m in msgs]
    first = Checkpoint(a, inflight_ids=ids[:4])
    queue.apply_checkpoints(engine, [first], T0 + 1)
    assert first.accepted

    b = queue.claim_batch(engine, "B", 10, T0 + 11)  # A's lease ran out
    assert b is not None and b.epoch == 2 and b.reclaimed
    reloaded = queue.load_messages(engine, b, T0 + 11)
    assert sum(m.at_risk for m in reloaded) == 4  # A's window is counted as at risk
    assert sends.get_send(engine, one_batch).resent_after_crash == 4
    ok = Checkpoint(b, results=sent(ids, T0 + 12))
    queue.apply_checkpoints(engine, [ok], T0 + 12)
    assert ok.accepted

    # A wakes up and tries to record a failure for everything, then to release the batch.
    stale = Checkpoint(
        a, results=[Result(i, MessageState.FAILED, 9, T0, error="stale") for i in ids]
    )
    queue.apply_checkpoints(engine, [stale], T0 + 13)
    assert not stale.accepted
    assert not queue.release_batch(engine, a, T0 + 13)
    with engine.connect() as conn:
        rows = conn.execute(
            select(messages.c.state, messages.c.epoch).where(messages.c.send_id == one_batch)
        ).all()
    assert {(r.state, r.epoch) for r in rows} == {("sent", 2)}
    assert queue.release_batch(engine, b, T0 + 14)
    assert sends.get_send(engine, one_batch).state == "completed"


def test_heartbeat_keeps_a_lease_alive(engine: Engine, one_batch: int) -> None:
    a = queue.claim_batch(engine, "A", 10, T0)
    assert a is not None
    with engine.begin() as conn:
        assert queue.extend_leases(conn, "A", 10, T0 + 8) == 1
    assert queue.claim_batch(engine, "B", 10, T0 + 15) is None
    assert queue.claim_batch(engine, "B", 10, T0 + 19) is not None


def test_deferred_messages_make_the_batch_wait(engine: Engine, one_batch: int) -> None:
    a = queue.claim_batch(engine, "A", 10, T0)
    assert a is not None
    ids = [m.id for m in queue.load_messages(engine, a, T0)]
    results = [
        *sent(ids[1:], T0),
        Result(ids[0], MessageState.DEFERRED, 1, T0, next_attempt_at=T0 + 60, smtp_code=451),
    ]
    queue.apply_checkpoints(engine, [Checkpoint(a, results=results)], T0)
    assert queue.release_batch(engine, a, T0)
    assert queue.claim_batch(engine, "B", 10, T0 + 30) is None  # not due yet
    b = queue.claim_batch(engine, "B", 10, T0 + 61)
    assert b is not None and not b.reclaimed
    assert [m.id for m in queue.load_messages(engine, b, T0 + 61)] == [ids[0]]


def test_paused_sends_are_not_claimed(engine: Engine, one_batch: int) -> None:
    sends.change_state(engine, one_batch, "pause", T0)
    assert queue.claim_batch(engine, "A", 10, T0) is None
    sends.change_state(engine, one_batch, "resume", T0)
    assert queue.claim_batch(engine, "A", 10, T0) is not None


def test_cancel_gives_up_queued_messages(engine: Engine, one_batch: int) -> None:
    sends.change_state(engine, one_batch, "cancel", T0)
    assert queue.claim_batch(engine, "A", 10, T0) is None
    assert sends.progress(engine, one_batch).counts == {"cancelled": 10}


def test_a_rescuer_takes_only_lapsed_leases(engine: Engine, one_batch: int) -> None:
    assert queue.claim_batch(engine, "R", 10, T0, expired_only=True) is None  # pending: not its
    a = queue.claim_batch(engine, "A", 10, T0)
    assert a is not None
    assert queue.claim_batch(engine, "R", 10, T0 + 5, expired_only=True) is None  # still live
    r = queue.claim_batch(engine, "R", 10, T0 + 11, expired_only=True)
    assert r is not None and r.reclaimed and r.batch_id == a.batch_id


def test_transactional_messages_jump_the_campaign_backlog(
    engine: Engine, settings_for: Any, db_url: str
) -> None:
    from steadymail.services import transactional

    settings = settings_for(db_url, 25, batch_size=10)
    make_campaign(engine, settings, 50, list_name="bulk")  # five older batches
    queued = transactional.enqueue(
        engine, CLOCK, settings, to=["r@example.com"], subject="s", text="receipt"
    )
    first = queue.claim_batch(engine, "A", 10, T0)
    assert first is not None and first.send_id == queued["send_id"]
