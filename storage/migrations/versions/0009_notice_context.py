"""a notice's context, kept while the notice is quarantined

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 06:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("notice", sa.Column("context", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("notice", "context")
