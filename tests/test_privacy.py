"""No ID number (身份证号) in a log record, whoever writes it."""

from __future__ import annotations

import base64
import logging
import random
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import select, text

import tasks  # noqa: F401  (importing the project installs the masking)
from ltc import idvault
from ltc.privacy import ID_NUMBER, mask_ids
from ltc.settings import get_settings
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
