"""message log: `message_events` (each message's history) and messages found by recipient

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "message_events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("message_id", _ID, nullable=False),
        sa.Column("send_id", _ID, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("smtp_code", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
    )
    op.create_index("ix_message_events_message", "message_events", ["message_id", "id"])
    op.create_index("ix_message_events_at", "message_events", ["at"])
    op.create_index("ix_messages_email_lower", "messages", [sa.text("lower(email)")])
    op.create_index("ix_tracking_events_message", "tracking_events", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_tracking_events_message", table_name="tracking_events")
    op.drop_index("ix_messages_email_lower", table_name="messages")
    op.drop_index("ix_message_events_at", table_name="message_events")
    op.drop_index("ix_message_events_message", table_name="message_events")
    op.drop_table("message_events")
