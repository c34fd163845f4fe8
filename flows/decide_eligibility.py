"""Decide eligibility for assessed applications, with a notice for each decision."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow

from flows.naming import run_name, today
from tasks.eligibility import decide, load_assessed, record_decisions


@flow(name="decide-eligibility", flow_run_name=run_name("decide {jurisdiction} as of {as_of}"))
def decide_eligibility(jurisdiction: str, as_of: dt.date | None = None) -> dict[str, Any]:
    """`as_of` defaults to today in China."""
    as_of = as_of or today()
    inputs = load_assessed(jurisdiction, as_of)
    decisions = decide(inputs, jurisdiction, as_of)
    recorded = record_decisions(decisions, jurisdiction, as_of)
    approved = int(decisions["approved"].sum()) if decisions.height else 0
    return {"decided": recorded, "approved": approved, "denied": recorded - approved}
