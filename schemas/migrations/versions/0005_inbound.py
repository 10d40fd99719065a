"""inbound messages: numbers' webhooks, the parts of what handsets send, opt-outs

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

import schemas.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("phone_numbers") as batch:
        batch.add_column(sa.Column("sms_url", sa.Text(), nullable=True))
        batch.add_column(sa.Column("sms_method", sa.String(length=8), nullable=False,
                                   server_default="POST"))  # fmt: skip
        batch.add_column(sa.Column("sms_fallback_url", sa.Text(), nullable=True))
        batch.add_column(sa.Column("sms_fallback_method", sa.String(length=8), nullable=False,
                                   server_default="POST"))  # fmt: skip
    with op.batch_alter_table("phone_numbers") as batch:
        batch.alter_column("sms_method", server_default=None)
        batch.alter_column("sms_fallback_method", server_default=None)
    op.create_table(
        "inbound_parts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("carrier", sa.String(length=32), nullable=False),
        sa.Column("from_number", sa.String(length=32), nullable=False),
        sa.Column("to_number", sa.String(length=32), nullable=False),
        sa.Column("reference", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("date_received", schemas.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("message_sid", sa.String(length=34), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ux_inbound_parts_open", "inbound_parts",
        ["carrier", "from_number", "to_number", "reference", "total", "number", "key"],
        unique=True, postgresql_where=sa.text("message_sid IS NULL"),
        sqlite_where=sa.text("message_sid IS NULL"),
    )  # fmt: skip
    op.create_index(
        "ix_inbound_parts_group", "inbound_parts", ["from_number", "to_number", "reference"]
    )
    op.create_index(
        "ix_inbound_parts_waiting", "inbound_parts", ["date_received"],
        postgresql_where=sa.text("message_sid IS NULL"),
        sqlite_where=sa.text("message_sid IS NULL"),
    )  # fmt: skip
    op.create_table(
        "opt_outs",
        sa.Column("phone_number", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=34), nullable=False),
        sa.Column("account_sid", sa.String(length=34), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("date_created", schemas.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_sid"], ["accounts.sid"]),
        sa.PrimaryKeyConstraint("phone_number", "scope"),
    )
    op.create_index("ix_opt_outs_account_sid", "opt_outs", ["account_sid"])
    op.create_index("ix_opt_outs_scope", "opt_outs", ["scope"])


def downgrade() -> None:
    op.drop_index("ix_opt_outs_scope", table_name="opt_outs")
    op.drop_index("ix_opt_outs_account_sid", table_name="opt_outs")
    op.drop_table("opt_outs")
    op.drop_index("ix_inbound_parts_waiting", table_name="inbound_parts")
    op.drop_index("ix_inbound_parts_group", table_name="inbound_parts")
    op.drop_index("ux_inbound_parts_open", table_name="inbound_parts")
    op.drop_table("inbound_parts")
    with op.batch_alter_table("phone_numbers") as batch:
        for name in ("sms_fallback_method", "sms_fallback_url", "sms_method", "sms_url"):
            batch.drop_column(name)
