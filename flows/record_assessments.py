"""Record the results that assessment agencies return, and charge each visit's fee by the pack's rule."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.intake import load
from tasks.assessment_fees import charge_assessment_fees


@flow(name="record-assessments", flow_run_name="record results {path}")
def record_assessments(path: str, jurisdiction: str = "nanning", encoding: str = "utf-8") -> dict[str, Any]:
    report = load("assessment_results", path, encoding)
    report["fees_charged"] = charge_assessment_fees(jurisdiction)
    return report
