"""Anomaly alerts from the platform's own metrics, end to end: a real worker sends through a
real SMTP server, the monitor folds the worker's interval sums into series and its detectors
alert when the relay slows to half the throughput, or when it triples its deferrals."""

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine

from steadymail.config import Settings
from steadymail.monitor.service import Monitor
from steadymail.store import alerts, metric_series
from tests.conftest import CLOCK, Recorder
from tests.helpers import free_port, make_campaign, running, wait_until_async, worker_for

INTERVAL = 1.0
WARMUP = 15


@dataclass
class SlowRelay(Recorder):
    """The recording server, with a per-message delay that a test can change while it runs."""

    delay: float = 0.1

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


def _deferring(every: list[int]) -> Callable[[str, int], str | None]:
    """Refuse with 451 the recipients whose running number mod 10 is in ``every``."""
    seen = [0]
    lock = threading.Lock()

    def script(rcpt: str, nth: int) -> str | None:
        with lock:
            seen[0] += 1
            n = seen[0]
        return "451 4.7.1 try again later" if n % 10 in every else None

    return script


def _first_alert(engine: Engine, series: str) -> alerts.Alert | None:
    for a in alerts.listing(engine):
        if a.name == "metric_anomaly" and a.labels.get("series") == series:
            return a
    return None


# Each change on one database (40 s of real intervals each): the pipeline under test is the
# monitor's, which reads the same series from either; both databases are still covered.
@pytest.mark.parametrize(
    ("change", "db_url"),
    [("relay_slows_down", "postgresql"), ("deferrals_triple", "sqlite")],
    indirect=["db_url"],
)
def test_alert_within_two_intervals_of_a_real_change(
    change: str, db_url: str, engine: Engine, settings_for: Callable[..., Settings]
) -> None:
    relay = SlowRelay()
    every = [0]
    relay.rcpt_script = _deferring(every)
    port = free_port()
    controller = Controller(relay, hostname="127.0.0.1", port=port)
    controller.start()
    settings = settings_for(
        db_url,
        port,
        metrics_interval=INTERVAL,
        anomaly_warmup=WARMUP,
        worker_concurrency=8,  # the relay's delay dominates: doubling it halves throughput
        batch_size=20,
        inflight_window=4,
        lease_ttl=5.0,
        defer_base=3600.0,  # deferred mail stays away: the rate is the relay's alone
        defer_max=3600.0,
    )
    make_campaign(engine, settings, 8000)
    monitor = Monitor(settings, engine, CLOCK, lambda to, subject, text: None)
    stop = threading.Event()

    def watch() -> None:
        # The monitor's own loop, at a quicker pace than its interval (not a wait for anything).
        while not stop.wait(0.05):
            monitor.tick()

    watcher = threading.Thread(target=watch, daemon=True)
    received_at_start = relay.count()
    worker = worker_for(settings, engine)
    series = "throughput" if change == "relay_slows_down" else "deferral_rate"
    changed_at: list[float] = []

    def intervals() -> int:
        return len(metric_series.read(engine, settings.region, series, INTERVAL, 0))

    async def scenario() -> None:
        task = asyncio.create_task(worker.run())
        alive = running(task)

        try:
            # The monitor watches a region already sending at its pace, as in production (with
            # a short warm-up here, the first seconds' ramp would set the range).
            await wait_until_async(
                lambda: relay.count() >= received_at_start + 200, 60, "200 sent", alive=alive
            )
            watcher.start()
            # The detectors arm after 2 x warmup eligible intervals; then a few more to settle.
            await wait_until_async(
                lambda: monitor.anomalies.learning()[series] == 0,
                4 * (2 * WARMUP + 4) * INTERVAL,
                f"the {series} detector armed",
                0.1,
                alive,
            )
            settled = intervals() + 4
            await wait_until_async(
                lambda: intervals() >= settled, 30 * INTERVAL, "4 more intervals", alive=alive
            )
            assert _first_alert(engine, series) is None, "false alert before the change"
            changed_at.append(CLOCK.now())
            if change == "relay_slows_down":
                relay.delay *= 2
            else:
                every[:] = [0, 1, 2]
            # Within 8 intervals, or the assertions below say what the series did.
            with contextlib.suppress(AssertionError):
                await wait_until_async(
                    lambda: _first_alert(engine, series), 8 * INTERVAL, "an alert", alive=alive
                )
        finally:
            worker.stop()
            await asyncio.wait_for(task, 30)

    try:
        asyncio.run(scenario())
    finally:
        stop.set()
        if watcher.is_alive():
            watcher.join(10)
        controller.stop()
    alert = _first_alert(engine, series)
    points = metric_series.read(engine, settings.region, series, INTERVAL, 0)
    trail = [(round(t - changed_at[0], 1), round(v, 3)) for t, v in points]
    assert alert is not None, f"no {series} alert after the change: {trail}"
    labels = alert.labels
    change_interval = (changed_at[0] // INTERVAL) * INTERVAL
    # The interval the change fell in (partly slowed), or one of the next two full ones. A
    # change late in its interval shows as a half step first; with this test's ~8 % noise the
    # first full interval can sit just under the 5-sigma gate (seen in CI), the second does not.
    assert change_interval <= labels["window_start"] <= change_interval + 2 * INTERVAL, (
        labels,
        changed_at,
    )
    assert labels["window_end"] - labels["window_start"] == pytest.approx(INTERVAL)
    assert labels["score"] >= settings.anomaly_threshold
    print(
        f"\n{change} [{engine.dialect.name}]: {alert.summary}; alert "
        f"{alert.started_at - changed_at[0]:.2f}s after the change"
    )
