"""claim lines keep the dates they did not pay, as ranges with their reason (excluded_ranges)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Lines billed before this revision keep their days excluded by reason, without the dates ("[]"); billing a
    # month again gives its unpaid lines their dates (a paid line is never edited).
    with op.batch_alter_table("claim_line", schema=None) as batch_op:
        batch_op.add_column(sa.Column("excluded_ranges", sa.JSON(), server_default=sa.text("'[]'"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("claim_line", schema=None) as batch_op:
        batch_op.drop_column("excluded_ranges")
