"""ID numbers encrypted, with a keyed hash for matching

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 22:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from common import idvault

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _person(*names: str) -> sa.TableClause:
    return sa.table("person", *(sa.column(n, sa.String) for n in names))


def upgrade() -> None:
    conn = op.get_bind()
    # SQLite: columns added NOT NULL with an empty default and the old one dropped in place (ALTER TABLE, SQLite
    # 3.35+), not by copying the table, which other tables' foreign keys point at.
    sqlite = conn.dialect.name == "sqlite"
    for name, length in (("id_number_enc", 128), ("id_hash", 64)):
        if sqlite:
            op.execute(f"ALTER TABLE person ADD COLUMN {name} VARCHAR({length}) NOT NULL DEFAULT ''")
        else:
            op.add_column("person", sa.Column(name, sa.String(length=length), nullable=True))
    person = _person("person_id", "id_number", "id_number_enc", "id_hash")
    rows = conn.execute(sa.select(person.c.person_id, person.c.id_number)).all()
    if rows:
        conn.execute(
            person.update().where(person.c.person_id == sa.bindparam("pid")),
            [
                {"pid": pid, "id_number_enc": idvault.encrypt(number), "id_hash": idvault.id_hash(number)}
                for pid, number in rows
            ],
        )
    if not sqlite:
        op.alter_column("person", "id_number_enc", existing_type=sa.String(length=128), nullable=False)
        op.alter_column("person", "id_hash", existing_type=sa.String(length=64), nullable=False)
    op.create_index(op.f("ix_person_id_hash"), "person", ["id_hash"], unique=False)
    if sqlite:
        op.execute("ALTER TABLE person DROP COLUMN id_number")
    else:
        op.drop_column("person", "id_number")


def downgrade() -> None:
    conn = op.get_bind()
    sqlite = conn.dialect.name == "sqlite"
    op.add_column("person", sa.Column("id_number", sa.String(length=18), nullable=True))
    person = _person("person_id", "id_number", "id_number_enc")
    rows = conn.execute(sa.select(person.c.person_id, person.c.id_number_enc)).all()
    if rows:
        conn.execute(
            person.update().where(person.c.person_id == sa.bindparam("pid")),
            [{"pid": pid, "id_number": idvault.decrypt(token)} for pid, token in rows],
        )
    op.drop_index(op.f("ix_person_id_hash"), table_name="person")
    for name in ("id_hash", "id_number_enc"):
        if sqlite:
            op.execute(f"ALTER TABLE person DROP COLUMN {name}")
        else:
            op.drop_column("person", name)
