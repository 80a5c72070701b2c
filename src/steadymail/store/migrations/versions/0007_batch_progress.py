"""batch progress: each worker records progress on the batch row it holds, not on the send's

Every checkpoint used to write `sends.last_progress_at`: one row that every worker of a send
wrote, so a worker frozen inside a checkpoint held all the others. The stall detector now reads
the newest of the send's and its batches' progress times.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("progress_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("progress_at")
