"""No ID number (身份证号) in a log record, whoever writes it."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import random
import re
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import select, text

import tasks  # noqa: F401  (importing the project installs the masking)
from common import idvault
from common.privacy import ID_NUMBER, mask_ids
from common.settings import get_settings
from storage import models as m
from storage.db import session_scope
from tasks.intake import load_file

ID = "45010319900101123X"  # shaped like an ID number (its check digit would be 8)
VALID = "450103199001011238"


def test_an_id_number_in_a_log_record_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        logging.getLogger("prefect.task_runs").warning("person P0001 (%s) billed", ID)
        logging.getLogger("some.library").info(f"row {ID.lower()} rejected")
    assert ID not in caplog.text and ID.lower() not in caplog.text
    assert caplog.messages == ["person P0001 (450***********123X) billed", "row 450***********123x rejected"]


def test_only_whole_id_numbers_are_masked() -> None:
    # a 19-digit bank account and a 16-digit number are not ID numbers; two IDs in one line are both masked
    text = f"acct 6222021234567890123 ref 1234567890123456 ids {ID},110101200001011234"
    assert mask_ids(text) == "acct 6222021234567890123 ref 1234567890123456 ids 450***********123X,110***********1234"


# --- ID numbers at rest (ltc/idvault.py) ---


def test_gb11643_check_digit_worked_example() -> None:
    # GB 11643-1999's own example: 11010519491231002X (the 18th character X stands for 10)
    assert idvault.valid_id_number("11010519491231002X") and idvault.valid_id_number("11010519491231002x")
    assert not idvault.valid_id_number("110105194912310021")  # another check digit
    assert not idvault.valid_id_number("11010519491231012X")  # one digit changed
    assert not idvault.valid_id_number("1101051949123100X2")  # X only in the last place


def test_the_polars_check_agrees_with_the_python_one() -> None:
    rng = random.Random(11643)
    values = ["11010519491231002X", "", "abc", "1101051949123100"]
    for _ in range(2000):
        body = "".join(rng.choice("0123456789") for _ in range(17))
        values.append(body + rng.choice("0123456789X"))
    got = pl.DataFrame({"v": values}).select(idvault.check_digit_ok(pl.col("v")))["v"].to_list()
    assert got == [idvault.valid_id_number(v) for v in values]
    assert 100 < sum(got) < 400  # about one in eleven is valid: the check is not trivially true or false


def test_id_numbers_are_stored_encrypted_with_a_keyed_hash(backend: str, tmp_path: Path) -> None:
    # GB 11643-1999 check digits: 45010319900101123 -> 8, 11010120000101123 -> 2
    persons = tmp_path / "persons.csv"
    persons.write_text(
        "person_id,name,id_number,jurisdiction,area,insurance_type,contribution_base\n"
        f"P1,张三,{VALID},nanning,青秀区,employee,5000\n"
        "P2,李四,110101200001011232,nanning,青秀区,employee,5000\n"
        f"P3,张三,{VALID},nanning,青秀区,employee,5000\n",
        encoding="utf-8",
    )
    assert load_file("persons", persons).accepted == 3
    with session_scope() as s:
        raw = s.execute(text("SELECT * FROM person ORDER BY person_id")).mappings().all()
        people = {p.person_id: p for p in s.scalars(select(m.Person))}
    stored = " ".join(str(v) for row in raw for v in row.values())
    assert ID_NUMBER.search(stored) is None and VALID not in stored and "1101012000" not in stored
    assert [people[p].id_number for p in ("P1", "P2", "P3")] == [VALID, "110101200001011232", VALID]
    assert people["P1"].id_hash == people["P3"].id_hash != people["P2"].id_hash  # equal numbers match
    assert people["P1"].id_number_enc != people["P3"].id_number_enc  # but do not show as equal
    assert (home := Path(get_settings().home) / "id.key").exists() and home.stat().st_mode & 0o077 == 0

    other = base64.b64encode(bytes(range(32))).decode()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LTC_ID_KEY", other)
        with pytest.raises(idvault.IdKeyError, match="does not decrypt with this key"):
            idvault.decrypt(people["P1"].id_number_enc)
        assert idvault.id_hash(VALID) != people["P1"].id_hash  # the hash is keyed


ID_SHAPED = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")


def _unmasked(text: str, known: set[str]) -> set[str]:
    """ID numbers in clear in a text: any of the demo's own, and any 18 characters with a valid check digit."""
    found = {i for i in known if i in text}
    found |= {s for s in ID_SHAPED.findall(text) if idvault.valid_id_number(s.upper())}
    return found


def _prefect_texts(since: dt.datetime) -> dict[str, str]:
    """What operators see in Prefect: run logs, flow and task run names and parameters, artifacts."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterStartTime,
        LogFilter,
        LogFilterTimestamp,
    )
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # send the logs still queued
    out: dict[str, list[str]] = {"logs": [], "flow runs": [], "task runs": [], "artifacts": []}
    with get_client(sync_client=True) as c:
        offset = 0
        while batch := c.read_logs(LogFilter(timestamp=LogFilterTimestamp(after_=since)), limit=200, offset=offset):
            out["logs"] += [f"{log.name} {log.message}" for log in batch]
            offset += len(batch)
        runs = c.read_flow_runs(flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since)))
        out["flow runs"] += [f"{r.name} {json.dumps(r.parameters, default=str, ensure_ascii=False)}" for r in runs]
        out["task runs"] += [
            f"{t.name} {t.task_inputs}"
            for t in c.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [r.id for r in runs]}))
        ]
        out["artifacts"] += [
            f"{a.key} {a.description} {a.data}" for a in c.read_artifacts() if a.created and a.created >= since
        ]
    assert out["logs"] and out["flow runs"] and out["task runs"] and out["artifacts"]  # the scan saw something
    return {k: "\n".join(v) for k, v in out.items()}


@pytest.mark.usefixtures("prefect_server")
def test_a_full_demo_leaves_no_id_number_in_clear(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    """个人信息保护法: after a demo month, no ID number in clear in the logs, the Prefect runs (names, parameters,
    logs, artifacts), the notices (outbox and files delivered), the exports, `ltc explain` or any table."""
    from ltc.demo import DemoSize
    from ltc.explain import explain
    from ltc.exports import EXPORTS, export_rows
    from ltc.pipeline import run_demo

    since = dt.datetime.now(dt.UTC)
    caplog.set_level(logging.DEBUG)
    summary = run_demo("nanning", "2026-03", 5, DemoSize(insured=240, applicants=40, providers=4, agencies=2))
    settings = get_settings()
    persons = pl.read_csv(settings.demo_dir / "nanning" / "persons.csv", infer_schema=False)
    known = set(persons["id_number"])
    assert len(known) == 240
    # The control: the register's file, which holds them in clear, is found to.
    assert _unmasked((settings.demo_dir / "nanning" / "persons.csv").read_text(encoding="utf-8"), set()) == known

    texts = {"python logs": "\n".join(r.getMessage() for r in caplog.records), "summary": json.dumps(summary)}
    texts |= _prefect_texts(since)
    delivered = sorted(settings.outbox_dir.iterdir())
    assert delivered
    texts["notice files"] = "\n".join(p.read_text(encoding="utf-8") for p in delivered)
    for kind in EXPORTS:
        header, rows = export_rows(kind)
        texts[f"export {kind}"] = "\n".join(",".join(map(str, r)) for r in [header, *rows])
    with session_scope() as s:
        people = list(s.scalars(select(m.Person.person_id).order_by(m.Person.person_id).limit(20)))
        for table in m.Base.metadata.sorted_tables:
            texts[f"table {table.name}"] = "\n".join(map(str, s.execute(select(table)).all()))
    texts["explain"] = "\n".join(explain(p, "2026-03") for p in people)
    assert "450" in texts["notice files"] and "***" in texts["notice files"]  # masked forms are there
    leaks = {where: _unmasked(text, known) for where, text in texts.items()}
    assert {where: ids for where, ids in leaks.items() if ids} == {}
