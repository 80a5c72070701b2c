"""The lease queue under random claims, checkpoints, heartbeats, deaths, freezes and reclaims.

Hypothesis drives several holders against one real SQLite database and a model of who holds
each batch. After every step: a fenced write is applied exactly when its claim is the batch's
current one, and a message once sent is never handed out again. At the end the survivors drain
the queue: every message is sent, nothing is lost, and a message went out twice only if a holder
died or froze with it in flight (the duplicates the queue counts, bounded by what was in flight).
"""

import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from sqlalchemy import Engine, select

from steadymail.config import Settings
from steadymail.domain.states import MessageState
from steadymail.store import queue, sends
from steadymail.store.db import make_engine
from steadymail.store.queue import Checkpoint, Claim, Result
from steadymail.store.schema import messages, metadata
from tests.conftest import fresh_pg_database
from tests.helpers import make_campaign

TTL = 10.0
HOLDERS = ("A", "B", "C")
TOTAL = 12


class LeaseQueue(RuleBasedStateMachine):
    # None: a fresh SQLite file per example; else a PostgreSQL database shared by the examples,
    # each with its own send.
    pg_url: str | None = None

    def __init__(self) -> None:
        super().__init__()
        self._dir = tempfile.TemporaryDirectory()
        url = self.pg_url or f"sqlite:///{Path(self._dir.name) / 'q.db'}"
        self.engine: Engine = make_engine(url)
        if self.pg_url is None:
            metadata.create_all(self.engine)
        cfg = Settings(data_dir=Path(self._dir.name), database_url=url, batch_size=4)
        self.send_id = make_campaign(self.engine, cfg, TOTAL, list_name=f"l{uuid.uuid4().hex[:12]}")
        self.now = 4_000_000_000.0
        # The model: each holder's claims and the messages it was given / put in flight.
        self.claims: dict[str, list[Claim]] = {h: [] for h in HOLDERS}
        # Keyed by claim: (batch, epoch), which no two claims share.
        self.loaded: dict[tuple[int, int], list[int]] = {}
        self.inflight: dict[tuple[int, int], list[int]] = {}
        self.current: dict[int, tuple[str, int]] = {}  # batch -> (owner, epoch) now holding it
        self.delivered: Counter[int] = Counter()  # handed to "SMTP", whatever the checkpoint
        self.sent_final: set[int] = set()
        self.exposed = 0  # messages in flight with a holder when it died or froze past its lease
        self.pending_risk: dict[int, list[int]] = {}  # released with messages still in flight

    def teardown(self) -> None:
        self.engine.dispose()
        self._dir.cleanup()

    # -- steps ---------------------------------------------------------------------------------

    @rule(holder=st.sampled_from(HOLDERS))
    def claim(self, holder: str) -> None:
        c = queue.claim_batch(self.engine, holder, TTL, self.now)
        if c is None:
            return
        self._took(c)
        self.claims[holder].append(c)
        msgs = queue.load_messages(self.engine, c, self.now)
        ids = [m.id for m in msgs]
        assert not set(ids) & self.sent_final, "a sent message was handed out again"
        self.loaded[_key(c)] = ids
        self.inflight[_key(c)] = []

    @rule(holder=st.sampled_from(HOLDERS), data=st.data())
    def put_in_flight(self, holder: str, data: st.DataObject) -> None:
        if not self.claims[holder]:
            return
        c = data.draw(st.sampled_from(self.claims[holder]))
        todo = self.loaded.get(_key(c), [])
        if not todo:
            return
        window = todo[: data.draw(st.integers(1, len(todo)))]
        item = Checkpoint(c, inflight_ids=window)
        queue.apply_checkpoints(self.engine, [item], self.now)
        assert item.accepted == self._holds(c)
        if item.accepted:
            self.inflight[_key(c)] = window

    @rule(holder=st.sampled_from(HOLDERS), data=st.data())
    def deliver_and_checkpoint(self, holder: str, data: st.DataObject) -> None:
        if not self.claims[holder]:
            return
        c = data.draw(st.sampled_from(self.claims[holder]))
        window = self.inflight.get(_key(c), [])
        if not window:
            return
        self.delivered.update(window)  # the relay has them, checkpoint or not
        before = self._states(window)
        item = Checkpoint(
            c,
            results=[Result(i, MessageState.SENT, 1, self.now, sent_at=self.now) for i in window],
        )
        queue.apply_checkpoints(self.engine, [item], self.now)
        assert item.accepted == self._holds(c)
        if item.accepted:
            self.sent_final.update(window)
            self.loaded[_key(c)] = [i for i in self.loaded[_key(c)] if i not in window]
            self.inflight[_key(c)] = []
        else:
            assert self._states(window) == before, "a fenced checkpoint changed messages"

    @rule(holder=st.sampled_from(HOLDERS), data=st.data())
    def release(self, holder: str, data: st.DataObject) -> None:
        if not self.claims[holder]:
            return
        c = data.draw(st.sampled_from(self.claims[holder]))
        ok = queue.release_batch(self.engine, c, self.now)
        assert ok == self._holds(c)
        self._forget(holder, c)
        if ok:
            # Messages it left in flight stay so: the next holder finds them at risk.
            self.pending_risk[c.batch_id] = self.inflight.get(_key(c), [])
            del self.current[c.batch_id]

    @rule(holder=st.sampled_from(HOLDERS), data=st.data())
    def give_up(self, holder: str, data: st.DataObject) -> None:
        """The worker's path when a database error hits mid-batch: the lease lapses now."""
        if not self.claims[holder]:
            return
        c = data.draw(st.sampled_from(self.claims[holder]))
        ok = queue.lapse_claim(self.engine, c, self.now)
        assert ok == self._holds(c)
        self.claims[holder] = [x for x in self.claims[holder] if x is not c]

    @rule(holder=st.sampled_from(HOLDERS))
    def heartbeat(self, holder: str) -> None:
        with self.engine.begin() as conn:
            queue.extend_leases(conn, holder, TTL, self.now)

    @rule(holder=st.sampled_from(HOLDERS))
    def die(self, holder: str) -> None:
        """SIGKILL: the holder's memory is gone; its leases run out in the database."""
        # Its in-flight windows stay recorded: a successor's reclaim counts them as exposed.
        self.claims[holder] = []

    @rule(seconds=st.floats(0.0, 2.5 * TTL))
    def time_passes(self, seconds: float) -> None:
        """Everyone frozen (or simply slow) for a while: leases not beaten may lapse."""
        self.now += seconds

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def sent_messages_stay_sent(self) -> None:
        if self.sent_final:
            states = self._states(sorted(self.sent_final))
            assert set(states.values()) == {MessageState.SENT.value}

    def check_end(self) -> None:
        self._drain()
        states = self._states(None)
        assert len(states) == TOTAL
        assert set(states.values()) == {MessageState.SENT.value}, states
        assert set(self.delivered) == set(states), "a message was lost"
        dups = sum(n - 1 for n in self.delivered.values())
        assert dups <= self.exposed, (dups, self.exposed)
        counted = sends.get_send(self.engine, self.send_id).resent_after_crash
        assert dups <= counted

    # -- helpers -------------------------------------------------------------------------------

    def _drain(self) -> None:
        self.now += 2 * TTL  # every live lease lapses: a fresh holder takes all over
        for _ in range(10_000):  # far more claims than there are batches
            c = queue.claim_batch(self.engine, "Z", TTL, self.now)
            if c is None:
                return
            self._took(c)
            ids = [m.id for m in queue.load_messages(self.engine, c, self.now)]
            assert not set(ids) & self.sent_final
            item = Checkpoint(c, inflight_ids=ids)
            queue.apply_checkpoints(self.engine, [item], self.now)
            self.delivered.update(ids)
            done = Checkpoint(
                c,
                results=[Result(i, MessageState.SENT, 1, self.now, sent_at=self.now) for i in ids],
            )
            queue.apply_checkpoints(self.engine, [done], self.now)
            assert item.accepted and done.accepted
            self.sent_final.update(ids)
            assert queue.release_batch(self.engine, c, self.now)
            del self.current[c.batch_id]
        raise AssertionError("the queue kept handing out batches")

    def _holds(self, c: Claim) -> bool:
        return self.current.get(c.batch_id) == (c.owner, c.epoch)

    def _took(self, c: Claim) -> None:
        """Record a claim; a takeover exposes whatever the previous holder had in flight."""
        prev = self.current.get(c.batch_id)
        if prev is not None:
            self.exposed += len(self.inflight.get((c.batch_id, prev[1]), []))
        self.exposed += len(self.pending_risk.pop(c.batch_id, []))
        self.current[c.batch_id] = (c.owner, c.epoch)

    def _forget(self, holder: str, c: Claim) -> None:
        self.claims[holder] = [x for x in self.claims[holder] if x is not c]

    def _states(self, ids: list[int] | None) -> dict[int, str]:
        q = select(messages.c.id, messages.c.state).where(messages.c.send_id == self.send_id)
        if ids is not None:
            q = q.where(messages.c.id.in_(ids))
        with self.engine.connect() as conn:
            return {r.id: r.state for r in conn.execute(q)}


def _key(c: Claim) -> tuple[int, int]:
    return (c.batch_id, c.epoch)


class _Checked(LeaseQueue):
    def teardown(self) -> None:
        try:
            self.check_end()
        finally:
            super().teardown()


class _CheckedPG(_Checked):
    pass


_SETTINGS = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLeaseQueueSQLite = _Checked.TestCase
TestLeaseQueueSQLite.settings = _SETTINGS


@pytest.fixture(scope="module")
def _pg_database() -> Iterator[None]:
    with fresh_pg_database() as url:
        _CheckedPG.pg_url = url
        yield
        _CheckedPG.pg_url = None


@pytest.mark.usefixtures("_pg_database")
class TestLeaseQueuePostgreSQL(_CheckedPG.TestCase):  # type: ignore[name-defined,misc]
    settings = settings(_SETTINGS, max_examples=30)
