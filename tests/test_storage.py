"""The record on both backends: migrations match the models, natural keys make reruns idempotent."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic import command
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from storage import models as m
from storage.db import alembic_config, session_scope, upsert
from tests.migrating import migrate


def test_migrations_match_the_models(backend: str) -> None:
    command.check(alembic_config())  # raises if the models have changes no migration holds


def test_a_payment_batch_exists_once_per_payee_and_period(backend: str) -> None:
    with session_scope() as s:
        s.add(
            m.Provider(
                provider_id="H1",
                name="n",
                jurisdiction="nanning",
                kind="institution",
                contract_start=dt.date(2024, 1, 1),
                status="active",
                bank_account="622200",
            )
        )
    batch = {
        "payee_id": "H1",
        "period": "2026-03",
        "jurisdiction": "nanning",
        "bank_account": "622200",
        "total_fen": 100,
        "line_count": 1,
    }
    with session_scope() as s:
        s.add(m.PaymentBatch(batch_ref="b1", **batch))
    with pytest.raises(IntegrityError), session_scope() as s:
        s.add(m.PaymentBatch(batch_ref="b2", **batch))
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(m.PaymentBatch)) == 1


def test_upsert_on_a_natural_key_updates_instead_of_duplicating(backend: str) -> None:
    row = {"agency_id": "AG1", "name": "a", "jurisdiction": "nanning", "area": "x", "capacity_per_day": 5}
    with session_scope() as s:
        upsert(s, m.Agency, [row], ["agency_id"])
    with session_scope() as s:
        upsert(s, m.Agency, [{**row, "capacity_per_day": 7}], ["agency_id"])
    with session_scope() as s:
        assert [a.capacity_per_day for a in s.scalars(select(m.Agency))] == [7]


def test_bulk_upsert_copies_defaults_and_updates_only_the_columns_given(backend: str) -> None:
    import polars as pl

    from common import idvault
    from storage.bulk import bulk_upsert

    people = pl.DataFrame(
        {
            "person_id": ["P1", "P2"],
            "name": ["甲", "乙"],
            "id_number": ["450103195001011234", "45010319500101123X"],
            "jurisdiction": ["nanning", "nanning"],
            "area": ["青秀区", "青秀区"],
            "insurance_type": ["employee", "retiree"],
            "contribution_base_fen": [500000, 300000],
            "work_injury_care_allowance": [True, False],
            "death_date": [None, dt.date(2026, 3, 20)],
        }
    )
    with session_scope() as s:
        assert bulk_upsert(s, m.Person, idvault.seal(people), ["person_id"]) == 2
    later = pl.DataFrame(
        {
            "person_id": ["P1", "P3"],
            "name": ["甲改", "丙"],
            "id_number": ["x" * 18, "y" * 18],
            "jurisdiction": ["nanning"] * 2,
            "area": ["兴宁区"] * 2,
            "insurance_type": ["employee"] * 2,
            "contribution_base_fen": [1, 2],
        }
    )
    with session_scope() as s:
        bulk_upsert(s, m.Person, idvault.seal(later), ["person_id"])
        bulk_upsert(s, m.Person, idvault.seal(later), ["person_id"], update=False)
    with session_scope() as s:
        rows = {p.person_id: p for p in s.scalars(select(m.Person))}
    assert sorted(rows) == ["P1", "P2", "P3"]
    assert rows["P1"].name == "甲改" and rows["P1"].work_injury_care_allowance  # not in the frame: kept
    assert rows["P3"].language == "zh_CN" and not rows["P3"].work_injury_care_allowance  # model defaults
    assert rows["P2"].death_date == dt.date(2026, 3, 20)


def test_the_migration_encrypts_id_numbers_already_on_record(backend: str) -> None:
    """Revision 0008 on a record written before it: clear ID numbers become ciphertext and keyed hashes, and
    other tables' rows that point at the person survive (SQLite drops the column in place)."""
    from sqlalchemy import text

    from common import idvault
    from storage.db import get_engine

    migrate("downgrade", "0007")
    with get_engine().begin() as conn:
        conn.execute(
            text(
                "INSERT INTO person (person_id, name, id_number, jurisdiction, area, insurance_type,"
                " contribution_base_fen, work_injury_care_allowance, language)"
                " VALUES ('P1', '张三', '450103199001011238', 'nanning', '青秀区', 'employee', 500000, false, 'zh_CN')"
            )
        )
        conn.execute(
            text("INSERT INTO contribution (person_id, period, due_fen, paid_fen) VALUES ('P1', '2026-03', 100, 100)")
        )
    migrate("upgrade", "head")
    with session_scope() as s:
        person = s.scalars(select(m.Person)).one()
        raw = " ".join(str(v) for v in s.execute(text("SELECT * FROM person")).one())
        contributions = s.scalar(select(func.count()).select_from(m.Contribution))
    assert person.id_number == "450103199001011238" and "1990010112" not in raw
    assert person.id_hash == idvault.id_hash("450103199001011238")
    assert contributions == 1
    command.check(alembic_config())
