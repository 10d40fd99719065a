"""scheduling, Messaging Services and sids for phone numbers

Revision ID: 0004
Revises: 0003
"""

import secrets

import sqlalchemy as sa
from alembic import op

import schemas.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("messaging_service_sid", sa.String(length=34), nullable=True))
        batch.add_column(
            sa.Column("send_at", schemas.types.UTCDateTime(timezone=True), nullable=True)
        )
    # Numbers get the PN… sid Twilio's APIs name them by; existing rows get one here.
    with op.batch_alter_table("phone_numbers") as batch:
        batch.add_column(sa.Column("sid", sa.String(length=34), nullable=True))
    numbers = sa.table("phone_numbers", sa.column("phone_number"), sa.column("sid"))
    connection = op.get_bind()
    for (number,) in connection.execute(sa.select(numbers.c.phone_number)).all():
        connection.execute(
            numbers.update()
            .where(numbers.c.phone_number == number)
            .values(sid="PN" + secrets.token_hex(16))
        )
    with op.batch_alter_table("phone_numbers") as batch:
        batch.alter_column("sid", existing_type=sa.String(length=34), nullable=False)
        batch.create_unique_constraint("uq_phone_numbers_sid", ["sid"])
    op.create_table(
        "messaging_services",
        sa.Column("sid", sa.String(length=34), nullable=False),
        sa.Column("account_sid", sa.String(length=34), nullable=False),
        sa.Column("friendly_name", sa.String(length=64), nullable=False),
        sa.Column("status_callback", sa.Text(), nullable=True),
        sa.Column("sticky_sender", sa.Boolean(), nullable=False),
        sa.Column("smart_encoding", sa.Boolean(), nullable=False),
        sa.Column("validity_period_s", sa.Integer(), nullable=False),
        sa.Column("inbound_request_url", sa.Text(), nullable=True),
        sa.Column("inbound_method", sa.String(length=8), nullable=False),
        sa.Column("fallback_url", sa.Text(), nullable=True),
        sa.Column("fallback_method", sa.String(length=8), nullable=False),
        sa.Column("synchronous_validation", sa.Boolean(), nullable=False),
        sa.Column("usecase", sa.String(length=64), nullable=False),
        sa.Column("use_inbound_webhook_on_number", sa.Boolean(), nullable=False),
        sa.Column("date_created", schemas.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("date_updated", schemas.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_sid"], ["accounts.sid"]),
        sa.PrimaryKeyConstraint("sid"),
    )
    op.create_index(
        "ix_messaging_services_account_sid", "messaging_services", ["account_sid"], unique=False
    )
    op.create_table(
        "messaging_service_numbers",
        sa.Column("phone_number", sa.String(length=32), nullable=False),
        sa.Column("service_sid", sa.String(length=34), nullable=False),
        sa.Column("date_created", schemas.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["phone_number"], ["phone_numbers.phone_number"]),
        sa.ForeignKeyConstraint(["service_sid"], ["messaging_services.sid"]),
        sa.PrimaryKeyConstraint("phone_number"),
    )
    op.create_index(
        "ix_messaging_service_numbers_service_sid",
        "messaging_service_numbers",
        ["service_sid"],
        unique=False,
    )
    op.create_table(
        "sticky_senders",
        sa.Column("service_sid", sa.String(length=34), nullable=False),
        sa.Column("to", sa.String(length=32), nullable=False),
        sa.Column("phone_number", sa.String(length=32), nullable=False),
        sa.Column("date_created", schemas.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["service_sid"], ["messaging_services.sid"]),
        sa.PrimaryKeyConstraint("service_sid", "to"),
    )


def downgrade() -> None:
    op.drop_table("sticky_senders")
    op.drop_index("ix_messaging_service_numbers_service_sid", "messaging_service_numbers")
    op.drop_table("messaging_service_numbers")
    op.drop_index("ix_messaging_services_account_sid", "messaging_services")
    op.drop_table("messaging_services")
    with op.batch_alter_table("phone_numbers") as batch:
        batch.drop_constraint("uq_phone_numbers_sid", type_="unique")
        batch.drop_column("sid")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("send_at")
        batch.drop_column("messaging_service_sid")
