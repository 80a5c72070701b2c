"""A campaign checked before it starts: its template compiles, uses only variables the list
has, and renders for the list's first contacts. Run when a campaign is created, started, or
started by its schedule (the template or the list may have changed since)."""

from sqlalchemy import Engine

from steadymail.errors import ValidationError
from steadymail.sending.render import (
    check_template,
    check_variables,
    contact_context,
    render_within,
)
from steadymail.store import contacts
from steadymail.store.templates import Template
from steadymail.tracking.rewrite import check_html_depth

# Contacts dry-rendered before a campaign may start: a template that fails for them would
# fail message after message once the send runs.
DRY_RUN_CONTACTS = 5


def check_campaign(engine: Engine, list_id: int, template: Template) -> None:
    """ValidationError naming what fails (and for which contact)."""
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
