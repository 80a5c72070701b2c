"""suppression streams and one-write tracking events: suppressions keyed by the bare,
case-folded address and a stream (`marketing` or `all`); opens and unsubscribes recorded once

Existing suppressions keep what they were meant to mean: `unsubscribed` rows become `marketing`
(the README always promised that a newsletter unsubscribe never blocks a password reset), every
other reason (hard bounces, complaints) becomes `all`. Their addresses are re-keyed with the
same rule the code uses. Repeated open and unsubscribe events collapse to their first row, so
the unique index that keeps them single can be built.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from steadymail.domain.suppression import stream_for, suppression_key

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ONCE_KINDS = "kind IN ('open', 'unsubscribe')"


def _suppressions(name: str, pk: str, *key: str) -> sa.Table:
    return op.create_table(
        name,
        sa.Column("email", sa.String(length=320), nullable=False),
        *([sa.Column("stream", sa.String(length=20), nullable=False)] if "stream" in key else []),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(*key, name=pk),
    )


def upgrade() -> None:
    conn = op.get_bind()
    new = _suppressions("suppressions_v7", "pk_suppressions", "email", "stream")
    rows = conn.execute(sa.text("SELECT email, reason, detail, created_at FROM suppressions"))
    seen: set[tuple[str, str]] = set()
    out = []
    for r in rows:
        key = (suppression_key(r.email), stream_for(r.reason).value)
        if key not in seen:
            seen.add(key)
            out.append(
                {
                    "email": key[0],
                    "stream": key[1],
                    "reason": r.reason,
                    "detail": r.detail,
                    "created_at": r.created_at,
                }
            )
    if out:
        op.bulk_insert(new, out)
    op.drop_table("suppressions")
    op.rename_table("suppressions_v7", "suppressions")
    op.execute(
        "DELETE FROM tracking_events WHERE "
        + _ONCE_KINDS
        + " AND id NOT IN (SELECT MIN(id) FROM tracking_events WHERE "
        + _ONCE_KINDS
        + " GROUP BY message_id, kind, machine)"
    )
    op.create_index(
        "uq_tracking_events_once",
        "tracking_events",
        ["message_id", "kind", "machine"],
        unique=True,
        sqlite_where=sa.text(_ONCE_KINDS),
        postgresql_where=sa.text(_ONCE_KINDS),
    )


def downgrade() -> None:
    op.drop_index("uq_tracking_events_once", table_name="tracking_events")
    # The name PostgreSQL gave the original key.
    old = _suppressions("suppressions_v6", "suppressions_pkey", "email")
    conn = op.get_bind()
    # One row an address; an `all` row wins, as it blocked more.
    rows = conn.execute(
        sa.text(
            "SELECT email, reason, detail, created_at FROM suppressions "
            "ORDER BY email, CASE stream WHEN 'all' THEN 0 ELSE 1 END"
        )
    )
    out: dict[str, dict[str, object]] = {}
    for r in rows:
        out.setdefault(r.email, dict(r._mapping))
    if out:
        op.bulk_insert(old, list(out.values()))
    op.drop_table("suppressions")
    op.rename_table("suppressions_v6", "suppressions")
