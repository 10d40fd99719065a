"""Alembic environment: migrates the database named by the settings (or the caller's URL)."""

from alembic import context
from sqlmodel import SQLModel

import schemas.console  # noqa: F401  (registers the tables on the metadata)
import schemas.inbound  # noqa: F401
import schemas.models  # noqa: F401
from schemas.db import make_engine
from schemas.settings import get_settings

url = context.config.get_main_option("sqlalchemy.url") or get_settings().database_url
connectable = make_engine(url)
with connectable.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
connectable.dispose()
