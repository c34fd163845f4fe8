"""fraud flags, hash-chained audit log, work claims

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 14:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUDIT_TRIGGERS = ("audit_log_no_update", "audit_log_no_delete")


def upgrade() -> None:
    op.create_table(
        "fraud_flag",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("provider_id", sa.String(length=32), nullable=False),
        sa.Column("care_date", sa.Date(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("jurisdiction", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=256), server_default="", nullable=False),
        sa.Column("clause", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fraud_flag")),
        sa.UniqueConstraint(
            "rule",
            "person_id",
            "provider_id",
            "care_date",
            name=op.f("uq_fraud_flag_rule_person_id_provider_id_care_date"),
        ),
    )
    with op.batch_alter_table("fraud_flag", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fraud_flag_person_id"), ["person_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_fraud_flag_provider_id"), ["provider_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_fraud_flag_period"), ["period"], unique=False)

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=48), nullable=False),
        sa.Column("subject", sa.String(length=160), nullable=False),
        sa.Column("detail", sa.Text(), server_default="{}", nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("prev_hash", name=op.f("uq_audit_log_prev_hash")),
        sa.UniqueConstraint("entry_hash", name=op.f("uq_audit_log_entry_hash")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_subject"), ["subject"], unique=False)
    _audit_append_only()

    op.create_table(
        "work_claim",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("work_key", sa.String(length=160), nullable=False),
        sa.Column("holder", sa.String(length=160), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_claim")),
        sa.UniqueConstraint("kind", "work_key", name=op.f("uq_work_claim_kind_work_key")),
    )


def _audit_append_only() -> None:
    """The database itself refuses to change or remove an audit entry."""
    message = "the audit log is append-only"
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{message}'; END $$"
        )
        for name, event in zip(AUDIT_TRIGGERS, ("UPDATE", "DELETE"), strict=True):
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {event} ON audit_log "
                "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
            )
    else:
        for name, event in zip(AUDIT_TRIGGERS, ("UPDATE", "DELETE"), strict=True):
            op.execute(f"CREATE TRIGGER {name} BEFORE {event} ON audit_log BEGIN SELECT RAISE(ABORT, '{message}'); END")


def downgrade() -> None:
    op.drop_table("work_claim")
    postgres = op.get_bind().dialect.name == "postgresql"
    for name in AUDIT_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON audit_log" if postgres else f"DROP TRIGGER IF EXISTS {name}")
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_subject"))
        batch_op.drop_index(batch_op.f("ix_audit_log_action"))
    op.drop_table("audit_log")
    with op.batch_alter_table("fraud_flag", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fraud_flag_period"))
        batch_op.drop_index(batch_op.f("ix_fraud_flag_provider_id"))
        batch_op.drop_index(batch_op.f("ix_fraud_flag_person_id"))
    op.drop_table("fraud_flag")
