"""Moving a test's record to another revision of the schema, in one transaction, as `ltc db upgrade` does."""

from __future__ import annotations

from alembic import command

from storage.db import alembic_config, get_engine


def migrate(step: str, revision: str) -> None:
    """`step` is `upgrade` or `downgrade`."""
    cfg = alembic_config()
    with get_engine().begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, step)(cfg, revision)
