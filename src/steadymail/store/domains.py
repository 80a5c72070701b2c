"""Sending domains and their DKIM keys.

A key's states: ``pending`` (made, its record to be published; never signs), ``active`` (found
published by a check; signs), ``retiring`` (a newer key of its algorithm became active: it no
longer signs, but its record stays published so that mail it signed still verifies), and
``retired`` (its record may go). One function per state change; a check's findings are
written in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Select, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from steadymail.errors import NotFound, ValidationError
from steadymail.store.schema import dkim_keys, sending_domains

PENDING, ACTIVE, RETIRING, RETIRED = "pending", "active", "retiring", "retired"


@dataclass(frozen=True)
class DkimKey:
    id: int
    selector: str
    algorithm: str
    key_file: str
    public_key: str
    state: str
    created_at: float
    activated_at: float | None
    retiring_at: float | None


@dataclass(frozen=True)
class SendingDomain:
    id: int
    name: str
    return_path_domain: str
    created_at: float
    checked_at: float | None
    verified_at: float | None
    keys: tuple[DkimKey, ...]


@dataclass(frozen=True)
class SigningKey:
    domain: str
    selector: str
    algorithm: str
    key_file: str


def add_domain(engine: Engine, name: str, return_path_domain: str, now: float) -> int:
    try:
        with engine.begin() as conn:
            return int(
                conn.execute(
                    insert(sending_domains).values(
                        name=name, return_path_domain=return_path_domain, created_at=now
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
            )
    except IntegrityError as e:
        raise ValidationError(f"the sending domain {name} is already added") from e


def add_key(
    engine: Engine,
    domain_id: int,
    selector: str,
    algorithm: str,
    key_file: str,
    public_key: str,
    now: float,
) -> None:
    """A new pending key: it signs nothing until a check finds its record published."""
    with engine.begin() as conn:
        conn.execute(
            insert(dkim_keys).values(
                domain_id=domain_id,
                selector=selector,
                algorithm=algorithm,
                key_file=key_file,
                public_key=public_key,
                state=PENDING,
                created_at=now,
            )
        )


def _keys(engine: Engine, domain_ids: Sequence[int]) -> dict[int, list[DkimKey]]:
    out: dict[int, list[DkimKey]] = {i: [] for i in domain_ids}
    with engine.connect() as conn:
        rows = conn.execute(
            select(dkim_keys)
            .where(dkim_keys.c.domain_id.in_(list(domain_ids)))
            .order_by(dkim_keys.c.id)
        ).mappings()
        for r in rows:
            out[int(r["domain_id"])].append(
                DkimKey(
                    int(r["id"]),
                    r["selector"],
                    r["algorithm"],
                    r["key_file"],
                    r["public_key"],
                    r["state"],
                    float(r["created_at"]),
                    r["activated_at"],
                    r["retiring_at"],
                )
            )
    return out


def all_domains(engine: Engine) -> list[SendingDomain]:
    return _domains(engine, select(sending_domains).order_by(sending_domains.c.name))


def get_domain(engine: Engine, name: str) -> SendingDomain:
    found = _domains(engine, select(sending_domains).where(sending_domains.c.name == name))
    if not found:
        raise NotFound(f"no sending domain {name}; add it with `steadymail domain add {name}`")
    return found[0]


def _domains(engine: Engine, query: Select[Any]) -> list[SendingDomain]:
    with engine.connect() as conn:
        rows = list(conn.execute(query).mappings())
    keys = _keys(engine, [int(r["id"]) for r in rows])
    return [
        SendingDomain(
            int(r["id"]),
            r["name"],
            r["return_path_domain"],
            float(r["created_at"]),
            r["checked_at"],
            r["verified_at"],
            tuple(keys[int(r["id"])]),
        )
        for r in rows
    ]


def remove_domain(engine: Engine, domain_id: int) -> None:
    """A domain and its keys' rows (an `add` whose keys could not be made)."""
    with engine.begin() as conn:
        conn.execute(delete(dkim_keys).where(dkim_keys.c.domain_id == domain_id))
        conn.execute(delete(sending_domains).where(sending_domains.c.id == domain_id))


def record_check(
    engine: Engine, domain_id: int, now: float, verified: bool, published: Sequence[int]
) -> None:
    """A check's outcome: ``published`` pending keys become active, and the key each replaces
    (the active one of its algorithm) starts retiring; the domain is verified, or no longer."""
    with engine.begin() as conn:
        for key_id in published:
            # The key first, and only if it is still pending: of two checks at once, one moves
            # it; the other changes nothing (it must not retire the key the first activated).
            moved = conn.execute(
                update(dkim_keys)
                .where(dkim_keys.c.id == key_id, dkim_keys.c.state == PENDING)
                .values(state=ACTIVE, activated_at=now)
            )
            if moved.rowcount != 1:
                continue
            algorithm = conn.execute(
                select(dkim_keys.c.algorithm).where(dkim_keys.c.id == key_id)
            ).scalar_one()
            conn.execute(
                update(dkim_keys)
                .where(
                    dkim_keys.c.domain_id == domain_id,
                    dkim_keys.c.algorithm == algorithm,
                    dkim_keys.c.state == ACTIVE,
                    dkim_keys.c.id != key_id,
                )
                .values(state=RETIRING, retiring_at=now)
            )
        conn.execute(
            update(sending_domains)
            .where(sending_domains.c.id == domain_id)
            .values(checked_at=now, verified_at=now if verified else None)
        )


def retire_keys(engine: Engine, domain_id: int, retiring_before: float) -> list[str]:
    """Keys retiring since before ``retiring_before`` become retired; their selectors."""
    with engine.begin() as conn:
        rows = conn.execute(
            select(dkim_keys.c.id, dkim_keys.c.selector).where(
                dkim_keys.c.domain_id == domain_id,
                dkim_keys.c.state == RETIRING,
                dkim_keys.c.retiring_at < retiring_before,
            )
        ).all()
        if rows:
            conn.execute(
                update(dkim_keys)
                .where(dkim_keys.c.id.in_([r.id for r in rows]))
                .values(state=RETIRED)
            )
    return [str(r.selector) for r in rows]


def signing_keys(engine: Engine) -> list[SigningKey]:
    """Every active key of every domain: what workers sign with."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                sending_domains.c.name,
                dkim_keys.c.selector,
                dkim_keys.c.algorithm,
                dkim_keys.c.key_file,
            )
            .join(sending_domains, sending_domains.c.id == dkim_keys.c.domain_id)
            .where(dkim_keys.c.state == ACTIVE)
            .order_by(dkim_keys.c.id)
        ).all()
    return [SigningKey(r.name, r.selector, r.algorithm, r.key_file) for r in rows]


def verified_names(engine: Engine) -> set[str]:
    """The domains whose last check found every record."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(sending_domains.c.name).where(sending_domains.c.verified_at.is_not(None))
        ).all()
    return {str(r.name) for r in rows}
