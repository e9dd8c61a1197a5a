"""Commands that do one piece of work against the configured platform (`bauhinia clients add`,
`bauhinia exchange …`, `bauhinia purge`…): build the app from the settings, run, close the database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from bauhinia.settings import Settings

T = TypeVar("T")


def settings_for(data_dir: Path | None = None, **overrides: object) -> Settings:
    """The BAUHINIA_* settings, with a command's --data-dir and any overrides."""
    values: dict[str, object] = dict(overrides)
    if data_dir is not None:
        values["data_dir"] = data_dir
    return Settings(**values)  # type: ignore[arg-type]


def run_with_app(data_dir: Path | None, work: Callable[[AsyncSession, Any], Awaitable[T]]) -> T:
    """Run ``work(db, app.state)`` in one database session, then dispose of the engine."""
    from bauhinia.app import create_app

    application = create_app(settings_for(data_dir))

    async def run() -> T:
        try:
            async with application.state.sessionmaker() as db:
                return await work(db, application.state)
        finally:
            await application.state.engine.dispose()

    return asyncio.run(run())
