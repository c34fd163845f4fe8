"""The fund projection (rules/projection.py) worked by hand, its assumptions and their sensitivity, and the what-if
report (tasks/whatif_report.py): a self-contained page with its charts, and one CSV file per table."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from rules.engine import RulesError
from rules.projection import (
    Assumption,
    Baseline,
    load_assumptions,
    project,
    run_out_year,
    sensitivity,
)
from tasks.whatif_report import render_report, write_report
from tests.rendering import colour_counts

ON = dt.date(2026, 3, 31)


def assumptions(**values: str) -> dict[str, Assumption]:
    """The file's assumptions with some set by hand (`beneficiary_growth` sets every grade)."""
    found = load_assumptions(None, ON)
    out = {}
    for name, a in found.items():
        given = values.get(name, values.get(a.group))
        out[name] = dataclasses.replace(a, value=Decimal(given)) if given is not None else a
    return out


# --- assumptions ---------------------------------------------------------------------------------------------------


def test_the_assumptions_are_cited_and_none_is_a_document() -> None:
    found = load_assumptions(None, ON)
    assert {n: str(a.value) for n, a in found.items()} == {
        "insured_growth": "0.01",
        **{f"beneficiary_growth.grade_{g}": "0.05" for g in range(1, 7)},
        "mortality": "0.1",
        "price_growth": "0.02",
        "wage_growth": "0.04",
    }
    for a in found.values():
        assert a.source == "assumption" and "no document fixes it" in a.reference, a
        assert isinstance(a.value, Decimal) and a.description
        assert set(a.cite()) >= {"name", "description", "value", "reference", "source"}
    assert "grade 3" in found["beneficiary_growth.grade_3"].description


def test_an_operator_sets_an_assumption_from_a_date() -> None:
    entry = {"value": 0.03, "reference": "人社局 2025年社平工资增幅", "source": "operator"}
    overrides: dict[str, Any] = {
        "wage_growth": {"values": {"2026-01-01": entry}},
        "beneficiary_growth": {"values": {"2026-01-01": {**entry, "value": 0.07}}},
        "beneficiary_growth.grade_5": {"values": {"2026-02-01": {**entry, "value": 0.08}}},
    }
    found = load_assumptions(overrides, ON)
    assert found["wage_growth"].value == Decimal("0.03") and found["wage_growth"].source == "operator"
    assert found["wage_growth"].reference == "人社局 2025年社平工资增幅"
    assert found["beneficiary_growth.grade_3"].value == Decimal("0.07")
    assert found["beneficiary_growth.grade_5"].value == Decimal("0.08")
    assert found["price_growth"].source == "assumption"
    before = load_assumptions(overrides, dt.date(2025, 12, 31))  # the operator's values start on their dates
    assert before["wage_growth"].value == Decimal("0.04") and before["wage_growth"].source == "assumption"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"wage_growth": {"values": {"2026-01-01": {"value": 0.03, "reference": "x", "source": "assumption"}}}},
            "source operator",
        ),
        ({"wage_growth": {"values": {"2026-01-01": {"value": 0.03, "source": "operator"}}}}, "reference and source"),
        (
            {"rent_growth": {"values": {"2026-01-01": {"value": 0.03, "reference": "x", "source": "operator"}}}},
            "no assumption rent_growth",
        ),
        (
            {"mortality": {"values": {"2026-01-01": {"value": "many", "reference": "x", "source": "operator"}}}},
            "must be a number",
        ),
        (
            {"mortality": {"values": {"2026-01-01": {"value": 1.5, "reference": "x", "source": "operator"}}}},
            "between -1 and 1",
        ),
        ({"mortality": 0.2}, "must map to dated values"),
    ],
)
def test_a_wrong_override_is_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(RulesError, match=message):
        load_assumptions(overrides, ON)


# --- the projection, worked by hand ---------------------------------------------------------------------------------

BASE = Baseline(
    year=2025,
    insured=1000,
    contributions_fen=1_000_625,
    beneficiaries={3: 100},
    benefit_per_beneficiary_fen={3: 10_000},
    balance_fen=500_000,
)


def test_two_years_by_hand() -> None:
    rows = project(BASE, assumptions(), 2)
    # insured: 1000 × 1.01 = 1010; 1010 × 1.01 = 1020.1 -> 1020
    # contributions: 1,000,625 × 1.01 × 1.04 = 1,051,056.5 -> 1,051,057 (half-up);
    #                1,051,056.5 × 1.0504 = 1,104,029.7476 -> 1,104,030 (carried unrounded)
    # beneficiaries: 100 × (1 + 0.05 - 0.10) = 95; 95 × 0.95 = 90.25 -> 90
    # per beneficiary: 10,000 × 1.02 = 10,200; 10,404
    # benefits: 95 × 10,200 = 969,000; 90.25 × 10,404 = 938,961
    # balance: 500,000 + 1,051,057 - 969,000 = 582,057; 582,057 + 1,104,030 - 938,961 = 747,126
    assert rows == [
        {
            "year": 2026,
            "insured": 1010,
            "beneficiaries": 95,
            "contributions_fen": 1_051_057,
            "benefits_fen": 969_000,
            "balance_fen": 582_057,
        },
        {
            "year": 2027,
            "insured": 1020,
            "beneficiaries": 90,
            "contributions_fen": 1_104_030,
            "benefits_fen": 938_961,
            "balance_fen": 747_126,
        },
    ]
    assert run_out_year(rows) is None
    assert project(BASE, assumptions(), 0) == [] and run_out_year([]) is None


def test_benefits_are_rounded_per_grade() -> None:
    # Two grades of 10 persons at 50 fen a year: 10 × 0.95 × 50 × 1.02 = 484.5 -> 485 in each grade, 970 in all
    # (rounding the sum, 969, would lose a fen).
    base = dataclasses.replace(
        BASE, contributions_fen=0, beneficiaries={3: 10, 4: 10}, benefit_per_beneficiary_fen={3: 50, 4: 50}
    )
    (row,) = project(base, assumptions(), 1)
    assert row["benefits_fen"] == 970 and row["beneficiaries"] == 20  # 9.5 -> 10 in each grade
    assert row["balance_fen"] == 500_000 - 970


def test_the_reserve_runs_out_in_a_given_year() -> None:
    base = dataclasses.replace(BASE, contributions_fen=100_000, balance_fen=1_000_000)
    rows = project(base, assumptions(), 5)
    # 2026: 1,000,000 + 105,040 - 969,000 = 136,040
    # 2027: 136,040 + 110,334 (110,334.016) - 938,961 = -692,587
    assert [r["balance_fen"] for r in rows[:2]] == [136_040, -692_587]
    assert run_out_year(rows) == 2027
    # Growth by grade that mortality cancels: the beneficiaries stay, the benefits grow with prices only.
    flat = project(base, assumptions(beneficiary_growth="0.10"), 1)
    assert flat[0]["beneficiaries"] == 100 and flat[0]["benefits_fen"] == 1_020_000


def test_a_missing_grade_or_assumption_is_named() -> None:
    with pytest.raises(RulesError, match=r"beneficiary_growth\.grade_7"):
        project(dataclasses.replace(BASE, beneficiaries={7: 1}, benefit_per_beneficiary_fen={7: 1}), assumptions(), 1)
    partial = {k: v for k, v in assumptions().items() if k != "wage_growth"}
    with pytest.raises(RulesError, match="wage_growth"):
        project(BASE, partial, 1)


# --- sensitivity ----------------------------------------------------------------------------------------------------


def test_sensitivity_moves_each_assumption_one_point_each_way() -> None:
    years = 10
    rows = sensitivity(BASE, assumptions(), years)
    central = project(BASE, assumptions(), years)
    assert rows[0]["assumption"] == "central" and rows[0]["balance_fen"] == central[-1]["balance_fen"]
    assert rows[0]["year"] == 2035 and rows[0]["run_out_year"] is None
    keyed = {(r["assumption"], r["shift"]): r for r in rows[1:]}
    groups = ("insured_growth", "beneficiary_growth", "mortality", "price_growth", "wage_growth")
    assert set(keyed) == {(g, s) for g in groups for s in ("-0.01", "+0.01")} and len(rows) == 11
    assert keyed[("wage_growth", "+0.01")]["value"] == "0.05"
    assert keyed[("beneficiary_growth", "-0.01")]["value"] == "0.04"  # every grade moved together
    moved = project(BASE, assumptions(wage_growth="0.05"), years)
    assert keyed[("wage_growth", "+0.01")]["balance_fen"] == moved[-1]["balance_fen"]

    def final(group: str, shift: str) -> int:
        return int(keyed[(group, shift)]["balance_fen"])

    mid = rows[0]["balance_fen"]
    assert final("wage_growth", "-0.01") < mid < final("wage_growth", "+0.01")  # contributions grow faster
    assert final("insured_growth", "-0.01") < mid < final("insured_growth", "+0.01")
    assert final("price_growth", "-0.01") > mid > final("price_growth", "+0.01")  # benefits grow faster
    assert final("beneficiary_growth", "-0.01") > mid > final("beneficiary_growth", "+0.01")
    assert final("mortality", "-0.01") < mid < final("mortality", "+0.01")


def test_sensitivity_names_when_the_reserve_runs_out() -> None:
    # Benefits grow by 1.05 × 1.02 a year, contributions by 1.01 × 1.04: the reserve of 200,000 fen runs out in the
    # fourth year. Year 3: contributions 1,000,000 × 1.0504³ = 1,158,948.504 -> 1,158,949; benefits
    # 100 × 1.05³ × 10,000 × 1.02³ = 115.7625 × 10,612.08 = 1,228,480.911 -> 1,228,481;
    # 135,699 + 1,158,949 - 1,228,481 = 66,167.
    base = dataclasses.replace(BASE, contributions_fen=1_000_000, balance_fen=200_000)
    grown = assumptions(beneficiary_growth="0.15")
    assert [r["balance_fen"] for r in project(base, grown, 3)] == [179_400, 135_699, 66_167]
    rows = {(r["assumption"], r["shift"]): r for r in sensitivity(base, grown, 30)}
    assert rows[("central", "0")]["run_out_year"] == 2029
    assert rows[("price_growth", "+0.01")]["run_out_year"] <= 2029 <= rows[("price_growth", "-0.01")]["run_out_year"]
    assert rows[("wage_growth", "-0.01")]["run_out_year"] <= 2029 <= rows[("wage_growth", "+0.01")]["run_out_year"]


# --- the report -----------------------------------------------------------------------------------------------------

MONTHS = [f"2025-{m:02d}" for m in range(4, 13)] + [f"2026-{m:02d}" for m in range(1, 4)]
YEARS = 8


def synthetic_result() -> dict[str, Any]:
    """A small result, as the replay hands it to the report, built by hand."""
    n = len(MONTHS)
    in_force = [3_000_000 + 10_000 * i for i in range(n)]
    variant = [v + 150_000 for v in in_force]
    contributions = [3_200_000] * n
    balance: dict[str, list[int]] = {"in_force": [], "variant": []}
    for sc, benefits in (("in_force", in_force), ("variant", variant)):
        running = 5_000_000
        for c, b in zip(contributions, benefits, strict=True):
            running += c - b
            balance[sc].append(running)
    months = pl.DataFrame(
        {
            "period": MONTHS,
            "in_force_fen": in_force,
            "variant_fen": variant,
            "diff_fen": [v - i for i, v in zip(in_force, variant, strict=True)],
            "in_force_beneficiaries": [40] * n,
            "variant_beneficiaries": [41] * n,
            "in_force_contributions_fen": contributions,
            "variant_contributions_fen": contributions,
            "in_force_balance_fen": balance["in_force"],
            "variant_balance_fen": balance["variant"],
            "in_force_reserve_months": [b / 3_000_000 for b in balance["in_force"]],
            "variant_reserve_months": [None] * (n - 1) + [1.5],
        },
        schema_overrides={"variant_reserve_months": pl.Float64},
    )
    by_mode_grade = pl.DataFrame(
        {
            "period": [MONTHS[-1]] * 3,
            "care_mode": ["institutional", "institutional", "home"],
            "grade": [3, 4, 5],
            "in_force_fen": [1_000_000, 1_200_000, 910_000],
            "variant_fen": [1_150_000, 1_200_000, 910_000],
            "diff_fen": [150_000, 0, 0],
        }
    )
    persons = pl.DataFrame(
        {
            "person_id": ["NN0000001", "NN0000002", "NN0000003", "NN0000004"],
            "in_force_fen": [171_000, 0, 171_000, 50_000],
            "variant_fen": [180_000, 90_000, 180_000, 0],
            "diff_fen": [9_000, 90_000, 9_000, -50_000],
            "change": ["more", "gain", "more", "eligibility_lose"],
        }
    )
    in_force_base = Baseline(2026, 1200, 38_400_000, {3: 12, 4: 14, 5: 14}, {3: 900_000, 4: 900_000, 5: 900_000}, 0)
    in_force_base = dataclasses.replace(in_force_base, balance_fen=balance["in_force"][-1])
    variant_base = dataclasses.replace(
        in_force_base,
        benefit_per_beneficiary_fen={3: 2_500_000, 4: 900_000, 5: 900_000},
        balance_fen=balance["variant"][-1],
    )
    found = load_assumptions(None, ON)
    projection: dict[str, Any] = {"assumptions": [a.cite() for a in found.values()], "sensitivity": {}}
    for sc, base in (("in_force", in_force_base), ("variant", variant_base)):
        rows = project(base, found, YEARS)
        projection[sc] = rows
        projection[f"{sc}_run_out"] = run_out_year(rows)
        projection["sensitivity"][sc] = sensitivity(base, found, YEARS)
    return {
        "jurisdiction": "nanning",
        "pack_name": "南宁市长期护理保险",
        "document": "南府规〔2023〕26号《南宁市人民政府关于推进南宁市长期护理保险制度的实施意见》",
        "draft": True,
        "from": MONTHS[0],
        "to": MONTHS[-1],
        "generated": "2026-04-02 08:00 UTC",
        "proposal": {
            "title": "机构护理重度失能Ⅰ级日标准提高至60元",
            "description": "测算：重度失能Ⅰ级机构护理日标准由57元提高至60元 <b>不是标记</b>",
            "file": "/home/someone/proposals/raise-grade-3.yaml",
        },
        "changed": [
            {
                "parameter": "billing.institutional_daily_rate.grade_3",
                "description": "机构护理 按床日付费 每人每天（重度失能Ⅰ级）",
                "unit": "yuan/day",
                "from": "2025-04-01",
                "in_force": "57",
                "variant": "60",
                "reference": "测算方案 拟修订 南府规〔2023〕26号 三(三)3(2)",
                "in_force_reference": "南府规〔2023〕26号 三(三)3(2)",
            }
        ],
        "months": months,
        "by_mode_grade": by_mode_grade,
        "contributions": pl.DataFrame(
            {
                "payer": ["employer", "personal_account"],
                "in_force_fen": [19_200_000, 19_200_000],
                "variant_fen": [19_200_000, 19_200_000],
                "diff_fen": [0, 0],
            }
        ),
        "persons": persons,
        "years": pl.DataFrame(
            {
                "year": [2025, 2026],
                "in_force_fen": [sum(in_force[:9]), sum(in_force[9:])],
                "variant_fen": [sum(variant[:9]), sum(variant[9:])],
                "diff_fen": [150_000 * 9, 150_000 * 3],
            }
        ),
        "projection": projection,
    }


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_the_report_page_and_its_csv_files(tmp_path: Path) -> None:
    result = synthetic_result()
    page_file = write_report(result, tmp_path / "scenario")
    assert page_file == tmp_path / "scenario" / "report.html"
    page = page_file.read_text(encoding="utf-8")
    assert page == render_report(result)

    assert "长期护理保险政策测算" in page and "Policy what-if" in page
    assert "征求意见稿" in page and result["document"] in page
    assert "&lt;b&gt;不是标记" in page  # the proposal's text is escaped
    assert "raise-grade-3.yaml" in page and "/home/someone" not in page
    assert "三(三)3(2)" in page and "billing.institutional_daily_rate.grade_3" in page
    assert page.count("<svg") == 2  # monthly benefits; projected balance
    for sc in ("in_force", "variant"):
        assert len(re.findall(rf'class="bar" data-series="{sc}"', page)) == len(MONTHS)
        assert len(re.findall(rf'class="line" data-series="{sc}"', page)) == 1
        assert len(re.findall(rf'class="point" data-series="{sc}"', page)) == YEARS
    assert 'fill="#2b7bba"' in page and 'fill="#d95f02"' in page
    rows = re.findall(r'<tr class="sensitivity" data-assumption="([a-z_]+)" data-shift="([^"]+)"', page)
    assert rows[0] == ("central", "0") and len(rows) == 11
    assert ("wage_growth", "+0.01") in rows and ("beneficiary_growth", "-0.01") in rows
    assert "假设 (assumption)" in page and "no document fixes it" in page
    projection = result["projection"]
    for sc in ("in_force", "variant"):
        run_out = projection[f"{sc}_run_out"]
        shown = re.search(rf'id="run-out-{sc}">([^<]+)<', page)
        assert shown is not None
        assert shown.group(1) == (str(run_out) if run_out is not None else f"{YEARS} 年内不会耗尽")
    assert projection["variant_run_out"] is not None and projection["in_force_run_out"] is None
    assert f"not within {YEARS} years" in page
    # the persons: counts only
    assert "NN000000" not in page
    persons = re.search(r'<table id="persons">(.*?)</table>', page, re.S)
    assert persons is not None and "<td>待遇增加 (paid more)</td><td>2</td>" in persons.group(1)
    # self-contained, and no ID number
    assert "<script" not in page.lower()
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', page) and "@import" not in page and "url(" not in page
    assert not re.search(r"\d{17}[\dX]", page)

    out = tmp_path / "scenario"
    expected = {
        "changed": 1,
        "years": 2,
        "months": len(MONTHS),
        "by_mode_grade": 3,
        "contributions": 2,
        "persons": 4,
        "persons_by_change": 7,
        "projection": 2 * YEARS,
        "assumptions": 10,
        "sensitivity": 11,
    }
    for name, n in expected.items():
        rows_ = read_csv(out / f"{name}.csv")
        assert len(rows_) == n, name
    assert read_csv(out / "persons.csv")[0] == {
        "person_id": "NN0000001",
        "in_force_fen": "171000",
        "variant_fen": "180000",
        "diff_fen": "9000",
        "change": "more",
    }
    assert (out / "months.csv").read_bytes()[:3] != b"\xef\xbb\xbf"  # plain UTF-8
    years = read_csv(out / "projection.csv")
    assert years[0]["scenario"] == "in_force" and int(years[0]["year"]) == 2027
    assert int(years[-1]["balance_fen"]) == projection["variant"][-1]["balance_fen"]
    sens = read_csv(out / "sensitivity.csv")
    assert sens[0]["assumption"] == "central"
    assert int(sens[0]["variant_run_out_year"]) == projection["variant_run_out"]
    assert sens[0]["in_force_run_out_year"] == ""

    colours = {"in_force": (0x2B, 0x7B, 0xBA), "variant": (0xD9, 0x5F, 0x02)}
    seen = colour_counts(page_file, tmp_path / "whatif.png", 3000, colours)
    assert all(n > 200 for n in seen.values()), seen  # both scenarios' bars and lines are drawn
