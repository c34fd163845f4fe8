"""Record the results that assessment agencies return."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.intake import load


@flow(name="record-assessments", flow_run_name="record results {path}")
def record_assessments(path: str) -> dict[str, Any]:
    return load("assessment_results", path)
