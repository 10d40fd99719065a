"""automatic replies to STOP, START and HELP, per account or Messaging Service; a webhook's
fallback URL; the carrier connection a segment left by; an
account's retention

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

import schemas.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "keyword_replies",
        sa.Column("scope", sa.String(length=34), nullable=False),
        sa.Column("keyword", sa.String(length=8), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("date_updated", schemas.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "keyword"),
    )
    with op.batch_alter_table("callbacks") as batch:
        batch.add_column(sa.Column("fallback_url", sa.Text(), nullable=True))
    with op.batch_alter_table("segments") as batch:
        batch.add_column(sa.Column("connection", sa.String(length=32), nullable=True))
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("retention_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("retention_days")
    with op.batch_alter_table("segments") as batch:
        batch.drop_column("connection")
    with op.batch_alter_table("callbacks") as batch:
        batch.drop_column("fallback_url")
    op.drop_table("keyword_replies")
