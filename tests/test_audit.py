"""The audit log: appended in the decision's transaction, refused UPDATE and DELETE by the database, and hash-chained
so that `ltc audit verify` names an entry edited or removed behind the database's back."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from ltc.cli import app
from storage.db import get_engine, session_scope
from storage.models import AuditEntry
from tasks import audit


def _write_three() -> list[int]:
    with session_scope() as s:
        audit.record(s, "decision.eligibility", "A0001", {"approved": True, "grade": 4})
        audit.record(s, "payment.batch", "nanning-2026-03-H001", {"total_fen": 123456})
    with session_scope() as s:
        audit.record(s, "read.person", "P0001", {"view": "explain", "id": "450103199001011234"})
        return list(s.scalars(select(AuditEntry.id).order_by(AuditEntry.id)))


def _tamper(sql: str, **params: object) -> None:
    """What a person with the database's owner rights could do: switch the guard off, change a row, switch it on."""
    engine = get_engine()
    with engine.begin() as c:
        if engine.dialect.name == "postgresql":
            c.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
            c.execute(text(sql), params)
            c.execute(text("ALTER TABLE audit_log ENABLE TRIGGER USER"))
        else:
            c.execute(text("DROP TRIGGER audit_log_no_update"))
            c.execute(text("DROP TRIGGER audit_log_no_delete"))
            c.execute(text(sql), params)


def test_chain_verifies_and_holds_no_id_number(backend: str) -> None:
    ids = _write_three()
    with session_scope() as s:
        n, problems = audit.verify(s)
        entries = s.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    assert (n, problems) == (3, [])
    assert entries[0].prev_hash == audit.GENESIS
    assert [e.prev_hash for e in entries[1:]] == [e.entry_hash for e in entries[:-1]]
    assert "450103199001011234" not in entries[2].detail and "450***********1234" in entries[2].detail
    assert len(ids) == 3
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "3 audit entries, 0 problems" in result.output


def test_database_refuses_update_and_delete(backend: str) -> None:
    _write_three()
    for sql in ("UPDATE audit_log SET subject = 'X'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), session_scope() as s:
            s.execute(text(sql))
    with session_scope() as s:
        assert audit.verify(s) == (3, [])


def test_an_edited_entry_is_named(backend: str) -> None:
    ids = _write_three()
    _tamper("UPDATE audit_log SET detail = :d WHERE id = :i", d='{"approved": false, "grade": 4}', i=ids[0])
    with session_scope() as s:
        n, problems = audit.verify(s)
    assert n == 3
    assert [(p.entry_id, "edited" in p.what) for p in problems] == [(ids[0], True)]
    result = CliRunner().invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert f"audit entry {ids[0]}" in result.output


def test_a_removed_entry_breaks_the_chain_at_the_next_one(backend: str) -> None:
    ids = _write_three()
    _tamper("DELETE FROM audit_log WHERE id = :i", i=ids[1])
    with session_scope() as s:
        n, problems = audit.verify(s)
    assert n == 2
    assert [(p.entry_id, "chain broken" in p.what) for p in problems] == [(ids[2], True)]
