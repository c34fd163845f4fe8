"""Alembic environment: migrates the database named by the config (set from LTC settings)."""

from typing import Any

from alembic import context
from sqlalchemy import create_engine

from storage.models import Base
from storage.partitions import is_care_day_partition

config = context.config
target_metadata = Base.metadata


def _not_a_partition(name: str | None, type_: str, parent_names: Any) -> bool:
    """care_day's monthly and default partitions (PostgreSQL, storage/partitions.py) are the table's, not models."""
    return not (type_ == "table" and name is not None and is_care_day_partition(name))


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,
            include_name=_not_a_partition,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url")
    assert url
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,
            include_name=_not_a_partition,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
