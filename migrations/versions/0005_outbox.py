"""The transactional outbox: outgoing HTTP notifications stored with the change they announce (core.outbox).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 08:07:14.682708
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bauhinia.core.database

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", bauhinia.core.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", bauhinia.core.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", bauhinia.core.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", bauhinia.core.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("given_up_at", bauhinia.core.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_messages")),
    )
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_messages_next_attempt_at"), ["next_attempt_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_messages_next_attempt_at"))

    op.drop_table("outbox_messages")
