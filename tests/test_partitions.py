"""Care days a partition a month on PostgreSQL (migration 0015, `storage.partitions`): a month's first file gets a
partition of its own with its indexes built after the load; later files of the month, reruns and rows already in
the default partition keep the natural key's guarantees; SQLite keeps one table with the same outcomes."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from storage import models as m
from storage.db import alembic_config, get_engine, session_scope
from tasks.intake import load_file
from tests.migrating import migrate

PERSONS = """person_id,name,id_number,jurisdiction,area,insurance_type,contribution_base,birth_date
P1,张三,450103195001011248,nanning,青秀区,employee,5000.00,1950-01-01
P2,李四,45010319500101123X,nanning,青秀区,retiree,3000,1950-01-01
"""
PROVIDERS = """provider_id,name,jurisdiction,kind,contract_start,contract_end,status,bank_account
H1,南宁护理院,nanning,institution,2024-01-01,,active,6222020000001234
"""
HEADER = "person_id,provider_id,period,care_date,care_mode,item_code,amount\n"
MARCH = HEADER + "P1,H1,2026-03,2026-03-01,institutional,,\nP2,H1,2026-03,2026-03-02,home,A01,80.50\n"
MARCH_MORE = HEADER + "P1,H1,2026-03,2026-03-01,institutional,,\nP1,H1,2026-03,2026-03-03,institutional,,\n"
TWO_MONTHS = HEADER + "P1,H1,2026-04,2026-04-01,institutional,,\nP2,H1,2026-05,2026-05-02,home,A01,10\n"


def _file(tmp_path: Path, name: str, body: str) -> Path:
    p = tmp_path / name
    p.write_text(body, encoding="utf-8")
    return p


def _registry(tmp_path: Path) -> None:
    load_file("persons", _file(tmp_path, "persons.csv", PERSONS))
    load_file("providers", _file(tmp_path, "providers.csv", PROVIDERS))


def _rows() -> list[tuple[str, str, str, str, int]]:
    cd = m.CareDay
    with session_scope() as s:
        return [
            tuple(r)
            for r in s.execute(
                select(cd.person_id, cd.period, cd.care_date.cast(m.String), cd.item_code, cd.amount_fen).order_by(
                    cd.period, cd.person_id, cd.care_date
                )
            )
        ]


def _partitions() -> dict[str, str]:
    """PostgreSQL: care_day's partitions and the values each holds."""
    with session_scope() as s:
        return dict(
            s.execute(
                text(
                    "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
                    " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'care_day'::regclass"
                )
            ).all()
        )


def _indexes(table: str) -> set[str]:
    with session_scope() as s:
        return {
            r[0] for r in s.execute(text("SELECT indexdef FROM pg_indexes WHERE tablename = :t"), {"t": table}).all()
        }


def test_a_months_first_file_gets_a_partition_with_its_keys_and_reruns_add_nothing(
    backend: str, tmp_path: Path
) -> None:
    _registry(tmp_path)
    march = _file(tmp_path, "march.csv", MARCH)
    assert load_file("care_days", march).accepted == 2
    expected = [
        ("P1", "2026-03", "2026-03-01", "", 0),
        ("P2", "2026-03", "2026-03-02", "A01", 8050),
    ]
    assert _rows() == expected
    if backend == "postgresql":
        assert _partitions() == {"care_day_default": "DEFAULT", "care_day_p2026_03": "FOR VALUES IN ('2026-03')"}
        defs = " | ".join(sorted(_indexes("care_day_p2026_03")))
        assert "UNIQUE INDEX" in defs and "(person_id, provider_id, care_date, item_code, period)" in defs
        assert "(id, period)" in defs and "(period)" in defs and "(person_id)" not in defs
    # The same file again (a rerun after a crash), then a second file of the month with one row already on record.
    load_file("care_days", march)
    load_file("care_days", _file(tmp_path, "march-more.csv", MARCH_MORE))
    assert _rows() == [*expected[:1], ("P1", "2026-03", "2026-03-03", "", 0), expected[1]]
    with session_scope() as s:
        with pytest.raises(IntegrityError):
            with s.begin_nested():
                s.execute(
                    text(
                        "INSERT INTO care_day (person_id, provider_id, period, care_date, care_mode, item_code,"
                        " amount_fen) VALUES ('P1', 'H1', '2026-03', '2026-03-01', 'institutional', '', 5)"
                    )
                )


def test_a_file_of_two_months_makes_two_partitions(backend: str, tmp_path: Path) -> None:
    _registry(tmp_path)
    load_file("care_days", _file(tmp_path, "spring.csv", TWO_MONTHS))
    assert [(r[0], r[1]) for r in _rows()] == [("P1", "2026-04"), ("P2", "2026-05")]
    if backend == "postgresql":
        assert set(_partitions()) == {"care_day_default", "care_day_p2026_04", "care_day_p2026_05"}


def test_rows_of_a_month_already_in_the_default_partition_stay_there(backend: str, tmp_path: Path) -> None:
    """A month written row by row before its first file (a correction keyed in by hand): its file joins those
    rows in the default partition under the same key, and no partition is made that would hide them."""
    _registry(tmp_path)
    with session_scope() as s:
        s.add(
            m.CareDay(
                person_id="P1",
                provider_id="H1",
                period="2026-03",
                care_date=m.dt.date(2026, 3, 1),
                care_mode="institutional",
                item_code="",
                amount_fen=0,
            )
        )
    load_file("care_days", _file(tmp_path, "march.csv", MARCH))
    assert len(_rows()) == 2
    if backend == "postgresql":
        assert set(_partitions()) == {"care_day_default"}


def test_the_migration_moves_care_days_on_record_into_partitions_and_back(backend: str) -> None:
    migrate("downgrade", "0014")
    with get_engine().begin() as conn:
        for i, (period, day) in enumerate(
            [("2026-02", "2026-02-27"), ("2026-03", "2026-03-01"), ("2026-03", "2026-03-02")]
        ):
            conn.execute(
                text(
                    "INSERT INTO care_day (person_id, provider_id, period, care_date, care_mode, item_code, amount_fen)"
                    f" VALUES ('P{i}', 'H1', '{period}', '{day}', 'institutional', '', {i})"
                )
            )
    migrate("upgrade", "head")
    assert [(r[0], r[1], r[4]) for r in _rows()] == [("P0", "2026-02", 0), ("P1", "2026-03", 1), ("P2", "2026-03", 2)]
    if backend == "postgresql":
        assert set(_partitions()) == {"care_day_default", "care_day_p2026_02", "care_day_p2026_03"}
    with session_scope() as s:  # the sequence carries on after the rows moved
        s.add(
            m.CareDay(
                person_id="P9",
                provider_id="H1",
                period="2026-03",
                care_date=m.dt.date(2026, 3, 9),
                care_mode="institutional",
                item_code="",
                amount_fen=9,
            )
        )
    command.check(alembic_config())
    migrate("downgrade", "0014")
    with get_engine().begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM care_day")).scalar() == 4
    migrate("upgrade", "head")
    assert len(_rows()) == 4


def test_a_new_month_loaded_in_batches_is_one_partition_indexed_once(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read and written a row at a time, a new month's file still goes into its own partition, attached with its
    keys after the last batch; the rows read back as from a whole load."""
    import tasks.intake as intake

    _registry(tmp_path)
    monkeypatch.setattr(intake, "BATCH_ROWS", 1)
    body = MARCH + "P2,H1,2026-03,2026-03-03,home,A02,12.34\n"
    assert load_file("care_days", _file(tmp_path, "march.csv", body)).accepted == 3
    assert _rows() == [
        ("P1", "2026-03", "2026-03-01", "", 0),
        ("P2", "2026-03", "2026-03-02", "A01", 8050),
        ("P2", "2026-03", "2026-03-03", "A02", 1234),
    ]
    if backend == "postgresql":
        assert set(_partitions()) == {"care_day_default", "care_day_p2026_03"}
        assert any("UNIQUE" in d for d in _indexes("care_day_p2026_03"))


def test_a_copy_that_fails_leaves_no_month_behind(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy into a new month's partition runs beside the reading of the next batch; when it fails, the load
    fails whole: no partition, no care day, no quarantined row of the file is left, and the file loads again."""
    import storage.partitions as partitions
    import tasks.intake as intake

    if backend != "postgresql":
        pytest.skip("SQLite has no partitions")
    _registry(tmp_path)
    monkeypatch.setattr(intake, "BATCH_ROWS", 1)
    real = partitions._copy_months

    def broken(raw: object, months: list[tuple[str, object]]) -> None:
        raise OSError("connection lost in the middle of a copy")

    monkeypatch.setattr(partitions, "_copy_months", broken)
    body = MARCH + "P9,H1,2026-03,2026-03-04,home,A01,1\n"  # one row quarantined (unknown person)
    with pytest.raises(OSError, match="connection lost"):
        load_file("care_days", _file(tmp_path, "march.csv", body))
    assert _rows() == [] and set(_partitions()) == {"care_day_default"}
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(m.QuarantinedRow)) == 0
    monkeypatch.setattr(partitions, "_copy_months", real)
    report = load_file("care_days", _file(tmp_path, "march.csv", body))
    assert (report.accepted, report.quarantined) == (2, 1) and len(_rows()) == 2
