"""a payment batch's content digest: a payout's idempotency key (batch_ref) is bound to what it pays

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 06:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batches made before this revision have no digest (""): they are not checked.
    op.add_column("payment_batch", sa.Column("content_sha256", sa.String(length=64), server_default="", nullable=False))


def downgrade() -> None:
    op.drop_column("payment_batch", "content_sha256")
