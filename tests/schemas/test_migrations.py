"""The migrations build exactly the schema the models describe."""

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import schemas.console  # noqa: F401  (registers the tables)
import schemas.inbound  # noqa: F401
import schemas.models  # noqa: F401
from schemas.migrate import upgrade
from tests.conftest import RUN_DATABASE, admin, database_url


@pytest.fixture
def migrated_url() -> Iterator[str]:
    name = f"{RUN_DATABASE}_migrations"
    admin(f'CREATE DATABASE "{name}"')
    try:
        url = database_url(name).replace("postgresql://", "postgresql+psycopg://", 1)
        upgrade(url)
        yield url
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrations_match_the_models(migrated_url: str) -> None:
    # given a database built by the migrations alone
    engine = create_engine(migrated_url)
    try:
        # when it is compared with the models
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    # then there is nothing a new migration would have to change
    assert differences == []
