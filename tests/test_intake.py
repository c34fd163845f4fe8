"""Intake on both backends: good rows in, each bad row quarantined with its line, field and reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from ltc.cli import app
from storage import models as m
from storage.db import session_scope
from tasks.intake import IntakeError, load_file

PERSONS = (
    "person_id,name,id_number,jurisdiction,area,insurance_type,contribution_base,birth_date,death_date,"
    "work_injury_care_allowance\n"
    """P1,张三,450103195001011248,nanning,青秀区,employee,5000.00,1950-01-01,,false
P2,李四,45010319500101123X,nanning,青秀区,retiree,3000,1950-01-01,,0
"""
)
PROVIDERS = """provider_id,name,jurisdiction,kind,contract_start,contract_end,status,bank_account
H1,南宁护理院,nanning,institution,2024-01-01,,active,6222020000001234
"""
CARE = """person_id,provider_id,period,care_date,care_mode,item_code,amount
P1,H1,2026-03,2026-03-01,institutional,,
P1,H1,2026-03,2026-03-02,institutional,,
P9,H1,2026-03,2026-03-03,institutional,,
P1,H1,2026-03,2026-04-01,institutional,,
P1,H1,2026-03,2026-03-0x,institutional,,
P2,H1,2026-03,2026-03-05,home,A01,-5.00
P2,H1,2026-03,2026-03-06,home,A01,80.5
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _counts() -> tuple[int, int]:
    with session_scope() as s:
        care = s.scalar(select(func.count()).select_from(m.CareDay)) or 0
        quarantined = s.scalar(select(func.count()).select_from(m.QuarantinedRow)) or 0
    return care, quarantined


def test_bad_care_rows_are_quarantined_and_good_rows_load(backend: str, tmp_path: Path) -> None:
    load_file("persons", _write(tmp_path, "persons.csv", PERSONS))
    load_file("providers", _write(tmp_path, "providers.csv", PROVIDERS))
    care = _write(tmp_path, "care.csv", CARE)
    report = load_file("care_days", care)
    assert (report.received, report.accepted, report.quarantined) == (7, 3, 4)
    errors = {(e["line"], e["field"]): e["reason"] for e in report.errors}
    assert errors == {
        (4, "person_id"): "unknown person 'P9'",
        (5, "care_date"): "care_date is outside the period",
        (6, "care_date"): "malformed date '2026-03-0x'",
        (7, "amount"): "negative amount -5.00",
    }
    assert all(e["file"] == str(care) for e in report.errors)
    with session_scope() as s:
        amounts = sorted(s.scalars(select(m.CareDay.amount_fen)))
        kept = s.execute(select(m.QuarantinedRow.row_number, m.QuarantinedRow.raw)).all()
    assert amounts == [0, 0, 8050]
    assert sorted(r for r, _ in kept) == [4, 5, 6, 7]
    assert {raw["person_id"] for _, raw in kept} == {"P9", "P1", "P2"}
    assert _counts() == (3, 4)

    again = load_file("care_days", care)
    assert (again.accepted, again.quarantined) == (3, 4)
    assert _counts() == (3, 4)


def test_a_file_without_a_required_column_fails_whole(backend: str, tmp_path: Path) -> None:
    bad = _write(tmp_path, "care.csv", "person_id,provider_id,care_date\nP1,H1,2026-03-01\n")
    with pytest.raises(IntakeError, match=r"care.csv: header lacks required column\(s\) period, care_mode"):
        load_file("care_days", bad)


@pytest.mark.usefixtures("prefect_server")
def test_load_exit_status_tells_clean_from_rejections_from_failure(backend: str, tmp_path: Path) -> None:
    runner = CliRunner()
    clean = runner.invoke(app, ["load", "persons", str(_write(tmp_path, "persons.csv", PERSONS))])
    assert clean.exit_code == 0, clean.output
    runner.invoke(app, ["load", "providers", str(_write(tmp_path, "providers.csv", PROVIDERS))])
    rejected = runner.invoke(app, ["load", "care_days", str(_write(tmp_path, "care.csv", CARE))])
    assert rejected.exit_code == 1
    assert "care.csv:4: person_id: unknown person 'P9'" in rejected.output
    failed = runner.invoke(app, ["load", "care_days", str(tmp_path / "missing.csv")])
    assert failed.exit_code == 2


def test_a_file_without_an_optional_column_leaves_it_as_it_was(backend: str, tmp_path: Path) -> None:
    with_urls = PERSONS.replace("work_injury_care_allowance\n", "work_injury_care_allowance,notify_url\n").replace(
        ",false\n", ",true,mailto://p1@example.org\n"
    )
    load_file("persons", _write(tmp_path, "persons.csv", with_urls))
    deaths = "person_id,name,id_number,jurisdiction,area,insurance_type,contribution_base,death_date\n"
    deaths += "P1,张三,450103195001011248,nanning,青秀区,employee,5000.00,2026-03-20\n"
    load_file("persons", _write(tmp_path, "deaths.csv", deaths))
    with session_scope() as s:
        p1 = s.get(m.Person, "P1")
        assert p1 is not None
        assert p1.death_date is not None and p1.death_date.isoformat() == "2026-03-20"
        assert p1.notify_url == "mailto://p1@example.org"
        assert p1.work_injury_care_allowance  # a column the file lacks keeps its value, even one with a default


def _outcome(report: object) -> tuple[object, ...]:
    with session_scope() as s:
        rows = sorted(s.execute(select(m.CareDay.person_id, m.CareDay.care_date, m.CareDay.amount_fen)).all())
        kept = sorted(s.execute(select(m.QuarantinedRow.row_number, m.QuarantinedRow.field)).all())
    errors = sorted((e["line"], e["field"], e["reason"]) for e in report.errors)  # type: ignore[attr-defined]
    counts = (report.received, report.accepted, report.quarantined)  # type: ignore[attr-defined]
    return counts, errors, rows, kept


def test_a_large_file_loads_in_batches_with_the_same_outcome(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read, checked and written three rows at a time, a file gives the same rows, the same quarantine and the
    same report as read whole; a key repeated in a later batch keeps back both of its rows."""
    import tasks.intake as intake

    load_file("persons", _write(tmp_path, "persons.csv", PERSONS))
    load_file("providers", _write(tmp_path, "providers.csv", PROVIDERS))
    text = CARE + "P1,H1,2026-03,2026-03-01,institutional,,\nP2,H1,2026-03,2026-03-07,home,A01,10\n"
    care = _write(tmp_path, "care.csv", text)
    whole = _outcome(load_file("care_days", care))
    counts, errors, rows, _ = whole
    assert counts == (9, 3, 6)
    repeated = "duplicate key in file: REPEATED_ITEM, 同一服务机构同一天为同一人重复申报同一服务项目。"
    repeated += " (医疗保障基金使用监督管理条例 第十五条(三) (重复收费))"
    assert (2, "person_id", repeated) in errors and (9, "person_id", repeated) in errors
    assert [r[2] for r in rows] == [0, 8050, 1000]
    with session_scope() as s:
        s.execute(m.CareDay.__table__.delete())
        s.execute(m.QuarantinedRow.__table__.delete())
    monkeypatch.setattr(intake, "BATCH_ROWS", 3)
    seen: list[int] = []
    real_parse = intake.parse
    monkeypatch.setattr(intake, "parse", lambda spec, raw: seen.append(raw.height) or real_parse(spec, raw))
    assert _outcome(load_file("care_days", care)) == whole
    assert seen == [3, 3, 3]


def test_an_id_number_with_a_wrong_check_digit_is_quarantined_masked(backend: str, tmp_path: Path) -> None:
    # GB 11643-1999: 45010319500101124 has check digit 8; 4 is a typo, 17 digits a short number
    persons = _write(
        tmp_path,
        "persons.csv",
        PERSONS
        + "P3,王五,450103195001011244,nanning,青秀区,employee,5000,1950-01-01,,false\n"
        + "P4,赵六,45010319500101124,nanning,青秀区,employee,5000,1950-01-01,,false\n",
    )
    report = load_file("persons", persons)
    assert (report.received, report.accepted, report.quarantined) == (4, 2, 2)
    errors = {(e["line"], e["field"]): e["reason"] for e in report.errors}
    assert errors[(4, "id_number")] == "check digit of GB 11643-1999 is wrong in '450***********1244'"
    assert errors[(5, "id_number")].startswith("str_matches") and "450**********1124" in errors[(5, "id_number")]
    assert "450103195001011244" not in str(report.errors)
    with session_scope() as s:
        assert sorted(s.scalars(select(m.Person.person_id))) == ["P1", "P2"]


def test_an_unreadable_value_is_an_error_not_its_default(backend: str, tmp_path: Path) -> None:
    """An optional column's default is for an empty cell: `tru` is not false, `12.3.4` is not 0 yuan."""
    load_file("persons", _write(tmp_path, "persons.csv", PERSONS))
    load_file("providers", _write(tmp_path, "providers.csv", PROVIDERS))
    persons = PERSONS.replace(",false\n", ",tru\n").replace(",0\n", ",\n")
    report = load_file("persons", _write(tmp_path, "persons2.csv", persons))
    assert (report.accepted, report.quarantined) == (1, 1)
    assert [(e["line"], e["field"], e["reason"]) for e in report.errors] == [
        (2, "work_injury_care_allowance", "malformed bool 'tru'")
    ]
    care = "person_id,provider_id,period,care_date,care_mode,item_code,amount\n"
    care += "P2,H1,2026-03,2026-03-05,home,A01,12.3.4\nP2,H1,2026-03,2026-03-06,home,A01,\n"
    report = load_file("care_days", _write(tmp_path, "care.csv", care))
    assert [(e["line"], e["field"], e["reason"]) for e in report.errors] == [(2, "amount", "malformed money '12.3.4'")]
    with session_scope() as s:
        assert list(s.scalars(select(m.CareDay.amount_fen))) == [0]  # the empty cell takes the default
