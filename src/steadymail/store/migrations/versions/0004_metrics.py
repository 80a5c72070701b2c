"""metrics: per-process interval sums and the region's time series

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "metric_deltas",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("region", sa.String(length=40), nullable=False),
        sa.Column("instance_id", sa.String(length=100), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
    )
    op.create_index("ix_metric_deltas_bucket", "metric_deltas", ["bucket"])
    op.create_table(
        "metric_points",
        sa.Column("region", sa.String(length=40), primary_key=True),
        sa.Column("name", sa.String(length=60), primary_key=True),
        sa.Column("resolution", sa.Float(), primary_key=True),
        sa.Column("ts", sa.Float(), primary_key=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("count", sa.Integer(), server_default="1", nullable=False),
        sa.Column("min", sa.Float(), nullable=False),
        sa.Column("max", sa.Float(), nullable=False),
    )
    op.create_index("ix_metric_points_resolution_ts", "metric_points", ["resolution", "ts"])


def downgrade() -> None:
    op.drop_index("ix_metric_points_resolution_ts", table_name="metric_points")
    op.drop_table("metric_points")
    op.drop_index("ix_metric_deltas_bucket", table_name="metric_deltas")
    op.drop_table("metric_deltas")
