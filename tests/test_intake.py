"""Intake on both backends: good rows in, each bad row quarantined with its line, field and reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from ltc.cli import app
from rules.errors import UserError
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
    # A file that cannot be loaded is a person's error, which `ltc.cli.main` shows in one line with exit 2
    # (tests/test_cli_errors.py runs the command itself).
    failed = runner.invoke(app, ["load", "care_days", str(tmp_path / "missing.csv")])
    assert isinstance(failed.exception, UserError) and "missing.csv: no such file" in str(failed.exception)


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


# --- files as Chinese offices export them ---------------------------------------------------------------------------

# 𠮷 (U+20BB7) is four bytes in GB18030 and cannot be written in GBK at all; 䶮 (U+4DAE) is a CJK Extension A
# character. Both are read as themselves, in the record and in quarantine.
RARE = "P1,𠮷祥,450103195001011248,nanning,青秀区,employee,5000.00,1950-01-01,,false\n"
RARE += "P2,刘䶮,45010319500101123X,nanning,青秀区,retiree,3000,1950-01-01,,0\n"
RARE += "P3,䶮𠮷,450103195001011244,nanning,青秀区,employee,5000,1950-01-01,,false\n"  # wrong check digit
PERSONS_HEADER = PERSONS.splitlines(keepends=True)[0]


def _gb18030(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode("gb18030"))
    return p


def _names() -> dict[str, str]:
    with session_scope() as s:
        return dict(s.execute(select(m.Person.person_id, m.Person.name)).tuples().all())


def test_a_gb18030_file_with_rare_characters_loads(backend: str, tmp_path: Path) -> None:
    with pytest.raises(UnicodeEncodeError):
        "𠮷".encode("gbk")
    path = _gb18030(tmp_path, "persons.csv", PERSONS_HEADER + RARE)
    data = path.read_bytes()
    assert bytes.fromhex("9534b235") in data  # 𠮷 as GB18030's four bytes
    assert "𠮷".encode() not in data and "䶮".encode() not in data  # no UTF-8 in it

    # Read as UTF-8 (the default), it is refused whole, naming the first byte that is not UTF-8: the first of 𠮷.
    first = data.index(bytes.fromhex("9534b235"))
    with pytest.raises(IntakeError, match=rf"persons.csv: not utf-8 at byte {first}; .*--encoding gb18030"):
        load_file("persons", path)
    assert _names() == {}

    report = load_file("persons", path, "gb18030")
    assert (report.received, report.accepted, report.quarantined) == (3, 2, 1)
    assert _names() == {"P1": "𠮷祥", "P2": "刘䶮"}
    assert [(e["file"], e["line"], e["field"]) for e in report.errors] == [(str(path), 4, "id_number")]
    with session_scope() as s:
        kept = s.execute(select(m.QuarantinedRow.source_file, m.QuarantinedRow.raw)).one()
    assert kept.source_file == str(path) and kept.raw["name"] == "䶮𠮷"

    again = load_file("persons", path, "gbk")  # GBK is read as GB18030, which contains it; the same file again
    assert (again.accepted, again.quarantined) == (2, 1)
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(m.QuarantinedRow)) == 1


def test_a_gb18030_file_loads_in_batches_as_whole(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tasks.intake as intake

    monkeypatch.setattr(intake, "BATCH_ROWS", 2)
    path = _gb18030(tmp_path, "persons.csv", PERSONS_HEADER + RARE)
    report = load_file("persons", path, "gb18030")
    assert (report.received, report.accepted, report.quarantined) == (3, 2, 1)
    assert _names() == {"P1": "𠮷祥", "P2": "刘䶮"}


def test_a_byte_order_mark_names_the_encoding(backend: str, tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" begins with a UTF-8 byte-order mark: read as UTF-8 whatever encoding was given.
    GB18030's own mark likewise."""
    utf8 = tmp_path / "persons-utf8.csv"
    utf8.write_bytes(b"\xef\xbb\xbf" + (PERSONS_HEADER + RARE).encode("utf-8"))
    assert load_file("persons", utf8, "gb18030").accepted == 2
    assert _names() == {"P1": "𠮷祥", "P2": "刘䶮"}
    gb = tmp_path / "persons-gb.csv"
    gb.write_bytes(b"\x84\x31\x95\x33" + (PERSONS_HEADER + RARE.replace("刘䶮", "王䶮")).encode("gb18030"))
    assert load_file("persons", gb).accepted == 2
    assert _names() == {"P1": "𠮷祥", "P2": "王䶮"}


def test_a_file_not_valid_gb18030_is_refused_at_its_byte(backend: str, tmp_path: Path) -> None:
    text = PERSONS_HEADER.encode() + "P1,张三,".encode("gb18030")
    path = tmp_path / "persons.csv"
    path.write_bytes(text + b"\xff\xff,nanning\n")  # 0xFF begins no GB18030 character
    with pytest.raises(IntakeError, match=rf"persons.csv: not gb18030 at byte {len(text)}; not a GB18030 file"):
        load_file("persons", path, "gb18030")
    path.write_bytes(text + b"\x81")  # the file ends inside a two-byte character
    with pytest.raises(IntakeError, match=r"persons.csv: not gb18030: the file ends inside a character"):
        load_file("persons", path, "gb18030")
    assert _names() == {}


@pytest.mark.parametrize(
    "content",
    [b"", b"\xef\xbb\xbf", b"\n \r\n\t\n", b"\xef\xbb\xbf\n \n", b"\x84\x31\x95\x33\r\n", b"\n" * 200],
    ids=["nothing", "utf-8 mark", "white space", "mark and white space", "gb18030 mark", "many blank lines"],
)
def test_an_empty_file_is_refused_and_nothing_is_loaded(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    import tasks.intake as intake

    monkeypatch.setattr(intake, "BATCH_ROWS", 3)  # the batched path too (a blank file of many lines is "large")
    path = tmp_path / "care_days.csv"
    path.write_bytes(content)
    for encoding in ("utf-8", "gb18030"):
        with pytest.raises(IntakeError, match=r"care_days.csv: the file is empty; nothing was loaded$"):
            load_file("care_days", path, encoding)
    assert _counts() == (0, 0)


def test_a_header_alone_loads_nothing_and_is_not_an_error(backend: str, tmp_path: Path) -> None:
    report = load_file("persons", _gb18030(tmp_path, "persons.csv", PERSONS_HEADER), "gb18030")
    assert (report.received, report.accepted, report.quarantined) == (0, 0, 0)


@pytest.mark.usefixtures("prefect_server")
def test_the_inbox_reads_each_file_in_its_encoding_and_leaves_what_it_cannot_read(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name ending .gb18030.csv, or the run's encoding for the kind, says GB18030. An empty file, or one not in
    its encoding, stays in the inbox and is named; it stops no other file, and the run fails so someone looks."""
    import datetime as dt

    import flows.intake_inbox as inbox_flow

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _gb18030(inbox, "persons_2026-03.gb18030.csv", PERSONS_HEADER + RARE)
    _gb18030(inbox, "providers.csv", PROVIDERS)  # GB18030 by the run's encodings for providers
    (inbox / "hospital_stays_2026-03.csv").write_bytes(b"")  # empty
    agencies = "agency_id,name,jurisdiction,area,capacity_per_day\nAG1,南宁市失能评估中心,nanning,青秀区,5\n"
    undeclared = _gb18030(inbox, "agencies_2026-03.csv", agencies)  # neither its name nor the run says GB18030
    first = undeclared.read_bytes().index("南".encode("gb18030"))
    monkeypatch.setattr(inbox_flow, "today", lambda: dt.date(2026, 4, 1))
    with pytest.raises(IntakeError) as refused:
        inbox_flow.intake_inbox("nanning", str(inbox), encodings={"providers": "gb18030"})
    message = str(refused.value)
    assert message.startswith("inbox nanning: 2 file(s) loaded, 2 left in the inbox: ")
    assert "hospital_stays_2026-03.csv: the file is empty; nothing was loaded" in message
    assert f"agencies_2026-03.csv: not utf-8 at byte {first}; " in message
    assert "\n" not in message
    assert _names() == {"P1": "𠮷祥", "P2": "刘䶮"}
    with session_scope() as s:
        assert [p.name for p in s.scalars(select(m.Provider))] == ["南宁护理院"]
    assert sorted(p.name for p in inbox.glob("*.csv")) == ["agencies_2026-03.csv", "hospital_stays_2026-03.csv"]
    done = sorted(p.name for p in (inbox / "loaded" / "2026-04-01").glob("*.csv"))
    assert done == ["persons_2026-03.gb18030.csv", "providers.csv"]

    # Renamed to say its encoding, and the empty file taken away, the next run loads the agencies.
    undeclared.rename(inbox / "agencies_2026-03.gb18030.csv")
    (inbox / "hospital_stays_2026-03.csv").unlink()
    out = inbox_flow.intake_inbox("nanning", str(inbox))
    assert [(r["file"], r["encoding"], r["received"], r["accepted"]) for r in out["loaded"]] == [
        ("agencies_2026-03.gb18030.csv", "gb18030", 1, 1)
    ]
    with session_scope() as s:
        assert [a.name for a in s.scalars(select(m.Agency))] == ["南宁市失能评估中心"]
    with pytest.raises(UserError, match="encodings: 'payslips' is not a kind the inbox takes"):
        inbox_flow.intake_inbox("nanning", str(inbox), encodings={"payslips": "gb18030"})
    with pytest.raises(UserError, match="encoding 'latin-1': one of utf-8, gb18030"):
        inbox_flow.intake_inbox("nanning", str(inbox), encodings={"persons": "latin-1"})


def test_an_encoding_at_the_end_of_a_name_is_not_part_of_its_kind() -> None:
    from flows.intake_inbox import encoding_in_name, kind_of

    assert [(kind_of(n), encoding_in_name(n)) for n in ("persons.gb18030.csv", "care_days_2026-03.GBK.csv")] == [
        ("persons", "gb18030"),
        ("care_days", "gb18030"),
    ]
    assert [(kind_of(n), encoding_in_name(n)) for n in ("persons_2026.03.csv", "persons.utf-8.csv", "notes.csv")] == [
        ("persons", None),
        ("persons", "utf-8"),
        (None, None),
    ]
