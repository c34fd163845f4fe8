"""Remind applicants of their assessment visit on the working day before it, then deliver."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow

from flows.naming import run_name, today
from flows.send_notices import send_notices
from tasks.calendar import is_working_day
from tasks.scheduling import enqueue_reminders


@flow(name="send-reminders", flow_run_name=run_name("reminders {jurisdiction} {as_of}"))
def send_reminders(jurisdiction: str, as_of: dt.date | None = None, working_days_only: bool = False) -> dict[str, Any]:
    """`as_of` defaults to today in China; with `working_days_only` a run on a day off does nothing."""
    as_of = as_of or today()
    if working_days_only and not is_working_day(as_of):
        return {"skipped": f"{as_of} is not a working day"}
    written = enqueue_reminders(jurisdiction, as_of)
    return {"reminders": written, "delivery": send_notices()}
