"""Templates: validated (syntax, sandbox) before they are stored."""

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.sending.render import compile_template
from steadymail.store import templates


def create_template(
    engine: Engine, clock: Clock, name: str, subject: str, html: str, text: str
) -> int:
    """Store a template after compiling all its parts; ValidationError says what is wrong."""
    compiled = compile_template(subject, html, text)
    return templates.create_template(
        engine, name, subject, html, text, sorted(compiled.variables), clock.now()
    )
