"""A dead worker's batches are all taken over at once, while the survivor's slots are busy."""

import time
from typing import Any

import pytest
from sqlalchemy import Engine

from steadymail.sending.worker import rescue_width
from steadymail.store import sends
from tests.conftest import Recorder
from tests.e2e.lease_observer import Observer
from tests.helpers import text_campaign, wait_until

pytestmark = pytest.mark.e2e

TTL = 1.5
CONCURRENCY = 2
WINDOW = 4


def test_every_batch_of_a_dead_worker_resumes_within_a_lease(
    engine: Engine,
    db_url: str,
    smtp_server: tuple[Recorder, int],
    settings_for: Any,
    workers_for: Any,
) -> None:
    recorder, port = smtp_server
    # A slow relay and long batches: one batch takes seconds, so a takeover that waited for
    # another takeover's batch to finish would be seconds late.
    # One batch for each slot of the two workers: while a's two wait to be taken over, b's
    # ordinary slots are busy with their own and no other batch is left to free them.
    recorder.data_delay = 0.05
    total = 2 * CONCURRENCY * 80
    send_id = text_campaign(engine, settings_for(db_url, port, batch_size=80), total)
    workers = workers_for(
        db_url,
        port,
        lease_ttl=TTL,
        batch_size=80,
        worker_concurrency=CONCURRENCY,
        inflight_window=WINDOW,
        poll_interval=0.05,
    )
    a = workers.start("a")
    b = workers.start("b")
    seen = Observer(engine)

    def both_hold_all_their_slots() -> bool:
        owners = [seen.instance_of(w.pid) for w in (a, b)]
        return all(o is not None and len(seen.held_by(o)) >= CONCURRENCY for o in owners)

    # b's ordinary slots busy too: only its rescuer can take a's batches over.
    wait_until(both_hold_all_their_slots, timeout=60)
    wait_until(lambda: recorder.count() >= 40, timeout=60)
    owner = seen.instance_of(a.pid)
    assert owner is not None
    held = seen.held_by(owner)
    workers.kill("a")
    killed_at = time.monotonic()

    def taken_over() -> bool:
        now = seen.epochs(list(held))
        return all(now[b] > e for b, e in held.items())

    wait_until(taken_over, timeout=TTL + 1.5, interval=0.02)
    print(f"{len(held)} batches taken over {time.monotonic() - killed_at:.2f}s after the kill")
    wait_until(lambda: sends.get_send(engine, send_id).state == "completed", timeout=120)
    distinct, dups = recorder.copies()
    counted = sends.get_send(engine, send_id).resent_after_crash
    assert distinct == total
    assert dups <= counted <= (CONCURRENCY + rescue_width(CONCURRENCY)) * WINDOW
