"""Take in reported changes (cancellations, no-shows, objections, re-assessments) and schedule the new visits."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.intake import load
from flows.schedule_assessments import schedule_assessments
from tasks.assessment_events import apply_events


@flow(name="assessment-changes", flow_run_name="assessment changes {jurisdiction} {path}")
def assessment_changes(path: str, jurisdiction: str, encoding: str = "utf-8") -> dict[str, Any]:
    report = load("assessment_events", path, encoding)
    outcomes = apply_events(jurisdiction)
    scheduled = schedule_assessments(jurisdiction)
    return {"intake": report, "outcomes": outcomes, "scheduling": scheduled}
