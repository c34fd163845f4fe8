"""The contributions flow writes each period's dues by payer, from the pack's rules, once."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from flows.contributions import contributions
from storage import models as m
from storage.db import session_scope
from tasks.intake import load_file

PERSONS = (
    "person_id,name,id_number,jurisdiction,area,insurance_type,contribution_base\n"
    "P1,张三,450103195001011248,nanning,青秀区,employee,5000.00\n"
    "P2,李四,45010319500101123X,nanning,青秀区,retiree,3333.33\n"
    "P3,王五,450103195001011264,nanning,青秀区,resident,3000.00\n"
)


@pytest.mark.usefixtures("prefect_server")
def test_nanning_dues_by_payer_san_er(backend: str, tmp_path: Path) -> None:
    f = tmp_path / "persons.csv"
    f.write_text(PERSONS, encoding="utf-8")
    load_file("persons", f)
    first = contributions("nanning", "2026-03")
    contributions("nanning", "2026-03")
    with session_scope() as s:
        rows = sorted((d.person_id, d.payer, d.amount_fen) for d in s.scalars(select(m.ContributionDue)))
    # 三(二)1: 0.15% + 0.15% of 5000.00; 三(二)2: 0.15% of 3333.33 = 4.999995 -> 5.00; residents are not covered.
    assert rows == [("P1", "employer", 750), ("P1", "personal_account", 750), ("P2", "personal_account", 500)]
    assert first["by_payer_fen"] == {"employer": 750, "personal_account": 1250}
