"""Run reports: a billing and a payment run publish their reports as Prefect artifacts, and the figures in them
add up to what the record holds."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from common.formatting import yuan
from ltc.demo import DemoSize
from ltc.pipeline import run_demo
from storage import models as m
from storage.db import session_scope
from tasks.reports import artifact_key, billing_report, payment_report, previous_period

PERIOD = "2026-03"


def test_previous_period_and_artifact_keys() -> None:
    assert previous_period("2026-01") == "2025-12" and previous_period("2026-10") == "2026-09"
    assert artifact_key("billing", "beijing_shijingshan", "2026-03") == "billing-beijing-shijingshan-2026-03"


def _fen(text: str) -> int:
    yuan_part, _, cents = text.partition(".")
    return int(yuan_part) * 100 + int(cents)


@pytest.mark.usefixtures("prefect_server")
def test_billing_and_payment_runs_publish_reports_that_add_up(backend: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    run_demo("nanning", PERIOD, 9, DemoSize(insured=240, applicants=40, providers=4, agencies=2))
    with session_scope() as s:
        payable = int(s.scalar(select(func.sum(m.ClaimLine.payable_fen))) or 0)
        excluded = int(s.scalar(select(func.sum(m.ClaimLine.days_excluded))) or 0)
        lines = s.scalar(select(func.count()).select_from(m.ClaimLine))
        top = s.scalars(select(m.ClaimLine).order_by(m.ClaimLine.payable_fen.desc(), m.ClaimLine.person_id)).first()
        batches = int(s.scalar(select(func.sum(m.PaymentBatch.total_fen))) or 0)
        flags = s.scalar(select(func.count()).select_from(m.FraudFlag))
    assert top is not None and excluded and flags

    billing = billing_report("nanning", PERIOD)
    assert sum(_fen(r["payable (yuan)"]) for r in billing["by care mode and grade"]) == payable
    assert sum(_fen(r["payable (yuan)"]) for r in billing["by provider"]) == payable
    assert sum(r["claim lines"] for r in billing["by provider"]) == lines
    assert sum(r["days"] for r in billing["days excluded by reason"]) == excluded
    assert sum(r["care-day records"] for r in billing["fraud flags by rule"]) == flags
    assert billing["largest claims"][0]["person"] == top.person_id
    assert billing["change against the previous period"][0] == {
        "period": "2026-02",
        "claim lines": 0,
        "persons": 0,
        "payable (yuan)": "0.00",
    }
    assert any(r["kind"] == "care_days" for r in billing["quarantined rows (all intake)"])
    payment = payment_report("nanning", PERIOD)
    assert payment["totals"][0]["total (yuan)"] == yuan(batches)

    published = {}
    with get_client(sync_client=True) as client:
        for kind in ("billing", "payment"):
            key = artifact_key(kind, "nanning", PERIOD)
            found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
            assert found and all(a.type == "markdown" for a in found), kind
            published[kind] = str(max(found, key=lambda a: a.created or 0).data)
    assert yuan(batches) in published["payment"]
    assert top.person_id in published["billing"]
    assert all(r["payable (yuan)"] in published["billing"] for r in billing["by provider"])
