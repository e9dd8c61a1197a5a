"""``async with`` for the SDK's clients: leaving the block closes what they opened."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Closing:
    """A client used as ``async with Client(...) as client``; subclasses define ``aclose``."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
