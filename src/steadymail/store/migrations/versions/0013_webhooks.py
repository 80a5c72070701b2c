"""event webhooks: endpoints, the durable outbox of deliveries, batches, and read cursors

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=200), server_default="", nullable=False),
        sa.Column("enabled", sa.Integer(), server_default="1", nullable=False),
        sa.Column("disabled_reason", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("starts", sa.JSON(), nullable=False),
        sa.Column("failing_since", sa.Float(), nullable=True),
        sa.Column("last_success_at", sa.Float(), nullable=True),
        sa.Column("last_error", sa.Text(), server_default="", nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("webhook_id", _ID, nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("message_id", _ID, nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("batch_id", sa.String(length=40), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
    )
    op.create_index(
        "ix_webhook_deliveries_next", "webhook_deliveries", ["webhook_id", "state", "id"]
    )
    op.create_index("ix_webhook_deliveries_batch", "webhook_deliveries", ["batch_id"])
    op.create_table(
        "webhook_batches",
        sa.Column("id", sa.String(length=40), primary_key=True),
        sa.Column("webhook_id", _ID, nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("last_error", sa.Text(), server_default="", nullable=False),
        sa.Column("delivered_at", sa.Float(), nullable=True),
    )
    op.create_index(
        "ix_webhook_batches_open", "webhook_batches", ["webhook_id", "state", "created_at"]
    )
    op.create_table(
        "webhook_cursors",
        sa.Column("source", sa.String(length=40), primary_key=True),
        sa.Column("position", _ID, nullable=False),
        sa.Column("gaps", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("webhook_cursors")
    op.drop_index("ix_webhook_batches_open", table_name="webhook_batches")
    op.drop_table("webhook_batches")
    op.drop_index("ix_webhook_deliveries_batch", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_next", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
