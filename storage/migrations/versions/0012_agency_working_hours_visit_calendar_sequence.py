"""agencies' working hours and visit length; each visit's calendar sequence and when it last changed

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agency", schema=None) as batch_op:
        batch_op.add_column(sa.Column("day_starts_at", sa.String(length=5), nullable=True))
        batch_op.add_column(sa.Column("day_ends_at", sa.String(length=5), nullable=True))
        batch_op.add_column(sa.Column("visit_minutes", sa.Integer(), nullable=True))
    with op.batch_alter_table("assessment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("calendar_sequence", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("assessment", schema=None) as batch_op:
        batch_op.drop_column("changed_at")
        batch_op.drop_column("calendar_sequence")
    with op.batch_alter_table("agency", schema=None) as batch_op:
        batch_op.drop_column("visit_minutes")
        batch_op.drop_column("day_ends_at")
        batch_op.drop_column("day_starts_at")
