"""Import every domain's tables so that Base.metadata is complete (for Alembic and tests)."""

from __future__ import annotations


def load_all_models() -> None:
    from bauhinia.core import audit, outbox, sessions  # noqa: F401
    from bauhinia.eproof import models as eproof_models  # noqa: F401
    from bauhinia.exchange import models as exchange_models  # noqa: F401
    from bauhinia.identity import models  # noqa: F401
    from bauhinia.oidc import models as oidc_models  # noqa: F401
