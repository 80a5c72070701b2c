"""Alerts, their timelines, silences and the notification outbox."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, and_, insert, or_, select, update

from steadymail.domain.states import AlertState
from steadymail.errors import NotFound
from steadymail.store.records import JsonObject
from steadymail.store.schema import alert_events, alerts, notifications, silences


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    fingerprint: str
    name: str
    severity: str
    state: AlertState
    summary: str
    # What it is about (region, slot, send, series, …) and the suspects named when it fired.
    labels: JsonObject
    started_at: float
    last_seen_at: float
    resolved_at: float | None
    acked_at: float | None
    acked_by: str | None
    # 1 when an active silence matched it as it fired (its notifications were skipped), else 0.
    silenced: int


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One entry of an alert's timeline."""

    id: int
    alert_id: int
    at: float
    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class AlertWithTimeline(Alert):
    timeline: tuple[AlertEvent, ...]


@dataclass(frozen=True, slots=True)
class DueNotification:
    """A notification to deliver, with the alert it tells of."""

    id: int
    alert_id: int
    notifier: str
    event: str  # firing | resolved
    attempts: int
    next_attempt_at: float
    delivered_at: float | None
    last_error: str | None
    fingerprint: str
    name: str
    severity: str
    summary: str
    labels: JsonObject
    started_at: float
    resolved_at: float | None
    state: AlertState


def _alert_values(m: RowMapping) -> dict[str, Any]:
    return {**m, "state": AlertState(m["state"])}


def open_alert(conn: Connection, fingerprint: str) -> Alert | None:
    """The firing alert of `fingerprint`, if any."""
    row = (
        conn.execute(
            select(alerts).where(
                alerts.c.fingerprint == fingerprint, alerts.c.state == AlertState.FIRING.value
            )
        )
        .mappings()
        .first()
    )
    return Alert(**_alert_values(row)) if row is not None else None


def create(
    conn: Connection,
    *,
    fingerprint: str,
    name: str,
    severity: str,
    summary: str,
    labels: JsonObject,
    now: float,
    silenced: bool,
) -> int:
    return int(
        conn.execute(
            insert(alerts)
            .values(
                fingerprint=fingerprint,
                name=name,
                severity=severity,
                state=AlertState.FIRING.value,
                summary=summary,
                labels=labels,
                started_at=now,
                last_seen_at=now,
                silenced=int(silenced),
            )
            .returning(alerts.c.id)
        ).scalar_one()
    )


def touch(conn: Connection, alert_id: int, now: float) -> None:
    conn.execute(update(alerts).where(alerts.c.id == alert_id).values(last_seen_at=now))


def resolve(conn: Connection, alert_id: int, now: float) -> None:
    conn.execute(
        update(alerts)
        .where(alerts.c.id == alert_id)
        .values(state=AlertState.RESOLVED.value, resolved_at=now)
    )


def add_event(conn: Connection, alert_id: int, now: float, kind: str, detail: str) -> None:
    conn.execute(insert(alert_events).values(alert_id=alert_id, at=now, kind=kind, detail=detail))


def ack(engine: Engine, alert_id: int, by: str, now: float) -> None:
    with engine.begin() as conn:
        if conn.execute(select(alerts.c.id).where(alerts.c.id == alert_id)).first() is None:
            raise NotFound(f"no alert {alert_id}")
        conn.execute(
            update(alerts).where(alerts.c.id == alert_id).values(acked_at=now, acked_by=by)
        )
        add_event(conn, alert_id, now, "acknowledged", f"by {by}")


def listing(
    engine: Engine,
    state: str | None = None,
    limit: int = 100,
    since: float | None = None,
    offset: int = 0,
    name: str | None = None,
) -> list[Alert]:
    """Newest first; ``since``: only alerts that started at or after it."""
    q = select(alerts).order_by(alerts.c.id.desc()).limit(limit).offset(offset)
    if state:
        q = q.where(alerts.c.state == state)
    if name is not None:
        q = q.where(alerts.c.name == name)
    if since is not None:
        q = q.where(alerts.c.started_at >= since)
    with engine.connect() as conn:
        return [Alert(**_alert_values(r)) for r in conn.execute(q).mappings()]


def get(engine: Engine, alert_id: int) -> AlertWithTimeline:
    with engine.connect() as conn:
        row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).mappings().first()
        if row is None:
            raise NotFound(f"no alert {alert_id}")
        events = conn.execute(
            select(alert_events)
            .where(alert_events.c.alert_id == alert_id)
            .order_by(alert_events.c.at, alert_events.c.id)
        ).mappings()
        timeline = tuple(AlertEvent(**e) for e in events)
        return AlertWithTimeline(**_alert_values(row), timeline=timeline)


def overlapping(engine: Engine, start: float, end: float) -> list[Alert]:
    """Alerts that were firing at some time in [start, end], oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(alerts)
            .where(
                alerts.c.started_at <= end,
                or_(alerts.c.resolved_at.is_(None), alerts.c.resolved_at >= start),
            )
            .order_by(alerts.c.started_at)
        ).mappings()
        return [Alert(**_alert_values(r)) for r in rows]


def add_silence(
    engine: Engine, name: str, labels: JsonObject, until: float, reason: str, now: float
) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                insert(silences)
                .values(
                    name=name,
                    labels=labels,
                    until=until,
                    reason=reason,
                    created_at=now,
                )
                .returning(silences.c.id)
            ).scalar_one()
        )


def is_silenced(conn: Connection, name: str, labels: JsonObject, now: float) -> bool:
    rows = conn.execute(
        select(silences.c.labels).where(silences.c.name == name, silences.c.until > now)
    )
    return any(all(labels.get(k) == v for k, v in (r.labels or {}).items()) for r in rows)


def enqueue_notifications(
    conn: Connection, alert_id: int, notifiers: list[str], event: str, now: float
) -> None:
    if notifiers:
        conn.execute(
            insert(notifications),
            [
                {"alert_id": alert_id, "notifier": n, "event": event, "next_attempt_at": now}
                for n in notifiers
            ],
        )


def due_notifications(
    engine: Engine, now: float, max_attempts: int, limit: int = 50
) -> list[DueNotification]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                notifications,
                alerts.c.fingerprint,
                alerts.c.name,
                alerts.c.severity,
                alerts.c.summary,
                alerts.c.labels,
                alerts.c.started_at,
                alerts.c.resolved_at,
                alerts.c.state,
            )
            .join(alerts, alerts.c.id == notifications.c.alert_id)
            .where(
                and_(
                    notifications.c.delivered_at.is_(None),
                    notifications.c.next_attempt_at <= now,
                    notifications.c.attempts < max_attempts,
                )
            )
            .order_by(notifications.c.id)
            .limit(limit)
        ).mappings()
        return [DueNotification(**_alert_values(r)) for r in rows]


def notification_done(
    engine: Engine, notification_id: int, now: float, alert_id: int, detail: str
) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(notifications)
            .where(notifications.c.id == notification_id)
            .values(delivered_at=now, attempts=notifications.c.attempts + 1)
        )
        add_event(conn, alert_id, now, "notified", detail)


def notification_failed(engine: Engine, notification_id: int, next_at: float, error: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(notifications)
            .where(notifications.c.id == notification_id)
            .values(
                attempts=notifications.c.attempts + 1,
                next_attempt_at=next_at,
                last_error=error[:500],
            )
        )
