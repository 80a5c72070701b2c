"""Templates: validated (syntax, sandbox, a dry render within the budgets) before storing."""

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.domain.states import SendState
from steadymail.errors import Conflict, ValidationError
from steadymail.sending.render import (
    Rendered,
    TemplateSourceError,
    check_template,
    contact_context,
    render_within,
)
from steadymail.services import lists
from steadymail.store import sends, templates
from steadymail.store.templates import Template, TemplateSummary
from steadymail.tracking.rewrite import check_html_depth

__all__ = [
    "Rendered",
    "Template",
    "TemplateSourceError",
    "TemplateSummary",
    "create_template",
    "get",
    "listing",
    "preview",
    "update_template",
]

# Sends that render from their template as they go: editing it would change them mid-send.
_RENDERING = (SendState.SCHEDULED, SendState.RUNNING, SendState.PAUSED)


def create_template(
    engine: Engine, clock: Clock, name: str, subject: str, html: str, text: str
) -> int:
    """Store a template after compiling and dry-rendering it; ValidationError says what is wrong.

    The dry render uses sample values: what fails only for some contacts is caught when a
    campaign starts (first contacts) or, at the latest, fails just those messages."""
    compiled = check_template(subject, html, text)
    check_html_depth(html)  # as written; what loops add is checked on each render
    return templates.create_template(
        engine, name, subject, html, text, sorted(compiled.variables), clock.now()
    )


def listing(engine: Engine, limit: int | None = None, offset: int = 0) -> list[TemplateSummary]:
    """Templates without their bodies, oldest first."""
    return templates.all_templates(engine, limit, offset)


def get(engine: Engine, ref: int | str) -> Template:
    """A template with its parts, by id or name; NotFound if there is none."""
    return templates.get_template(engine, ref)


def update_template(engine: Engine, template_id: int, subject: str, html: str, text: str) -> None:
    """Replace a template's parts after the checks a new one passes. Conflict while a
    scheduled, running or paused send renders from it (its messages would differ mid-send)."""
    compiled = check_template(subject, html, text)
    check_html_depth(html)
    updated = templates.update_unless_rendering(
        engine, template_id, subject, html, text, sorted(compiled.variables), _RENDERING
    )
    if not updated:
        busy = sends.using_template(engine, template_id, _RENDERING)
        raise Conflict(
            f"send(s) {', '.join(map(str, busy))} render from this template as they go; "
            "save it under a new name instead"
        )


def preview(
    engine: Engine, subject: str, html: str, text: str, list_name: str = "", email: str = ""
) -> Rendered:
    """The parts rendered for one contact of a list (or a sample contact), as the worker
    would before link tracking; ValidationError (TemplateSourceError for a line at fault)
    when the template does not compile or render."""
    compiled = check_template(subject, html, text)
    found = None
    if list_name and email:
        found = lists.contact(engine, list_name, email)
        if found is None:
            raise ValidationError(f"no contact {email!r} on list {list_name!r}")
    address = found.email if found else "sample@example.com"
    context = contact_context(
        address,
        found.attributes if found else {},
        {"send": {"id": 0}, "unsubscribe_url": "#unsubscribe"},
    )
    return render_within(compiled, context)
