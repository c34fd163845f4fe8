"""Take in every file waiting in an inbox folder: each file's kind is the start of its name (`care_days_2026-03.csv`
is care days), assessment results are recorded with their fees, and a loaded file moves to `loaded/<day>/`.

Loading a file is idempotent (its rows are upserted, its bad rows kept once per file), so a run that dies between
loading a file and moving it loads it again, to the same result."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from flows.intake import load
from flows.naming import today
from flows.record_assessments import record_assessments
from ltc.settings import get_settings
from tasks.calendar import is_working_day
from tasks.schemas import INBOUND

# Kinds that arrive by a route of their own: bank returns with the payment period they reconcile.
NOT_FROM_THE_INBOX = {"bank_returns"}


def kind_of(name: str) -> str | None:
    """The inbound kind a file's name starts with (the longest that matches), or None."""
    kinds = sorted((k for k in INBOUND if k not in NOT_FROM_THE_INBOX), key=len, reverse=True)
    return next((k for k in kinds if name == f"{k}.csv" or name.startswith(f"{k}_")), None)


# Kinds in the order they depend on each other (a care day names a person and a provider).
ORDER = [
    "persons",
    "providers",
    "agencies",
    "assessors",
    "contributions",
    "applications",
    "assessment_results",
    "assessment_events",
    "hospital_stays",
    "care_days",
]


@flow(name="intake-inbox", flow_run_name="intake inbox {jurisdiction}")
def intake_inbox(jurisdiction: str, folder: str | None = None, working_days_only: bool = False) -> dict[str, Any]:
    """`folder` defaults to `$LTC_HOME/inbox/<jurisdiction>`. With `working_days_only` (as scheduled daily) a run
    on a day off in China does nothing."""
    day = today()
    if working_days_only and not is_working_day(day):
        return {"skipped": f"{day} is not a working day"}
    inbox = Path(folder) if folder else get_settings().home / "inbox" / jurisdiction
    inbox.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in inbox.glob("*.csv") if p.is_file())
    known = [(kind_of(p.name), p) for p in files]
    for kind, p in known:
        if kind is None:
            get_run_logger().warning("%s: the name does not start with a known kind; left in the inbox", p.name)
    loaded: list[dict[str, Any]] = []
    for kind, p in sorted(((k, p) for k, p in known if k), key=lambda kp: (ORDER.index(kp[0]), kp[1].name)):
        if kind == "assessment_results":
            report = record_assessments(str(p), jurisdiction)
        else:
            report = load(kind, str(p))
        done = inbox / "loaded" / day.isoformat()
        done.mkdir(parents=True, exist_ok=True)
        shutil.move(p, done / p.name)
        loaded.append({"file": p.name, **{k: report[k] for k in ("kind", "received", "accepted", "quarantined")}})
    return {"loaded": loaded, "left": [p.name for k, p in known if k is None]}
