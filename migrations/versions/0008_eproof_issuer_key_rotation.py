"""e-Proof: issuer keys sign from an activation time (rotation publishes the new key first)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 20:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bauhinia.core.database

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("eproof_issuer_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("active_from", bauhinia.core.database.UTCDateTime(timezone=True), nullable=True))
    op.execute("UPDATE eproof_issuer_keys SET active_from = created_at")  # every key so far signed from its making
    with op.batch_alter_table("eproof_issuer_keys", schema=None) as batch_op:
        batch_op.alter_column(
            "active_from", existing_type=bauhinia.core.database.UTCDateTime(timezone=True), nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("eproof_issuer_keys", schema=None) as batch_op:
        batch_op.drop_column("active_from")
