"""suppression audit: the message a suppression came from, a log of every suppression a
person added or removed (with who and why), and contacts found by their lower-cased address

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("suppressions") as batch:
        batch.add_column(sa.Column("message_id", _ID, nullable=True))
    op.create_table(
        "suppression_log",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("stream", sa.String(length=20), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("by", sa.String(length=200), nullable=False),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
    )
    op.create_index("ix_suppression_log_email", "suppression_log", ["email", "at"])
    # A suppression marks every contact with that address: found by index, not by a scan.
    op.create_index("ix_contacts_email_lower", "contacts", [sa.text("lower(email)")])


def downgrade() -> None:
    op.drop_index("ix_contacts_email_lower", table_name="contacts")
    op.drop_index("ix_suppression_log_email", table_name="suppression_log")
    op.drop_table("suppression_log")
    with op.batch_alter_table("suppressions") as batch:
        batch.drop_column("message_id")
