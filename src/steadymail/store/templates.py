"""Stored templates."""

from dataclasses import dataclass

from sqlalchemy import Engine, insert, select, update

from steadymail.domain.states import SendState
from steadymail.errors import Conflict, NotFound
from steadymail.store.schema import sends, templates


@dataclass(frozen=True, slots=True)
class Template:
    id: int
    name: str
    subject: str
    html: str
    text: str
    # The variables its parts use.
    variables: tuple[str, ...]
    created_at: float


@dataclass(frozen=True, slots=True)
class TemplateSummary:
    """A template without its parts."""

    id: int
    name: str
    subject: str
    variables: tuple[str, ...]


def create_template(
    engine: Engine, name: str, subject: str, html: str, text: str, variables: list[str], now: float
) -> int:
    with engine.begin() as conn:
        if conn.execute(select(templates.c.id).where(templates.c.name == name)).first():
            raise Conflict(f"template {name!r} exists")
        result = conn.execute(
            insert(templates)
            .values(
                name=name,
                subject=subject,
                html=html,
                text=text,
                variables=variables,
                created_at=now,
            )
            .returning(templates.c.id)
        )
        return int(result.scalar_one())


def update_unless_rendering(
    engine: Engine,
    template_id: int,
    subject: str,
    html: str,
    text: str,
    variables: list[str],
    states: tuple[SendState, ...],
) -> bool:
    """Replace the template's parts unless a send in ``states`` renders from it, in one
    statement (the check and the write cannot be split by a send starting); False when one
    does, NotFound when there is no such template."""
    busy = (
        select(sends.c.id)
        .where(sends.c.template_id == template_id, sends.c.state.in_([s.value for s in states]))
        .exists()
    )
    with engine.begin() as conn:
        done = conn.execute(
            update(templates)
            .where(templates.c.id == template_id, ~busy)
            .values(subject=subject, html=html, text=text, variables=variables)
        )
        if done.rowcount:
            return True
        if conn.execute(select(templates.c.id).where(templates.c.id == template_id)).first():
            return False
    raise NotFound(f"no template {template_id}")


def get_template(engine: Engine, ref: int | str) -> Template:
    """A template by id or by name."""
    cond = templates.c.id == ref if isinstance(ref, int) else templates.c.name == ref
    with engine.connect() as conn:
        row = conn.execute(select(templates).where(cond)).first()
    if row is None:
        raise NotFound(f"no template {ref!r}")
    return Template(
        int(row.id),
        row.name,
        row.subject,
        row.html,
        row.text,
        tuple(row.variables),
        float(row.created_at),
    )


def all_templates(
    engine: Engine, limit: int | None = None, offset: int = 0
) -> list[TemplateSummary]:
    """Templates, oldest first; ``limit``/``offset`` page through them."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(templates.c.id, templates.c.name, templates.c.subject, templates.c.variables)
            .order_by(templates.c.id)
            .limit(limit)
            .offset(offset)
        )
        return [TemplateSummary(int(r.id), r.name, r.subject, tuple(r.variables)) for r in rows]
