"""Alembic environment: async engines, one migrator at a time (a PostgreSQL advisory lock), bounded waits."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from bauhinia.core.database import Base, create_engine
from bauhinia.models import load_all_models
from bauhinia.settings import Settings

MIGRATION_LOCK_ID = 0x62617568  # "bauh"

load_all_models()
target_metadata = Base.metadata


def _url() -> str:
    url = context.config.attributes.get("database_url") or context.config.get_main_option("sqlalchemy.url")
    return url or Settings(mode="dev").resolved_database_url  # type: ignore[arg-type]


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        user_module_prefix="bauhinia.core.database.",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Wait at most 60 s for another node's migration; never hold a table lock for long.
            connection.execute(text("SET lock_timeout = '10s'"))
            connection.execute(text("SET statement_timeout = '300s'"))
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
