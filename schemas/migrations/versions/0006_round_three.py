"""round three: automatic replies to STOP, START and HELP; a webhook's fallback URL; the
carrier connection a segment left by; an account's retention; an inbound MMS's media URLs;
the operator console's operators, sessions and audit log

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
    with op.batch_alter_table("inbound_parts") as batch:
        batch.add_column(sa.Column("media_urls", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("inbound_parts") as batch:
        batch.alter_column("media_urls", server_default=None)
    op.create_table(
        "operators",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("date_created", schemas.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("expires_at", schemas.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["operator"], ["operators.name"]),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_console_sessions_operator", "console_sessions", ["operator"])
    op.create_table(
        "console_audit",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("date_created", schemas.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_console_audit_date_created", "console_audit", ["date_created"])


def downgrade() -> None:
    with op.batch_alter_table("inbound_parts") as batch:
        batch.drop_column("media_urls")
    op.drop_table("console_audit")
    op.drop_table("console_sessions")
    op.drop_table("operators")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("retention_days")
    with op.batch_alter_table("segments") as batch:
        batch.drop_column("connection")
    with op.batch_alter_table("callbacks") as batch:
        batch.drop_column("fallback_url")
    op.drop_table("keyword_replies")
