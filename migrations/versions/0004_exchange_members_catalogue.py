"""The exchange gateway: members, their systems, the data catalogue (versioned items) and purposes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 05:34:27.682101
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bauhinia.core.database

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exchange_members",
        sa.Column("id", sa.String(length=98), nullable=False),
        sa.Column("member_class", sa.String(length=32), nullable=False),
        sa.Column("name", sa.JSON(), nullable=False),
        sa.Column("created_at", bauhinia.core.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", bauhinia.core.database.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_members")),
    )
    with op.batch_alter_table("exchange_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exchange_members_member_class"), ["member_class"], unique=False)

    op.create_table(
        "exchange_purposes",
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("description", sa.JSON(), nullable=False),
        sa.Column("consumer_system_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", bauhinia.core.database.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_exchange_purposes")),
    )
    op.create_table(
        "exchange_systems",
        sa.Column("id", sa.String(length=131), nullable=False),
        sa.Column("member_id", sa.String(length=98), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("signing_jwks", sa.JSON(), nullable=False),
        sa.Column("encryption_jwks", sa.JSON(), nullable=False),
        sa.Column("data_endpoint", sa.Text(), nullable=True),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("allow_loopback_http", sa.Boolean(), nullable=False),
        sa.Column("created_at", bauhinia.core.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", bauhinia.core.database.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oidc_clients.client_id"],
            name=op.f("fk_exchange_systems_client_id_oidc_clients"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["exchange_members.id"],
            name=op.f("fk_exchange_systems_member_id_exchange_members"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_systems")),
        sa.UniqueConstraint("client_id", name=op.f("uq_exchange_systems_client_id")),
    )
    with op.batch_alter_table("exchange_systems", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exchange_systems_member_id"), ["member_id"], unique=False)

    op.create_table(
        "exchange_data_items",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.JSON(), nullable=False),
        sa.Column("value_schema", sa.JSON(), nullable=False),
        sa.Column("provider_system_id", sa.String(length=131), nullable=False),
        sa.Column("sensitivity", sa.String(length=16), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column("purpose_limitation", sa.Text(), nullable=False),
        sa.Column("published_at", bauhinia.core.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("superseded_at", bauhinia.core.database.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["provider_system_id"],
            ["exchange_systems.id"],
            name=op.f("fk_exchange_data_items_provider_system_id_exchange_systems"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", "version", name=op.f("pk_exchange_data_items")),
    )
    with op.batch_alter_table("exchange_data_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_exchange_data_items_provider_system_id"), ["provider_system_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("exchange_data_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exchange_data_items_provider_system_id"))

    op.drop_table("exchange_data_items")
    with op.batch_alter_table("exchange_systems", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exchange_systems_member_id"))

    op.drop_table("exchange_systems")
    op.drop_table("exchange_purposes")
    with op.batch_alter_table("exchange_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exchange_members_member_class"))

    op.drop_table("exchange_members")
