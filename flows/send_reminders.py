"""Remind applicants of their assessment visit on the working day before it, then deliver."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow

from flows.send_notices import send_notices
from tasks.scheduling import enqueue_reminders


@flow(name="send-reminders", flow_run_name="reminders {jurisdiction} {as_of}")
def send_reminders(jurisdiction: str, as_of: dt.date) -> dict[str, Any]:
    written = enqueue_reminders(jurisdiction, as_of)
    return {"reminders": written, "delivery": send_notices()}
