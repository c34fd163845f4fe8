"""care_day partitioned by period on PostgreSQL (one partition a month, and a default one), its natural key with the
period (care_date lies in the period, so the key means what it meant); care_day's and claim_line's own indexes on
person_id dropped, as their keys begin with it

A month's first care-day file is written into a partition of its own, created for it, whose indexes are built once
after the rows are in (`storage.partitions`). SQLite keeps one table; only its key gains the period.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KEY = "uq_care_day_person_id_provider_id_care_date_item_code"
NEW_KEY = "uq_care_day_person_id_provider_id_care_date_item_code_period"
OLD_COLUMNS = ["person_id", "provider_id", "care_date", "item_code"]
COLUMNS = "id, person_id, provider_id, period, care_date, care_mode, item_code, amount_fen"


def upgrade() -> None:
    with op.batch_alter_table("claim_line", schema=None) as batch_op:
        batch_op.drop_index("ix_claim_line_person_id")
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("care_day", schema=None) as batch_op:
            batch_op.drop_index("ix_care_day_person_id")
            batch_op.drop_constraint(OLD_KEY, type_="unique")
            batch_op.create_unique_constraint(NEW_KEY, [*OLD_COLUMNS, "period"])
        return
    op.execute("ALTER TABLE care_day RENAME TO care_day_before_0015")
    for old in ("pk_care_day", OLD_KEY):
        op.execute(f"ALTER TABLE care_day_before_0015 RENAME CONSTRAINT {old} TO {old}_before_0015")
    op.execute("ALTER INDEX ix_care_day_period RENAME TO ix_care_day_period_before_0015")
    op.execute(_create_care_day(partitioned=True))
    op.execute("CREATE INDEX ix_care_day_period ON care_day (period)")
    op.execute("CREATE TABLE care_day_default PARTITION OF care_day DEFAULT")
    periods = op.get_bind().execute(sa.text("SELECT DISTINCT period FROM care_day_before_0015")).scalars().all()
    for period in periods:
        if len(period) == 7 and period[4] == "-" and (period[:4] + period[5:]).isdigit():
            op.execute(
                f"CREATE TABLE care_day_p{period[:4]}_{period[5:]} PARTITION OF care_day FOR VALUES IN ('{period}')"
            )
    op.execute(f"INSERT INTO care_day ({COLUMNS}) SELECT {COLUMNS} FROM care_day_before_0015")
    op.execute("ALTER SEQUENCE care_day_id_seq OWNED BY care_day.id")
    op.execute("DROP TABLE care_day_before_0015")


def downgrade() -> None:
    with op.batch_alter_table("claim_line", schema=None) as batch_op:
        batch_op.create_index("ix_claim_line_person_id", ["person_id"], unique=False)
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("care_day", schema=None) as batch_op:
            batch_op.drop_constraint(NEW_KEY, type_="unique")
            batch_op.create_unique_constraint(OLD_KEY, OLD_COLUMNS)
            batch_op.create_index("ix_care_day_person_id", ["person_id"], unique=False)
        return
    op.execute("ALTER SEQUENCE care_day_id_seq OWNED BY NONE")
    op.execute("ALTER TABLE care_day RENAME TO care_day_partitioned")
    for name in ("pk_care_day", NEW_KEY):
        op.execute(f"ALTER TABLE care_day_partitioned RENAME CONSTRAINT {name} TO {name}_partitioned")
    op.execute("ALTER INDEX ix_care_day_period RENAME TO ix_care_day_period_partitioned")
    op.execute(_create_care_day(partitioned=False))
    op.execute("CREATE INDEX ix_care_day_period ON care_day (period)")
    op.execute("CREATE INDEX ix_care_day_person_id ON care_day (person_id)")
    op.execute(f"INSERT INTO care_day ({COLUMNS}) SELECT {COLUMNS} FROM care_day_partitioned")
    op.execute("ALTER SEQUENCE care_day_id_seq OWNED BY care_day.id")
    op.execute("DROP TABLE care_day_partitioned CASCADE")


def _create_care_day(partitioned: bool) -> str:
    """care_day as 0015 makes it (partitioned by period, the period in its keys) or as it was before."""
    key = (
        f"{NEW_KEY} UNIQUE ({', '.join(OLD_COLUMNS)}, period)"
        if partitioned
        else f"{OLD_KEY} UNIQUE ({', '.join(OLD_COLUMNS)})"
    )
    return f"""
        CREATE TABLE care_day (
            id integer NOT NULL DEFAULT nextval('care_day_id_seq'),
            person_id varchar(32) NOT NULL,
            provider_id varchar(32) NOT NULL,
            period varchar(7) NOT NULL,
            care_date date NOT NULL,
            care_mode varchar(16) NOT NULL,
            item_code varchar(16) NOT NULL,
            amount_fen bigint NOT NULL,
            CONSTRAINT pk_care_day PRIMARY KEY ({"id, period" if partitioned else "id"}),
            CONSTRAINT {key}
        ){" PARTITION BY LIST (period)" if partitioned else ""}
        """
