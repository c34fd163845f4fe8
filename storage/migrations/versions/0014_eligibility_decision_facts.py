"""eligibility decisions keep what they counted (facts): a waiting period's length and start, years lapsed and paid
back, continuous years insured, where the pack says

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Decisions made before this revision counted nothing they kept ("{}"); a decision is never edited.
    with op.batch_alter_table("eligibility_decision", schema=None) as batch_op:
        batch_op.add_column(sa.Column("facts", sa.JSON(), server_default=sa.text("'{}'"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("eligibility_decision", schema=None) as batch_op:
        batch_op.drop_column("facts")
