"""The alert manager: one open alert per fingerprint, firing -> resolved, with a timeline."""

import logging
from typing import Any

from sqlalchemy import Engine

from steadymail.alerts.suspects import suspects
from steadymail.clock import Clock
from steadymail.store import alerts as store

log = logging.getLogger("steadymail.alerts")


class AlertManager:
    """Deduplicates by fingerprint; notifications go to an outbox so detection never waits."""

    def __init__(
        self, engine: Engine, clock: Clock, notifiers: list[str], suspect_window: float = 3600.0
    ) -> None:
        self._engine, self._clock, self._notifiers = engine, clock, notifiers
        self._suspect_window = suspect_window

    def fire(
        self,
        fingerprint: str,
        name: str,
        severity: str,
        summary: str,
        labels: dict[str, Any],
        detail: str = "",
    ) -> tuple[int, bool]:
        """(alert id, True if this call opened it). A repeat only refreshes `last_seen_at`.
        A new alert names the region's changes made in the suspect window before it."""
        now = self._clock.now()
        with self._engine.begin() as conn:
            existing = store.open_alert(conn, fingerprint)
            if existing is not None:
                store.touch(conn, existing.id, now)
                if detail:
                    store.add_event(conn, existing.id, now, "update", detail)
                return int(existing.id), False
            named = suspects(conn, now, self._suspect_window) if self._suspect_window else []
            if named:
                labels = {**labels, "suspects": named}
                summary = f"{summary} — suspect: " + "; ".join(s["text"] for s in named[:2])
            silenced = store.is_silenced(conn, name, labels, now)
            alert_id = store.create(
                conn,
                fingerprint=fingerprint,
                name=name,
                severity=severity,
                summary=summary,
                labels=labels,
                now=now,
                silenced=silenced,
            )
            store.add_event(conn, alert_id, now, "fired", detail or summary)
            if silenced:
                store.add_event(conn, alert_id, now, "silenced", "matched an active silence")
            else:
                store.enqueue_notifications(conn, alert_id, self._notifiers, "firing", now)
        log.warning(
            "event=alert_firing id=%d name=%s fingerprint=%s summary=%r",
            alert_id,
            name,
            fingerprint,
            summary,
        )
        return alert_id, True

    def resolve(self, fingerprint: str, detail: str) -> int | None:
        now = self._clock.now()
        with self._engine.begin() as conn:
            existing = store.open_alert(conn, fingerprint)
            if existing is None:
                return None
            store.resolve(conn, existing.id, now)
            store.add_event(conn, existing.id, now, "resolved", detail)
            if not existing.silenced:
                store.enqueue_notifications(conn, existing.id, self._notifiers, "resolved", now)
        log.info(
            "event=alert_resolved id=%d fingerprint=%s detail=%r", existing.id, fingerprint, detail
        )
        return int(existing.id)

    def note(self, fingerprint: str, kind: str, detail: str) -> bool:
        """Add a timeline entry (a mitigation, a resumption) to the open alert, if any."""
        now = self._clock.now()
        with self._engine.begin() as conn:
            existing = store.open_alert(conn, fingerprint)
            if existing is None:
                return False
            store.add_event(conn, existing.id, now, kind, detail)
        return True
