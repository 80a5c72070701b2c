"""identity and changes: how a process ended (last words), which host process it was, the
configuration it ran with, and the region's change log (flag changes and deploys)

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("proc", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("identity", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("lock", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("config", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("last_words", sa.Text(), nullable=True))
        batch_op.create_index("ix_instances_slot", ["slot", "started_at"], unique=False)
        batch_op.create_index("ix_instances_host", ["host", "stopped_at"], unique=False)
    op.create_table(
        "changes",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("region", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("by", sa.String(length=200), nullable=False, server_default=""),
        sa.Column("detail", sa.Text(), nullable=False, server_default=""),
    )
    op.create_index("ix_changes_at", "changes", ["at"])


def downgrade() -> None:
    op.drop_index("ix_changes_at", table_name="changes")
    op.drop_table("changes")
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index("ix_instances_host")
        batch_op.drop_index("ix_instances_slot")
        batch_op.drop_column("last_words")
        batch_op.drop_column("config")
        batch_op.drop_column("lock")
        batch_op.drop_column("identity")
        batch_op.drop_column("proc")
