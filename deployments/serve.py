"""Every flow as a deployment, with the schedules of `deployments/prefect.yaml`, served from one process
(`uv run ltc serve`, or `python -m deployments.serve`).

The flows here are the ones `deployments/prefect.yaml` names; the smoke test checks that the two agree.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow, serve
from prefect.schedules import Cron, Interval, Schedule

from flows.assessment_changes import assessment_changes
from flows.bill_month import bill_month
from flows.contributions import contributions
from flows.decide_eligibility import decide_eligibility
from flows.intake import intake
from flows.intake_inbox import intake_inbox
from flows.issue_statements import issue_statements
from flows.monthly_cycle import monthly_cycle
from flows.pay_providers import pay_providers
from flows.reconcile_payments import reconcile_payments
from flows.record_assessments import record_assessments
from flows.schedule_assessments import schedule_assessments
from flows.send_notices import send_notices
from flows.send_reminders import send_reminders
from flows.whatif import whatif

FLOWS: list[Flow[Any, Any]] = [
    intake_inbox,
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
    whatif,
]
PREFECT_YAML = Path(__file__).resolve().parent / "prefect.yaml"


def deployments_file() -> Path:
    """The deployments to serve: `LTC_DEPLOYMENTS_FILE` (an operator's copy of prefect.yaml with their own days
    and hours), else the project's `deployments/prefect.yaml`."""
    return Path(os.environ.get("LTC_DEPLOYMENTS_FILE") or PREFECT_YAML)


def deployment_specs(path: Path | None = None) -> list[dict[str, Any]]:
    specs: list[dict[str, Any]] = yaml.safe_load((path or deployments_file()).read_text(encoding="utf-8"))[
        "deployments"
    ]
    return specs


def schedule(spec: dict[str, Any]) -> Schedule:
    """A schedule of prefect.yaml as a Prefect schedule object, with its slug, timezone, state and parameters."""
    common = {
        "timezone": spec.get("timezone"),
        "active": spec.get("active", True),
        "parameters": spec.get("parameters") or {},
        "slug": spec.get("slug"),
    }
    if "cron" in spec:
        return Cron(spec["cron"], **common)
    anchor = spec.get("anchor_date")
    if isinstance(anchor, str):
        anchor = dt.datetime.fromisoformat(anchor)
    return Interval(int(spec["interval"]), anchor_date=anchor, **common)


def deployments(path: Path | None = None) -> list[Any]:
    """Every flow of prefect.yaml as a runner deployment with its schedules and default parameters."""
    by_name = {f.name: f for f in FLOWS}
    return [
        by_name[spec["name"]].to_deployment(
            name=spec["name"],
            description=spec.get("description"),
            parameters=spec.get("parameters") or {},
            schedules=[schedule(s) for s in spec.get("schedules") or []],
        )
        for spec in deployment_specs(path)
    ]


def main() -> None:  # pragma: no cover - runs until stopped
    serve(*deployments())


if __name__ == "__main__":  # pragma: no cover
    main()
