"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 02:00:20.334124
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bauhinia.core.database

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "audit_events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("at", bauhinia.core.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_events")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_events_hash")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_event_type"), ["event_type"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_subject"), ["subject"], unique=False)

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "residents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("english_surname", sa.String(length=80), nullable=False),
        sa.Column("english_given_names", sa.String(length=120), nullable=False),
        sa.Column("chinese_name", sa.String(length=40), nullable=True),
        sa.Column("id_number_hash", sa.String(length=64), nullable=False),
        sa.Column("id_number_masked", sa.String(length=16), nullable=False),
        sa.Column("date_of_birth", sa.Date(), nullable=False),
        sa.Column("gender", sa.String(length=1), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("mobile", sa.String(length=20), nullable=True),
        sa.Column("preferred_language", sa.String(length=8), nullable=False),
        sa.Column("assurance_level", sa.String(length=16), nullable=False),
        sa.Column("webauthn_user_handle", sa.LargeBinary(length=64), nullable=False),
        sa.Column(
            "created_at",
            bauhinia.core.database.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_residents")),
        sa.UniqueConstraint("email", name=op.f("uq_residents_email")),
        sa.UniqueConstraint("id_number_hash", name=op.f("uq_residents_id_number_hash")),
        sa.UniqueConstraint("webauthn_user_handle", name=op.f("uq_residents_webauthn_user_handle")),
    )
    op.create_table(
        "sign_in_throttles",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column(
            "window_started_at",
            bauhinia.core.database.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "locked_until",
            bauhinia.core.database.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_sign_in_throttles")),
    )
    op.create_table(
        "staff_members",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=120), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("totp_secret_sealed", sa.LargeBinary(length=128), nullable=False),
        sa.Column("totp_last_step", sa.Integer(), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at",
            bauhinia.core.database.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_members")),
        sa.UniqueConstraint("username", name=op.f("uq_staff_members_username")),
    )
    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("principal_id", sa.String(length=36), nullable=True),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column(
            "created_at",
            bauhinia.core.database.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "last_seen_at",
            bauhinia.core.database.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "expires_at",
            bauhinia.core.database.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_web_sessions")),
    )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_sessions_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_web_sessions_principal_id"), ["principal_id"], unique=False)

    op.create_table(
        "account_reset_codes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("resident_id", sa.String(length=36), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("issued_by_staff_id", sa.String(length=36), nullable=False),
        sa.Column(
            "issued_at",
            bauhinia.core.database.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "expires_at",
            bauhinia.core.database.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column("used_at", bauhinia.core.database.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["issued_by_staff_id"],
            ["staff_members.id"],
            name=op.f("fk_account_reset_codes_issued_by_staff_id_staff_members"),
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["residents.id"],
            name=op.f("fk_account_reset_codes_resident_id_residents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_reset_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_account_reset_codes_code_hash")),
    )
    with op.batch_alter_table("account_reset_codes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_account_reset_codes_resident_id"),
            ["resident_id"],
            unique=False,
        )

    op.create_table(
        "authenticators",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("resident_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=80), nullable=False),
        sa.Column(
            "created_at",
            bauhinia.core.database.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column(
            "last_used_at",
            bauhinia.core.database.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("secret_sealed", sa.LargeBinary(length=128), nullable=True),
        sa.Column("last_step", sa.Integer(), nullable=True),
        sa.Column("credential_id", sa.LargeBinary(length=1024), nullable=True),
        sa.Column("public_key", sa.LargeBinary(length=1024), nullable=True),
        sa.Column("sign_count", sa.Integer(), nullable=True),
        sa.Column("transports", sa.JSON(), nullable=True),
        sa.Column("backed_up", sa.Boolean(), nullable=True),
        sa.Column("code_hashes", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["residents.id"],
            name=op.f("fk_authenticators_resident_id_residents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_authenticators")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_authenticators_credential_id")),
    )
    with op.batch_alter_table("authenticators", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_authenticators_resident_id"), ["resident_id"], unique=False)

    op.create_table(
        "guardian_consents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("resident_id", sa.String(length=36), nullable=False),
        sa.Column("guardian_name", sa.String(length=160), nullable=False),
        sa.Column("guardian_id_number_hash", sa.String(length=64), nullable=False),
        sa.Column("guardian_id_number_masked", sa.String(length=16), nullable=False),
        sa.Column("relationship_to_resident", sa.String(length=16), nullable=False),
        sa.Column(
            "recorded_at",
            bauhinia.core.database.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("confirmed_by_staff_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["confirmed_by_staff_id"],
            ["staff_members.id"],
            name=op.f("fk_guardian_consents_confirmed_by_staff_id_staff_members"),
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["residents.id"],
            name=op.f("fk_guardian_consents_resident_id_residents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guardian_consents")),
    )
    with op.batch_alter_table("guardian_consents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_guardian_consents_resident_id"),
            ["resident_id"],
            unique=False,
        )

    op.create_table(
        "identity_verifications",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("resident_id", sa.String(length=36), nullable=False),
        sa.Column("staff_id", sa.String(length=36), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("document", sa.String(length=32), nullable=False),
        sa.Column("location", sa.String(length=120), nullable=False),
        sa.Column(
            "verified_at",
            bauhinia.core.database.UTCDateTime(timezone=True),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["residents.id"],
            name=op.f("fk_identity_verifications_resident_id_residents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"],
            ["staff_members.id"],
            name=op.f("fk_identity_verifications_staff_id_staff_members"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_verifications")),
    )
    with op.batch_alter_table("identity_verifications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identity_verifications_resident_id"),
            ["resident_id"],
            unique=False,
        )


def downgrade() -> None:

    with op.batch_alter_table("identity_verifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_verifications_resident_id"))

    op.drop_table("identity_verifications")
    with op.batch_alter_table("guardian_consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_guardian_consents_resident_id"))

    op.drop_table("guardian_consents")
    with op.batch_alter_table("authenticators", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_authenticators_resident_id"))

    op.drop_table("authenticators")
    with op.batch_alter_table("account_reset_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_account_reset_codes_resident_id"))

    op.drop_table("account_reset_codes")
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_sessions_principal_id"))
        batch_op.drop_index(batch_op.f("ix_web_sessions_expires_at"))

    op.drop_table("web_sessions")
    op.drop_table("staff_members")
    op.drop_table("sign_in_throttles")
    op.drop_table("residents")
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_subject"))
        batch_op.drop_index(batch_op.f("ix_audit_events_event_type"))

    op.drop_table("audit_events")
