"""inbound reports: bounces and complaints kept whole before they are read

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "inbound_reports",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("mail_from", sa.String(length=400), server_default="", nullable=False),
        sa.Column("rcpt", sa.String(length=400), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("kind", sa.String(length=20), server_default="", nullable=False),
        sa.Column("message_id", _ID, nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
    )
    op.create_index("ix_inbound_reports_status", "inbound_reports", ["status", "id"])


def downgrade() -> None:
    op.drop_index("ix_inbound_reports_status", table_name="inbound_reports")
    op.drop_table("inbound_reports")
