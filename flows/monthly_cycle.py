"""The monthly cycle: bill the period, issue statements, pay the providers, send the notices."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.bill_month import bill_month
from flows.issue_statements import issue_statements
from flows.naming import last_month, run_name
from flows.pay_providers import pay_providers
from flows.send_notices import send_notices


@flow(name="monthly-cycle", flow_run_name=run_name("monthly cycle {jurisdiction} {period}"))
def monthly_cycle(jurisdiction: str, period: str | None = None) -> dict[str, Any]:
    period = period or last_month()
    billed = bill_month(jurisdiction, period)
    statements = issue_statements(jurisdiction, period)
    paid = pay_providers(jurisdiction, period)
    sent = send_notices()
    return {"billing": billed, "statements": statements, "payment": paid, "notices": sent}
