"""Stall detection and service health, driven by a fake clock against a real database."""

import time
from typing import Any

from sqlalchemy import Engine, update

from steadymail.clock import FakeClock
from steadymail.config import Settings
from steadymail.monitor.health import HealthWatcher
from steadymail.monitor.stalls import StallDetector
from steadymail.store import instances, sends
from steadymail.store.schema import batches
from tests.helpers import make_campaign

T0 = 4_000_000_000.0


def settings(db_url: str, **kw: Any) -> Settings:
    base: dict[str, Any] = dict(
        database_url=db_url,
        stall_floor=30.0,
        stall_factor=10.0,
        lease_ttl=3.0,
        crash_loop_restarts=3,
        crash_loop_window=60.0,
        restart_resolve_after=20.0,
    )
    base.update(kw)
    return Settings(**base)


def progress(engine: Engine, send_id: int, at: float) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(sends.sends).where(sends.sends.c.id == send_id).values(last_progress_at=at)
        )


def live_worker(engine: Engine, name: str, slot: str, at: float) -> None:
    instances.register(
        engine,
        instance_id=name,
        service="worker",
        region="R1",
        host="h",
        pid=1,
        version="t",
        now=at,
        slot=slot,
    )


def test_a_send_that_stops_moving_is_stalled_then_resumed(
    engine: Engine, db_url: str, settings_for: Any
) -> None:
    s = settings(db_url)
    send_id = make_campaign(engine, settings_for(db_url, 25), 30)
    det = StallDetector(engine, s)
    live_worker(engine, "w1", "worker-1", T0)

    def tick(t: float) -> list[Any]:
        instances.heartbeat(engine, "w1", t)  # the worker is alive, just not progressing
        return det.tick(t)

    for i in range(10):  # a steady rhythm: progress every 2 s
        progress(engine, send_id, T0 + 2 * i)
        assert tick(T0 + 2 * i + 1) == []
    assert tick(T0 + 18 + 29) == []  # 29 s idle: under the 30 s floor
    [stall] = tick(T0 + 18 + 31)
    assert stall.name == "send_stalled" and not stall.resolve and "no progress" in stall.summary
    assert tick(T0 + 18 + 35) == []  # reported once
    progress(engine, send_id, T0 + 60)
    [back] = tick(T0 + 61)
    assert back.resolve and back.fingerprint == stall.fingerprint


def test_a_slow_rhythm_is_learned_but_neither_the_tick_nor_a_stall_is(
    engine: Engine, db_url: str, settings_for: Any
) -> None:
    s = settings(db_url)
    send_id = make_campaign(engine, settings_for(db_url, 25), 30)
    det = StallDetector(engine, s)
    live_worker(engine, "w1", "worker-1", T0)
    progress(engine, send_id, T0)
    t = T0
    # A throttled send moving every 5 s, watched by a monitor ticking every second: the gaps
    # seen across quiet ticks are the send's rhythm (10 x 5 s = 50 s, over the 30 s floor).
    for _ in range(30):
        t += 1
        if (t - T0) % 5 == 0:
            progress(engine, send_id, t)
        instances.heartbeat(engine, "w1", t)
        assert det.tick(t) == []
    last = t - (t - T0) % 5
    assert det.threshold(det._sends[send_id]) > 40
    instances.heartbeat(engine, "w1", last + 52)
    assert [x.name for x in det.tick(last + 52)] == ["send_stalled"]
    # Back after the stall: the 52 s it stood still is not learned as its rhythm.
    progress(engine, send_id, last + 53)
    instances.heartbeat(engine, "w1", last + 53)
    [back] = det.tick(last + 53)
    assert back.resolve
    assert det.threshold(det._sends[send_id]) < 52

    # A fast send seen progressing at every tick, however slow the ticks, learns no gap.
    fast = make_campaign(engine, settings_for(db_url, 25), 30, list_name="fast")
    progress(engine, fast, t)
    for i in range(1, 20):
        progress(engine, fast, t + 5 * i - 0.01)  # ticks 5 s apart (a slow monitor)
        instances.heartbeat(engine, "w1", t + 5 * i)
        det.tick(t + 5 * i)
    assert det.threshold(det._sends[fast]) == s.stall_floor


def test_paused_and_backing_off_sends_never_stall(
    engine: Engine, db_url: str, settings_for: Any
) -> None:
    s = settings(db_url)
    paused = make_campaign(engine, settings_for(db_url, 25), 10, list_name="paused")
    sends.change_state(engine, paused, "pause", T0)
    waiting = make_campaign(engine, settings_for(db_url, 25), 10, list_name="deferred")
    with engine.begin() as conn:  # every batch deferred an hour (4xx backoff)
        conn.execute(
            update(batches).where(batches.c.send_id == waiting).values(available_at=T0 + 3600)
        )
    live_worker(engine, "w1", "worker-1", T0)
    det = StallDetector(engine, s)
    for t in range(0, 600, 10):
        instances.heartbeat(engine, "w1", T0 + t)
        assert det.tick(T0 + t) == []


def test_due_work_without_a_live_worker_alerts_at_once(
    engine: Engine, db_url: str, settings_for: Any
) -> None:
    s = settings(db_url)
    make_campaign(engine, settings_for(db_url, 25), 5)
    now = time.time()  # the send was just started by the real clock
    det = StallDetector(engine, s)
    assert det.tick(now) == []  # workers starting beside the monitor get one dead-age of grace
    now += 3.1
    signals = det.tick(now)
    assert [x.name for x in signals] == ["no_live_worker"] and not signals[0].resolve
    live_worker(engine, "w1", "worker-1", now + 1)
    assert [(x.name, x.resolve) for x in det.tick(now + 1)] == [("no_live_worker", True)]


def test_restarts_deaths_and_crash_loops(engine: Engine, db_url: str) -> None:
    s = settings(db_url)
    clock = FakeClock(T0)
    live_worker(engine, "a", "worker-1", clock.now())
    watch = HealthWatcher(engine, s)
    watch.prime(clock.now())
    assert [x for x in watch.tick(clock.now()) if not x.resolve] == []  # nothing new

    clock.advance(5)
    instances.heartbeat(engine, "a", clock.now() - 0.5)  # alive until it was killed
    live_worker(engine, "b", "worker-1", clock.now())  # same slot, new instance
    fired = [x for x in watch.tick(clock.now()) if not x.resolve and not x.note]
    assert [x.name for x in fired] == ["service_restarted"]
    assert fired[0].labels["previous_instance"] == "a"

    for previous, name in (("b", "c"), ("c", "d")):
        clock.advance(5)
        instances.heartbeat(engine, previous, clock.now() - 0.5)
        live_worker(engine, name, "worker-1", clock.now())
        fired = [x for x in watch.tick(clock.now()) if not x.resolve and not x.note]
    assert [x.name for x in fired] == ["service_restarted", "crash_loop"]

    clock.advance(25)
    instances.heartbeat(engine, "d", clock.now())
    resolved = [x.name for x in watch.tick(clock.now()) if x.resolve]
    assert "service_restarted" in resolved

    clock.advance(10)  # d stops beating: dead after 3 missed beats (3 s)
    died = [x for x in watch.tick(clock.now()) if x.name == "service_died" and not x.resolve]
    assert len(died) == 1 and "missed heartbeats" in died[0].summary

    clock.advance(1)  # it was frozen (SIGSTOP), not killed: it beats again
    instances.heartbeat(engine, "d", clock.now())
    back = [x for x in watch.tick(clock.now()) if x.name == "service_died"]
    assert len(back) == 1 and back[0].resolve and "beating again" in back[0].detail

    instances.stopped(engine, "d", "graceful", clock.now())
    live_worker(engine, "e", "worker-2", clock.now())
    new = [x for x in watch.tick(clock.now()) if not x.resolve and not x.note]
    # d's graceful stop is reported; e fills a new slot: a start, not a restart.
    assert [(x.name, x.severity, x.detail) for x in new] == [
        ("service_stopped", "info", "graceful")
    ]


def test_a_worker_seen_exiting_is_not_live_even_with_a_fresh_heartbeat(
    engine: Engine, db_url: str, settings_for: Any
) -> None:
    s = settings(db_url)
    make_campaign(engine, settings_for(db_url, 25), 5)
    now = time.time()
    live_worker(engine, "w1", "worker-1", now)
    det = StallDetector(engine, s)
    assert det.tick(now) == []
    instances.heartbeat(engine, "w1", now + 3.1)
    assert det.tick(now + 3.1) == []  # past the start-up grace, w1 beating: all is well
    instances.record_end(engine, "w1", "signal SIGKILL", now + 3.2, overwrite=True)  # supervisor
    assert [x.name for x in det.tick(now + 3.2)] == ["no_live_worker"]
