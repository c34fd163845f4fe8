"""`ltc report fund`: a self-contained HTML page whose figures are the record's, and whose charts show when the
page is rendered in headless Chromium (where the machine has it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from common.formatting import yuan
from common.settings import get_settings
from ltc.cli import app
from ltc.demo import DemoSize
from ltc.fund_report import fund_figures
from ltc.pipeline import run_demo
from storage import models as m
from storage.db import session_scope
from tests.rendering import colour_counts

PERIOD = "2026-03"


@pytest.mark.usefixtures("prefect_server")
def test_fund_report_figures_and_charts(backend: str, tmp_path: Path) -> None:
    run_demo("nanning", PERIOD, 12, DemoSize(insured=300, applicants=40, providers=3, agencies=2))
    with session_scope() as s:
        benefits = int(s.scalar(select(func.sum(m.ClaimLine.payable_fen))) or 0)
        beneficiaries = s.scalar(
            select(func.count(m.ClaimLine.person_id.distinct())).where(m.ClaimLine.payable_fen > 0)
        )
        paid_in = {
            p: int(v)
            for p, v in s.execute(
                select(m.Contribution.period, func.sum(m.Contribution.paid_fen)).group_by(m.Contribution.period)
            ).all()
        }
    f = fund_figures("nanning", PERIOD)
    assert f["labels"][-1] == PERIOD and len(f["labels"]) == 12
    assert f["benefits_fen"][-1] == benefits and f["beneficiaries"][-1] == beneficiaries
    assert f["contributions_fen"] == [paid_in.get(x, 0) for x in f["labels"]]
    assert sum(r["fen"] for r in f["by_mode_grade"]) == benefits
    assert f["ceiling"]["ratio"] == 0.05 and "三(六)" in f["ceiling"]["reference"]

    out = tmp_path / "fund.html"
    result = CliRunner().invoke(app, ["report", "fund", "--period", PERIOD, "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert page.count("<svg") == 4  # in/out, by care mode, beneficiaries, costs
    assert len(re.findall(r'class="bar" data-series="in"', page)) == 12
    assert yuan(benefits) in page.replace(",", "")
    assert not re.search(r'(src|href)="(https?:)?//', page) and "<script" not in page  # self-contained
    assert not re.search(r"\d{17}[\dX]", page)  # no ID number
    assert get_settings().home  # the default output folder is under LTC_HOME

    colours = {"in": (0x2B, 0x7B, 0xBA), "out": (0xD9, 0x5F, 0x02), "institutional": (0x1B, 0x9E, 0x77)}
    seen = colour_counts(out, tmp_path / "fund.png", 2300, colours)
    assert all(n > 200 for n in seen.values()), seen  # each chart's bars are drawn
