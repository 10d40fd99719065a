"""callbacks.endpoint; callback_attempts.callback_id as wide as callbacks.id; 'sent' index;
platform_state (the secret key's fingerprint); tokens are derived, no longer hashed

Revision ID: 0003
Revises: 0002
"""

from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def endpoint(url: str) -> str:
    """As workers.stages.callbacks.endpoint_of (a migration keeps its own copy of what it runs)."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"[:300]


def upgrade() -> None:
    op.create_table(
        "platform_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    # A token is checked by deriving it from the secret key again: one source of truth.
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("auth_token_sha256")
    with op.batch_alter_table("callbacks") as batch:
        batch.add_column(sa.Column("endpoint", sa.String(length=300), nullable=False,
                                   server_default=""))  # fmt: skip
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":  # the same as endpoint(), in one statement
        op.execute(
            "UPDATE callbacks SET endpoint = "
            "left(lower(coalesce(substring(url from '^([A-Za-z][A-Za-z0-9+.-]*://[^/?#]*)'), '')),"
            " 300)"
        )
    else:
        callbacks = sa.table(
            "callbacks",
            sa.column("id", sa.BigInteger()),
            sa.column("url", sa.Text()),
            sa.column("endpoint", sa.String()),
        )
        rows = connection.execute(sa.select(callbacks.c.id, callbacks.c.url)).all()
        if rows:
            connection.execute(
                callbacks.update()
                .where(callbacks.c.id == sa.bindparam("b_id"))
                .values(endpoint=sa.bindparam("b_endpoint")),
                [{"b_id": row.id, "b_endpoint": endpoint(row.url)} for row in rows],
            )
    with op.batch_alter_table("callbacks") as batch:
        batch.alter_column("endpoint", server_default=None)
    # callbacks.id is a bigint: an integer reference would overflow long before it does.
    with op.batch_alter_table("callback_attempts") as batch:
        batch.alter_column(
            "callback_id",
            existing_type=sa.Integer(),
            type_=sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            existing_nullable=False,
        )
    op.create_index(
        "ix_messages_sent_updated",
        "messages",
        ["date_updated"],
        unique=False,
        postgresql_where=sa.text("status = 'sent'"),
        sqlite_where=sa.text("status = 'sent'"),
    )


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("auth_token_sha256", sa.String(length=64), nullable=False,
                                   server_default=""))  # fmt: skip
    op.drop_table("platform_state")
    with op.batch_alter_table("callbacks") as batch:
        batch.drop_column("endpoint")
    op.drop_index(
        "ix_messages_sent_updated",
        table_name="messages",
        postgresql_where=sa.text("status = 'sent'"),
        sqlite_where=sa.text("status = 'sent'"),
    )
    with op.batch_alter_table("callback_attempts") as batch:
        batch.alter_column(
            "callback_id",
            existing_type=sa.BigInteger(),
            type_=sa.Integer(),
            existing_nullable=False,
        )
