"""the audit log's head advances with each inserted event, in the same statement

A trigger on audit_events sets audit_head to the event just inserted, so appending
an event is two statements (lock the head, insert) instead of three.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 03:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POSTGRESQL_FUNCTION = """
CREATE FUNCTION audit_events_advance_head() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE audit_head SET seq = NEW.seq, hash = NEW.hash WHERE id = 1;
    RETURN NULL;
END
$$
"""
POSTGRESQL_TRIGGER = """
CREATE TRIGGER audit_events_advance_head AFTER INSERT ON audit_events
FOR EACH ROW EXECUTE FUNCTION audit_events_advance_head()
"""
SQLITE_TRIGGER = """
CREATE TRIGGER audit_events_advance_head AFTER INSERT ON audit_events
FOR EACH ROW BEGIN
    UPDATE audit_head SET seq = NEW.seq, hash = NEW.hash WHERE id = 1;
END
"""


def upgrade() -> None:
    if _postgresql():
        op.execute(POSTGRESQL_FUNCTION)
        op.execute(POSTGRESQL_TRIGGER)
    else:
        op.execute(SQLITE_TRIGGER)


def downgrade() -> None:
    if _postgresql():
        op.execute("DROP TRIGGER audit_events_advance_head ON audit_events")
        op.execute("DROP FUNCTION audit_events_advance_head()")
    else:
        op.execute("DROP TRIGGER audit_events_advance_head")


def _postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"
