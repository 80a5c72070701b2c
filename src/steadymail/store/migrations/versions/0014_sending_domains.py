"""sending domains and their DKIM keys

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sending_domains",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(length=253), nullable=False, unique=True),
        sa.Column("return_path_domain", sa.String(length=253), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("checked_at", sa.Float(), nullable=True),
        sa.Column("verified_at", sa.Float(), nullable=True),
    )
    op.create_table(
        "dkim_keys",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("domain_id", _ID, sa.ForeignKey("sending_domains.id"), nullable=False),
        sa.Column("selector", sa.String(length=63), nullable=False),
        sa.Column("algorithm", sa.String(length=20), nullable=False),
        sa.Column("key_file", sa.Text(), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("activated_at", sa.Float(), nullable=True),
        sa.Column("retiring_at", sa.Float(), nullable=True),
        sa.UniqueConstraint("domain_id", "selector", name="uq_dkim_keys_domain_selector"),
    )


def downgrade() -> None:
    op.drop_table("dkim_keys")
    op.drop_table("sending_domains")
