"""Issue the month's statements to beneficiaries from the claim lines billing wrote, one task per part."""

from __future__ import annotations

from prefect import flow, unmapped

from flows.bill_month import persons_per_part
from flows.naming import last_month, run_name
from tasks.billing import issue_statements as issue_part
from tasks.billing import plan_parts


@flow(name="issue-statements", flow_run_name=run_name("statements {jurisdiction} {period}"))
def issue_statements(jurisdiction: str, period: str | None = None) -> dict[str, int]:
    period = period or last_month()
    parts = plan_parts(jurisdiction, period, persons_per_part())
    written = [f.result() for f in issue_part.map(unmapped(jurisdiction), unmapped(period), parts)]
    return {"statements": sum(written), "parts": len(written)}
