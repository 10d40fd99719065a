"""automatic replies to STOP, START and HELP, per account or Messaging Service

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


def downgrade() -> None:
    op.drop_table("keyword_replies")
