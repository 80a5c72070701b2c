"""The monitor process: watchers every tick, alerts through the manager, notifications apart."""

import asyncio
import contextlib
import json
import logging

from sqlalchemy import Engine

from steadymail.alerts.manager import AlertManager
from steadymail.alerts.notifiers import Dispatcher, SendEmail
from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.metrics import ANOMALY_SCORE, FLAG_INFO, QUEUE_DUE, RESTARTS, STALLED_SENDS
from steadymail.monitor.after_revert import RevertSweep
from steadymail.monitor.anomaly_watch import WATCHED, AnomalyWatcher
from steadymail.monitor.health import HealthWatcher
from steadymail.monitor.series import Interval, SeriesKeeper
from steadymail.monitor.signals import Signal
from steadymail.monitor.stalls import StallDetector
from steadymail.monitor.webhook_health import WebhookWatcher
from steadymail.presence import (
    arm_excepthook,
    new_instance_id,
    register_self,
    watch_peers,
)
from steadymail.probes import serve_health
from steadymail.store import flag_values, inbound, instances, message_log, webhooks

log = logging.getLogger("steadymail.monitor")

# A tick prunes at most this many message events (so that alerts are never late behind it).
PRUNE_CHUNK, PRUNE_CHUNKS = 5000, 4


class Monitor:
    def __init__(
        self, settings: Settings, engine: Engine, clock: Clock, send_email: SendEmail
    ) -> None:
        self.settings, self.engine, self.clock = settings, engine, clock
        self.alerts = AlertManager(
            engine, clock, [n.name for n in settings.notifiers], settings.suspect_window
        )
        self.health = HealthWatcher(engine, settings)
        self.stalls = StallDetector(engine, settings)
        self.series = SeriesKeeper(engine, settings)
        self.anomalies = AnomalyWatcher(settings)
        self.reverts = RevertSweep(engine, settings)
        self.webhooks = WebhookWatcher(engine, settings)
        self.dispatcher = Dispatcher(
            engine,
            clock,
            settings.notifiers,
            send_email,
            settings.notify_retry_base,
            settings.notify_max_attempts,
        )
        self.instance_id = new_instance_id("monitor")
        self._stop = asyncio.Event()
        self._flags: dict[str, object] = {}
        self._flag_labels: set[tuple[str, str]] = set()
        self._last_tick = 0.0
        self._pruned_at = 0.0

    def apply(self, signals: list[Signal]) -> None:
        for s in signals:
            if s.name == "service_restarted" and not s.resolve and not s.note:
                RESTARTS.labels(self.settings.region, str(s.labels.get("service", ""))).inc()
            if s.note:
                self.alerts.note(s.fingerprint, "mitigation", s.note)
            elif s.resolve:
                self.alerts.resolve(s.fingerprint, s.detail)
            else:
                # Every alert carries the flag values in force in the region when it fired.
                labels = {**s.labels, "flags": self._flags}
                self.alerts.fire(s.fingerprint, s.name, s.severity, s.summary, labels, s.detail)

    def tick(self) -> None:
        now = self.clock.now()
        self._flags = flag_values.current(self.engine)
        self._export_flags()
        self.apply(self.health.tick(now))
        self.apply(self.stalls.tick(now))
        self.reverts.tick(now)
        self.apply(self.webhooks.tick(now))
        region = self.settings.region
        STALLED_SENDS.labels(region).set(self.stalls.stalled_count())
        QUEUE_DUE.labels(region).set(self.stalls.due_batches)
        self.series.observe_queue(now, self.stalls.due_batches, self.stalls.waiting_batches)
        for interval in self.series.tick(now):
            self.apply(self.anomalies.observe(interval))
        for name, score in self.anomalies.scores().items():
            ANOMALY_SCORE.labels(region, name).set(score)
        self._prune_log(now)
        instances.heartbeat(self.engine, self.instance_id, now)

    def _prune_log(self, now: float) -> None:
        """The message log's retention (every `message_log_prune_every` seconds)."""
        days = self.settings.message_log_days
        if not days or now - self._pruned_at < self.settings.message_log_prune_every:
            return
        before = now - days * 86400
        gone = message_log.prune(self.engine, before, PRUNE_CHUNK, PRUNE_CHUNKS)
        # What was delivered to webhooks, and the reports the inbound server kept, age with the
        # log (what still waits for delivery or review stays).
        gone += webhooks.prune(self.engine, before, PRUNE_CHUNK, PRUNE_CHUNKS)
        gone += inbound.prune(self.engine, before, PRUNE_CHUNK, PRUNE_CHUNKS)
        if gone < PRUNE_CHUNK * PRUNE_CHUNKS:
            self._pruned_at = now  # done; else the rest goes on the next tick
        if gone:
            log.info("event=message_log_pruned rows=%d older_than_days=%g", gone, days)

    def _export_flags(self) -> None:
        current = {(name, json.dumps(value, sort_keys=True)) for name, value in self._flags.items()}
        for name, value in self._flag_labels - current:
            FLAG_INFO.labels(self.settings.region, name, value).set(0)
        for name, value in current:
            FLAG_INFO.labels(self.settings.region, name, value).set(1)
        self._flag_labels |= current

    def prime_anomalies(self, now: float) -> None:
        """Feed the detectors the stored history, so a monitor restart does not re-learn."""
        span = self.settings.metrics_interval * self.settings.anomaly_warmup * 4
        history = self.series.history(
            [*WATCHED, "backlog_min", "attempts", "smtp_count"], now - span
        )
        self.anomalies.prime(
            Interval(ts, values, values.get("backlog_min", 0.0) > 0)
            for ts, values in history.items()
        )

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        now = self.clock.now()
        await register_self(self.engine, self.settings, "monitor", self.instance_id, now)
        arm_excepthook(self.engine, self.clock, self.instance_id)
        peers = watch_peers(self.engine, self.clock, self.settings, self.instance_id)
        await asyncio.to_thread(self.health.prime, now)
        await asyncio.to_thread(self.prime_anomalies, now)
        dispatch = asyncio.create_task(self.dispatcher.run(0.5))
        # Ready while its ticks go through.
        probes = await serve_health(
            self.settings,
            lambda: self.clock.now() - self._last_tick < 5 * self.settings.monitor_interval + 5,
        )
        log.info("event=monitor_started instance=%s", self.instance_id)
        try:
            while not self._stop.is_set():
                try:
                    await asyncio.to_thread(self.tick)
                    self._last_tick = self.clock.now()
                except Exception as e:
                    log.error(
                        "event=monitor_tick_failed instance=%s error=%r", self.instance_id, str(e)
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.settings.monitor_interval)
        finally:
            if probes is not None:
                probes.close()
            peers.cancel()
            dispatch.cancel()
            await self.dispatcher.drain()
            await self.dispatcher.close()
            await asyncio.to_thread(
                instances.stopped, self.engine, self.instance_id, "graceful", self.clock.now()
            )
