"""`ltc whatif`: a proposal replayed on the record's billed months under the pack in force and a variant.

A variant with no changes gives the billed months to the fen; Nanning's grade-3 institutional rate raised from 57 to
60 yuan a day from 2026-03-01 (南府规〔2023〕26号 三(三)3(2)) changes exactly March's grade-3 institutional lines,
each by its days paid × 3 yuan, and nothing in February; the record is unchanged to the byte."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from sqlalchemy import inspect, select, text
from typer.testing import CliRunner

from common.settings import get_settings
from flows.bill_month import bill_month
from ltc.cli import app
from ltc.demo import DemoSize, month_files
from ltc.pipeline import run_demo
from rules.errors import UserError
from rules.variants import load_variant
from storage import models as m
from storage.db import session_scope
from tasks.intake import load_file

FEB, MAR = "2026-02", "2026-03"
SEED = 11
RATE = "billing.institutional_daily_rate.grade_3"


def two_months_billed() -> None:
    """A demo February (billed and paid), then March's care days loaded and billed."""
    run_demo("nanning", FEB, SEED, DemoSize(insured=400, applicants=60, providers=3, agencies=2))
    march = month_files(get_settings().demo_dir / "nanning" / MAR, "nanning", MAR, SEED)
    load_file("hospital_stays", march["hospital_stays"])
    load_file("care_days", march["care_days"])
    bill_month("nanning", MAR)


def record_digest() -> dict[str, tuple[int, str]]:
    """Every table of the record (care-day partitions included): its row count and a digest of its rows, sorted."""
    out: dict[str, tuple[int, str]] = {}
    with session_scope() as s:
        conn = s.connection()
        for name in sorted(inspect(conn).get_table_names()):
            rows = sorted(repr(tuple(r)) for r in conn.execute(text(f'SELECT * FROM "{name}"')))
            out[name] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
    return out


def variant_file(folder: Path, parameters: dict[str, Any], name: str) -> Path:
    path = folder / f"{name}.yaml"
    data = {"jurisdiction": "nanning", "title": name, "description": f"测算方案 {name}", "parameters": parameters}
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def whatif(variant: Path, out: Path, to: str = MAR) -> dict[str, Any]:
    result = CliRunner().invoke(
        app,
        ["whatif", "--variant", str(variant), "--from", FEB, "--to", to, "--years", "5", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    import json

    found: dict[str, Any] = json.loads(result.stdout[result.stdout.index("{") :])
    return found


@pytest.mark.usefixtures("prefect_server")
def test_no_change_and_grade_3_rate_variant_3_3_2(backend: str, tmp_path: Path) -> None:
    two_months_billed()
    before = record_digest()
    with session_scope() as s:
        recorded = pl.DataFrame(
            s.execute(
                select(
                    m.ClaimLine.person_id,
                    m.ClaimLine.provider_id,
                    m.ClaimLine.care_mode,
                    m.ClaimLine.period,
                    m.ClaimLine.grade,
                    m.ClaimLine.days_paid,
                    m.ClaimLine.payable_fen,
                )
            ).all(),
            schema=["person_id", "provider_id", "care_mode", "period", "grade", "days_paid", "payable_fen"],
            orient="row",
        )
    assert set(recorded["period"]) == {FEB, MAR}

    # No change: the replay under the pack in force is the record, to the fen; the variant differs in nothing. April
    # is not billed (no care days loaded): it adds nothing, and the projection starts from March, the last closed.
    same = whatif(variant_file(tmp_path, {}, "no-change"), tmp_path / "same", to="2026-04")
    assert same["months_billed_on_record"] == 2
    assert same["record_fen"] == int(recorded["payable_fen"].sum()) > 0
    assert same["in_force_fen_of_billed_months"] == same["record_fen"]
    assert same["lines_differing_from_record"] == 0
    assert same["variant_fen"] == same["in_force_fen"] == same["record_fen"]
    assert same["diff_fen"] == 0 and same["lines_changed"] == 0
    assert not any(same["persons_affected"].values()), same["persons_affected"]
    assert same["contributions_diff_fen"] == 0
    months = pl.read_parquet(tmp_path / "same" / "months.parquet")
    assert months["diff_fen"].to_list() == [0, 0, 0]
    assert same["months"] == 3 and same["projection_from"] == MAR
    page = (tmp_path / "same" / "report.html").read_text(encoding="utf-8")
    assert f"the last closed period, {MAR}" in page and 'id="sensitivity"' in page

    # Grade 3 institutional care at 60 yuan a day from 2026-03-01: each March grade-3 institutional line gains its
    # days paid × 300 fen; February (before the date) and every other line are unchanged.
    entry = {
        "2026-03-01": {"value": 60, "reference": "测算方案 拟修订 南府规〔2023〕26号 三(三)3(2)", "source": "variant"}
    }
    raised = whatif(variant_file(tmp_path, {RATE: {"values": entry}}, "grade-3-60"), tmp_path / "raised")
    expected = recorded.filter(
        (pl.col("period") == MAR)
        & (pl.col("care_mode") == "institutional")
        & (pl.col("grade") == 3)
        & (pl.col("days_paid") > 0)
    ).with_columns(diff=pl.col("days_paid") * 300)
    assert expected.height > 0, "the demo month has grade-3 institutional care"
    lines = pl.read_parquet(tmp_path / "raised" / "lines.parquet")
    got = lines.select(
        "person_id",
        "provider_id",
        "care_mode",
        "period",
        (pl.col("variant_payable_fen") - pl.col("in_force_payable_fen")).alias("diff"),
    ).sort("person_id", "provider_id")
    assert (
        got.to_dicts()
        == expected.select("person_id", "provider_id", "care_mode", "period", "diff")
        .sort("person_id", "provider_id")
        .to_dicts()
    )
    assert raised["diff_fen"] == int(expected["diff"].sum())
    more = expected["person_id"].n_unique()
    assert {k: v for k, v in raised["persons_affected"].items() if v} == {"more": more}
    by_month = dict(pl.read_parquet(tmp_path / "raised" / "months.parquet").select("period", "diff_fen").iter_rows())
    assert by_month == {FEB: 0, MAR: int(expected["diff"].sum())}
    grade = pl.read_parquet(tmp_path / "raised" / "by_mode_grade.parquet").filter(pl.col("diff_fen") != 0)
    assert grade.select("period", "care_mode", "grade").rows() == [(MAR, "institutional", 3)]
    assert (tmp_path / "raised" / "report.html").exists()

    # Grade 3 no longer eligible (三(三)1 raised to grade 4): every grade-3 approval is refused, and the persons
    # whose every paid line was at grade 3 lose their benefits; nobody else's change.
    entry = {"2024-01-01": {"value": 4, "reference": "测算方案 拟修订 南府规〔2023〕26号 三(三)1", "source": "variant"}}
    strict = whatif(
        variant_file(tmp_path, {"eligibility.min_grade": {"values": entry}}, "min-grade-4"), tmp_path / "g4"
    )
    with session_scope() as s:
        approved = pl.DataFrame(
            s.execute(
                select(m.EligibilityDecision.person_id, m.EligibilityDecision.grade).where(
                    m.EligibilityDecision.approved.is_(True)
                )
            ).all(),
            schema=["person_id", "grade"],
            orient="row",
        )
    grade_3 = set(approved.filter(pl.col("grade") == 3)["person_id"]) - set(
        approved.filter(pl.col("grade") != 3)["person_id"]
    )
    assert grade_3, "the demo has grade-3 beneficiaries"
    paid = recorded.filter(pl.col("payable_fen") > 0)
    losing = set(paid.filter(pl.col("person_id").is_in(list(grade_3)))["person_id"])
    affected = pl.read_parquet(tmp_path / "g4" / "persons.parquet")
    assert set(affected.filter(pl.col("change") == "lose")["person_id"]) == losing
    assert grade_3 <= set(affected["person_id"]) <= set(approved.filter(pl.col("grade") == 3)["person_id"])
    assert strict["diff_fen"] == -int(paid.filter(pl.col("person_id").is_in(list(grade_3)))["payable_fen"].sum())
    decisions = pl.read_parquet(tmp_path / "g4" / "eligibility.parquet")
    assert set(decisions["change"]) == {"eligibility_lose"}
    assert set(decisions["person_id"]) == set(approved.filter(pl.col("grade") == 3)["person_id"])

    assert record_digest() == before  # nothing of the record changed


def test_variant_file_errors_name_the_file_and_what_is_wrong(tmp_path: Path) -> None:
    bad = variant_file(
        tmp_path, {RATE: {"values": {"2026-03-01": {"value": 60, "reference": "x", "source": "operator"}}}}, "op"
    )
    with pytest.raises(UserError, match=r"op\.yaml.*source must be one of variant"):
        load_variant(bad, "nanning")
    unknown = variant_file(tmp_path, {"billing.no_such_rate": {"values": {}}}, "unknown")
    with pytest.raises(UserError, match=r"unknown\.yaml: pack has no parameter billing\.no_such_rate"):
        load_variant(unknown, "nanning")
    negative = {RATE: {"values": {"2026-03-01": {"value": -1, "reference": "x", "source": "variant"}}}}
    with pytest.raises(UserError, match="must be a non-negative number"):
        load_variant(variant_file(tmp_path, negative, "negative"), "nanning")
    with pytest.raises(UserError, match="is for nanning, not banan"):
        load_variant(variant_file(tmp_path, {}, "other"), "banan")
