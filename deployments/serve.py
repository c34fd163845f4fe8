"""Every flow as a deployment, served from one process (`python -m deployments.serve`).

The entrypoints here are the ones `deployments/prefect.yaml` names; the smoke test imports each of them.
"""

from __future__ import annotations

from prefect import serve

from flows.assessment_changes import assessment_changes
from flows.bill_month import bill_month
from flows.contributions import contributions
from flows.decide_eligibility import decide_eligibility
from flows.intake import intake
from flows.issue_statements import issue_statements
from flows.monthly_cycle import monthly_cycle
from flows.pay_providers import pay_providers
from flows.reconcile_payments import reconcile_payments
from flows.record_assessments import record_assessments
from flows.schedule_assessments import schedule_assessments
from flows.send_notices import send_notices
from flows.send_reminders import send_reminders

FLOWS = [
    intake,
    contributions,
    schedule_assessments,
    record_assessments,
    assessment_changes,
    send_reminders,
    decide_eligibility,
    bill_month,
    issue_statements,
    pay_providers,
    reconcile_payments,
    send_notices,
    monthly_cycle,
]


def main() -> None:  # pragma: no cover - runs until stopped
    serve(*(f.to_deployment(name=f.name) for f in FLOWS))  # type: ignore[attr-defined]


if __name__ == "__main__":  # pragma: no cover
    main()
