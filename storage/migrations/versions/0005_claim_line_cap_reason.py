"""claim lines keep the reason for an amount over a cap, so statements can be issued after billing

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("claim_line", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cap_reason", sa.String(length=48), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("claim_line", schema=None) as batch_op:
        batch_op.drop_column("cap_reason")
