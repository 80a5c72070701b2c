"""Templates: validated (syntax, sandbox, a dry render within the budgets) before storing."""

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.sending.render import check_template
from steadymail.store import templates
from steadymail.store.templates import TemplateSummary
from steadymail.tracking.rewrite import check_html_depth


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
