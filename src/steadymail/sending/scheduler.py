"""Scheduled campaigns started at their time, by whichever worker looks first.

Every worker looks a few times a second (one indexed query on `sends.state`), so a scheduled
send starts within a second of its time while any worker runs. Two workers starting the same
send is harmless: the start locks the send row and only one finds it still scheduled. A send
whose template no longer renders for its list (edited since it was scheduled) is not started:
it goes back to draft with the reason logged and recorded as a platform event.
"""

import asyncio
import contextlib
import logging
import random

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.errors import Conflict, NotFound, ValidationError
from steadymail.sending.preflight import check_campaign
from steadymail.store import events, sends, templates

log = logging.getLogger("steadymail.scheduler")

# How often each worker looks: a quarter second, spread so workers do not look together.
LOOK_EVERY = 0.25


def start_due(engine: Engine, settings: Settings, now: float) -> list[int]:
    """Start every scheduled send whose time has come; returns the ones this call started."""
    started = []
    for send_id in sends.due_scheduled(engine, now):
        try:
            send = sends.get_send(engine, send_id)
            # A campaign always has its list and template.
            assert send.list_id is not None and send.template_id is not None
            check_campaign(engine, send.list_id, templates.get_template(engine, send.template_id))
        except ValidationError as e:
            _refuse(engine, settings, send_id, str(e), now)
            continue
        except NotFound as e:
            _refuse(engine, settings, send_id, str(e), now)
            continue
        try:
            info = sends.start_campaign(engine, send_id, settings.batch_size, now, when_due=True)
        except Conflict:
            continue  # started by another worker, cancelled or moved later, meanwhile
        started.append(send_id)
        log.info(
            "event=scheduled_send_started send=%d messages=%d late_s=%.3f",
            send_id,
            info.messages,
            now - (send.scheduled_at or now),
        )
    return started


def _refuse(engine: Engine, settings: Settings, send_id: int, reason: str, now: float) -> None:
    try:
        sends.unschedule(engine, send_id)
    except Conflict:
        return  # no longer scheduled: someone else dealt with it
    log.error("event=scheduled_send_refused send=%d reason=%r", send_id, reason[:300])
    events.append(
        engine,
        region=settings.region,
        kind="scheduled_send_refused",
        subject=f"send:{send_id}",
        detail={"send": send_id, "reason": reason[:1000]},
        now=now,
    )


class Scheduler:
    """A worker's loop that starts scheduled sends."""

    def __init__(self, engine: Engine, settings: Settings, clock: Clock) -> None:
        self.engine, self.settings, self.clock = engine, settings, clock
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.to_thread(start_due, self.engine, self.settings, self.clock.now())
            except Exception as e:
                log.warning("event=scheduler_failed error=%r", str(e))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), LOOK_EVERY * (0.5 + random.random()))
