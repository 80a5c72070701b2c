"""Kill workers mid-send, for real, and count every message at the SMTP server."""

import signal
import time
from typing import Any

import pytest
from sqlalchemy import Engine

from steadymail.sending.worker import rescue_width
from steadymail.store import sends
from tests.conftest import Recorder
from tests.helpers import text_campaign, wait_until

pytestmark = pytest.mark.e2e

CONCURRENCY = 4
WINDOW = 8
# Per worker death, at most one unconfirmed window per batch it held can be sent again; it
# holds up to CONCURRENCY batches plus the lapsed ones its rescuer took over.
BOUND_PER_DEATH = (CONCURRENCY + rescue_width(CONCURRENCY)) * WINDOW
SETTINGS = dict(
    lease_ttl=2.0,
    batch_size=100,
    worker_concurrency=CONCURRENCY,
    inflight_window=WINDOW,
    poll_interval=0.1,
)


def test_sigkill_three_times_mid_send_loses_nothing(
    engine: Engine,
    db_url: str,
    smtp_server: tuple[Recorder, int],
    settings_for: Any,
    workers_for: Any,
) -> None:
    recorder, port = smtp_server
    total = 10_000
    send_id = text_campaign(engine, settings_for(db_url, port, batch_size=100), total)
    workers = workers_for(db_url, port, **SETTINGS)
    workers.start("a")
    workers.start("b")
    started = time.monotonic()
    for n, (victim, threshold) in enumerate([("a", 1500), ("b", 4000), ("a", 6500)]):
        wait_until(lambda t=threshold: recorder.count() >= t, timeout=240)
        workers.kill(victim)
        print(f"kill {n + 1}: SIGKILL worker {victim} at {recorder.count()} received")
        workers.start(victim)  # what the supervisor does
    wait_until(lambda: sends.get_send(engine, send_id).state == "completed", timeout=300)
    elapsed = time.monotonic() - started
    distinct, dups = recorder.copies()
    counted = sends.get_send(engine, send_id).resent_after_crash
    print(
        f"{total} messages in {elapsed:.1f}s with 3 SIGKILLs: {dups} duplicates received, "
        f"{counted} counted as at risk, bound {3 * BOUND_PER_DEATH}"
    )
    assert distinct == total
    assert {m.rcpt for m in recorder.messages} == {f"user{i}@example.com" for i in range(total)}
    assert dups <= counted <= 3 * BOUND_PER_DEATH
    assert sends.progress(engine, send_id).counts == {"sent": total}
    assert "event=lease_reclaimed" in workers.logs()


def test_sigterm_releases_leases_at_once(
    engine: Engine,
    db_url: str,
    smtp_server: tuple[Recorder, int],
    settings_for: Any,
    workers_for: Any,
) -> None:
    """A graceful stop hands its batches back immediately: no lease timeout, no resends."""
    from sqlalchemy import select

    from steadymail.store.schema import batches

    recorder, port = smtp_server
    total = 2000
    send_id = text_campaign(engine, settings_for(db_url, port, batch_size=100), total)
    # A long lease: if SIGTERM did not release, the send would sit for a minute.
    workers = workers_for(db_url, port, **{**SETTINGS, "lease_ttl": 60.0})
    workers.start("a")
    wait_until(lambda: recorder.count() >= 300, timeout=120)
    workers.kill("a", signal.SIGTERM)
    assert workers.procs["a"].returncode == 0
    with engine.connect() as conn:
        held = conn.execute(select(batches.c.id).where(batches.c.state == "leased")).all()
    assert held == []
    stopped_at = recorder.count()
    workers.start("b")
    wait_until(lambda: sends.get_send(engine, send_id).state == "completed", timeout=50)
    distinct, dups = recorder.copies()
    assert (distinct, dups) == (total, 0)
    assert stopped_at < total
    assert sends.get_send(engine, send_id).resent_after_crash == 0
