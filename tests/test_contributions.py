"""The contributions flow writes each period's dues by payer, from the pack's rules, once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from flows.contributions import contributions
from ltc.demo import id_number
from rules.engine import RulesError
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
    with session_scope() as s:  # a row an earlier reading of the rules wrote (a payer no longer named)
        s.add(
            m.ContributionDue(
                person_id="P1", period="2026-03", payer="individual", amount_fen=1500, jurisdiction="nanning"
            )
        )
    contributions("nanning", "2026-03")
    with session_scope() as s:
        rows = sorted((d.person_id, d.payer, d.amount_fen) for d in s.scalars(select(m.ContributionDue)))
    # 三(二)1: 0.15% + 0.15% of 5000.00; 三(二)2: 0.15% of 3333.33 = 4.999995 -> 5.00; residents are not covered.
    assert rows == [("P1", "employer", 750), ("P1", "personal_account", 750), ("P2", "personal_account", 500)]
    assert first["by_payer_fen"] == {"employer": 750, "personal_account": 1250}


@pytest.mark.usefixtures("prefect_server")
def test_jinjiang_dues_keep_each_payer_the_document_names_er_er(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """晋政规〔2023〕3号 二(二): 90 a person a year. The city budget's 30 (市级财政补助) and its 15 to the village
    collective (市级财政再按15元补助村（社区）集体) are two payers, not one 45; the town's 10 and the village's 35 are
    their own; a retired cadre's own 60 (由市财政全额承担) is apart from the city's 30."""
    born = dt.date(1950, 1, 1)
    people = [
        ("J1", "employee", "", ""),
        ("J2", "resident", "", "西园社区"),
        ("J3", "retiree", "true", ""),
        ("J4", "resident", "", "西园社区"),
    ]
    header = "person_id,name,id_number,jurisdiction,area,insurance_type,contribution_base,retired_cadre,village\n"
    rows = [
        f"{pid},晋江{i},{id_number('350582', born, i)},jinjiang,青阳街道,{kind},3000,{cadre},{village}\n"
        for i, (pid, kind, cadre, village) in enumerate(people, start=1)
    ]
    f = tmp_path / "persons.csv"
    f.write_text(header + "".join(rows), encoding="utf-8")
    assert load_file("persons", f).accepted == 4
    out = contributions("jinjiang", "2025")
    with session_scope() as s:
        dues = sorted((d.person_id, d.payer, d.amount_fen) for d in s.scalars(select(m.ContributionDue)))
    resident = [("city_budget", 3000), ("city_village_subsidy", 1500), ("town_budget", 1000), ("village", 3500)]
    assert dues == [
        ("J1", "city_budget", 3000),
        ("J1", "personal_account", 6000),
        *[("J2", payer, fen) for payer, fen in resident],
        ("J3", "city_budget", 3000),
        ("J3", "government_subsidy", 6000),
        *[("J4", payer, fen) for payer, fen in resident],
    ]
    assert out["by_payer_fen"] == {
        "personal_account": 6000,
        "city_budget": 12000,
        "city_village_subsidy": 3000,
        "town_budget": 2000,
        "village": 7000,
        "government_subsidy": 6000,
    }
    assert sum(out["by_payer_fen"].values()) == 4 * 9000

    # A payer the pack's pack.yaml does not name stops the run, naming it; nothing is written.
    import rules.packinfo

    named = rules.packinfo.payers("jinjiang") or {}
    monkeypatch.setattr(rules.packinfo, "payers", lambda pid: {k: v for k, v in named.items() if k != "village"})
    with pytest.raises(RulesError, match=r"contributions_due gives payer\(s\) village its pack.yaml does not name"):
        contributions("jinjiang", "2026")
    with session_scope() as s:
        assert {d.period for d in s.scalars(select(m.ContributionDue))} == {"2025"}
