"""Campaigns: a template sent to a list, checked before it starts, then steered."""

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.domain.states import SendKind, SendState
from steadymail.errors import ValidationError
from steadymail.sending.mime import parse_address
from steadymail.sending.render import (
    check_template,
    check_variables,
    contact_context,
    render_within,
)
from steadymail.store import contacts, sends, templates
from steadymail.store.sends import CampaignStart, SendProgress
from steadymail.store.templates import Template
from steadymail.tracking.rewrite import check_html_depth

# Contacts dry-rendered before a campaign may start: a template that fails for them would
# fail message after message once the send runs.
DRY_RUN_CONTACTS = 5


def _validate(engine: Engine, list_id: int, template: Template) -> None:
    compiled = check_template(template.subject, template.html, template.text)
    check_variables(compiled, contacts.attribute_names(engine, list_id))
    extra = {"send": {"id": 0}, "unsubscribe_url": "https://example.invalid/u/sample"}
    for contact in contacts.first_contacts(engine, list_id, DRY_RUN_CONTACTS):
        try:
            context = contact_context(contact.email, contact.attributes, extra)
            rendered = render_within(compiled, context)
            check_html_depth(rendered.html)
        except ValidationError as e:
            raise ValidationError(f"template fails for contact {contact.email}: {e}") from e


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
    _validate(engine, list_id, tpl)
    sender = from_addr or settings.default_from
    parse_address(sender)
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
    _validate(engine, send.list_id, templates.get_template(engine, send.template_id))
    return sends.start_campaign(engine, send_id, settings.batch_size, clock.now())


def change(engine: Engine, clock: Clock, send_id: int, action: str) -> SendState:
    """pause, resume or cancel."""
    return sends.change_state(engine, send_id, action, clock.now())


def status(engine: Engine, send_id: int) -> SendProgress:
    return sends.progress(engine, send_id)
