"""What the API and CLI ask of the watching side: alerts, silences, workers, stalls, incidents."""

from dataclasses import dataclass

from sqlalchemy import Engine

from steadymail.alerts.incident import export_markdown
from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.domain.states import AlertState
from steadymail.errors import ValidationError
from steadymail.store import alerts, instances
from steadymail.store.alerts import Alert, AlertWithTimeline
from steadymail.store.instances import Instance
from steadymail.store.records import JsonObject


@dataclass(frozen=True, slots=True)
class LiveProcess:
    instance: Instance
    # Seconds since its last heartbeat, to a tenth.
    heartbeat_age: float


def list_alerts(
    engine: Engine,
    state: str | None = None,
    since: float | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[Alert]:
    """Newest first; without ``limit``, 100 (500 when asking ``since`` a time)."""
    if limit is None:
        limit = 500 if since is not None else 100
    return alerts.listing(engine, state, limit=limit, since=since, offset=offset)


def alert(engine: Engine, alert_id: int) -> AlertWithTimeline:
    return alerts.get(engine, alert_id)


def ack(engine: Engine, clock: Clock, alert_id: int, by: str) -> None:
    alerts.ack(engine, alert_id, by, clock.now())


def silence(
    engine: Engine, clock: Clock, name: str, labels: JsonObject, minutes: float, reason: str
) -> int:
    if not 0 < minutes <= 60 * 24 * 30:  # written so that NaN fails it too
        raise ValidationError("a silence lasts between 1 minute and 30 days")
    now = clock.now()
    return alerts.add_silence(engine, name, labels, now + minutes * 60, reason, now)


def workers(
    engine: Engine, clock: Clock, settings: Settings, limit: int | None = None, offset: int = 0
) -> list[LiveProcess]:
    """Every live process of the region, with the seconds since its last heartbeat."""
    now = clock.now()
    # Live processes are few (a region's workers, api and monitor): paged after the query.
    rows = instances.all_live(engine, now, settings.dead_age())[offset:][:limit]
    return [LiveProcess(r, round(now - r.heartbeat_at, 1)) for r in rows]


def stalls(engine: Engine, limit: int = 100, offset: int = 0) -> list[Alert]:
    """Firing stall alerts, newest first."""
    return alerts.listing(
        engine, AlertState.FIRING, limit=limit, offset=offset, name="send_stalled"
    )


def incident(engine: Engine, clock: Clock, alert_id: int) -> str:
    return export_markdown(engine, alert_id, clock.now())


@dataclass(frozen=True, slots=True)
class ServiceView:
    """A slot of the region (`worker-1`, `api`, `monitor`) as the console's overview shows it:
    up with its live instance, or down; its restarts in the last hour."""

    slot: str
    service: str
    live: LiveProcess | None
    restarts_last_hour: int
    last_started_at: float
    last_exit: str | None

    @property
    def up(self) -> bool:
        return self.live is not None


def services(engine: Engine, clock: Clock, settings: Settings) -> list[ServiceView]:
    """Every slot alive or seen in the last hour, with its live instance and restarts."""
    now = clock.now()
    live: dict[str, LiveProcess] = {}
    for p in sorted(workers(engine, clock, settings), key=lambda p: p.instance.started_at):
        if p.instance.slot:
            live[p.instance.slot] = p  # the newest instance of the slot
    out = [
        ServiceView(
            h.slot, h.service, live.get(h.slot), h.restarts, h.last_started_at, h.last_stop_reason
        )
        for h in instances.slots_since(engine, now - 3600)
    ]
    return sorted(out, key=lambda v: (v.service, v.slot))
