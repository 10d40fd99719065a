"""callback_attempts.callback_id as wide as callbacks.id; an index for 'sent' messages

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
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
