"""Campaigns: a template sent to a list, checked before it starts (now or at a scheduled
time), then steered."""

from datetime import datetime

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.domain.schedule import start_time
from steadymail.domain.states import SendKind, SendState
from steadymail.errors import ValidationError
from steadymail.sending.mime import parse_address
from steadymail.sending.preflight import check_campaign
from steadymail.services import domains
from steadymail.store import contacts, sends, templates
from steadymail.store.sends import CampaignStart, SendProgress


def create_campaign(
    engine: Engine,
    clock: Clock,
    settings: Settings,
    *,
    name: str,
    list_name: str,
    template: int | str,
    from_addr: str | None = None,
) -> int:
    """A draft send of `template` to `list_name`; rejected now if it could not render."""
    with engine.connect() as conn:
        list_id = contacts.list_id_by_name(conn, list_name)
    tpl = templates.get_template(engine, template)
    check_campaign(engine, list_id, tpl)
    sender = from_addr or settings.default_from
    domains.check_sender(engine, settings, parse_address(sender).domain)
    return sends.create_send(
        engine,
        name=name,
        kind=SendKind.CAMPAIGN,
        list_id=list_id,
        template_id=tpl.id,
        from_addr=sender,
        now=clock.now(),
    )


def start(engine: Engine, clock: Clock, settings: Settings, send_id: int) -> CampaignStart:
    """Re-check the template against the list as it is now, then materialise and run."""
    send = sends.get_send(engine, send_id)
    if send.kind != SendKind.CAMPAIGN:
        raise ValidationError("only campaigns are started; streams always run")
    # A campaign always has its list and template.
    assert send.list_id is not None and send.template_id is not None
    check_campaign(engine, send.list_id, templates.get_template(engine, send.template_id))
    # Again at the start: a domain's verification may have lapsed since the draft was made.
    domains.check_sender(engine, settings, parse_address(send.from_addr).domain)
    return sends.start_campaign(engine, send_id, settings.batch_size, clock.now())


def schedule(
    engine: Engine, clock: Clock, send_id: int, at: datetime, tz: str | None = None
) -> float:
    """Schedule a draft campaign (or move a scheduled one) to start at ``at``: a wall time in
    ``tz``, or a time with its offset. Checked now as a start would be; returns the instant."""
    now = clock.now()
    when = start_time(at, tz, now)
    send = sends.get_send(engine, send_id)
    if send.kind != SendKind.CAMPAIGN:
        raise ValidationError("only campaigns are scheduled; streams always run")
    assert send.list_id is not None and send.template_id is not None
    check_campaign(engine, send.list_id, templates.get_template(engine, send.template_id))
    sends.schedule(engine, send_id, when)
    return when


def check_start_time(clock: Clock, at: datetime, tz: str | None) -> float:
    """The instant a schedule for ``at`` would start, or ValidationError (a time that does not
    exist or happens twice in ``tz``, an unknown zone, the past) before anything is created."""
    return start_time(at, tz, clock.now())


def change(engine: Engine, clock: Clock, send_id: int, action: str) -> SendState:
    """pause, resume or cancel (a scheduled send too, before it starts)."""
    return sends.change_state(engine, send_id, action, clock.now())


def status(engine: Engine, send_id: int) -> SendProgress:
    return sends.progress(engine, send_id)
