"""`ltc status` and `ltc review` after a demo month: the figures are the record's, and what waits for a person
is listed."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from common.formatting import yuan
from ltc.cli import app
from ltc.demo import DemoSize
from ltc.pipeline import run_demo
from ltc.status import review, status
from storage import models as m
from storage.db import session_scope


@pytest.mark.usefixtures("prefect_server")
def test_status_and_review_after_a_month(backend: str) -> None:
    run_demo("nanning", "2026-03", 8, DemoSize(insured=200, applicants=30, providers=3, agencies=2))
    with session_scope() as s:
        lines = s.scalar(select(func.count()).select_from(m.ClaimLine))
        payable = int(s.scalar(select(func.sum(m.ClaimLine.payable_fen))) or 0)
        quarantined = s.scalar(select(func.count()).select_from(m.QuarantinedRow))
    rows = dict(status("nanning", "2026-03"))
    assert rows["claim lines billed for 2026-03"] == f"{lines} ({yuan(payable)} yuan)"
    assert rows["payment batches for 2026-03"].endswith(f"({yuan(payable)} yuan)")
    assert rows["notices pending"] == 0 and rows["rows quarantined at intake"] == quarantined
    assert rows["payout approval"] == "not required" and rows["period closed"] == "no"
    waiting = review()
    assert len(waiting["rows quarantined at intake"]) == quarantined > 0
    assert {r["kind"] for r in waiting["rows quarantined at intake"]} >= {"care_days"}
    result = CliRunner().invoke(app, ["review"])
    assert result.exit_code == 1 and "rows quarantined at intake" in result.output
    shown = CliRunner().invoke(app, ["status", "--period", "2026-03"])
    assert shown.exit_code == 0 and str(lines) in shown.output
