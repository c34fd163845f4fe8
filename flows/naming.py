"""What a scheduled run leaves out: the month to bill (the last one) and the day (today), both in China's time,
and run names that show what was filled in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

TIMEZONE = ZoneInfo("Asia/Shanghai")


def today() -> dt.date:
    return dt.datetime.now(TIMEZONE).date()


def last_month(on: dt.date | None = None) -> str:
    """The month before `on` (default: today in China), YYYY-MM: the month a run on the 5th bills."""
    first = (on or today()).replace(day=1)
    return f"{first - dt.timedelta(days=1):%Y-%m}"


def this_month(on: dt.date | None = None) -> str:
    return f"{on or today():%Y-%m}"


def resolved(period: str | None = None, as_of: dt.date | None = None) -> tuple[str, dt.date]:
    return period or last_month(), as_of or today()


def run_name(template: str) -> Callable[[], str]:
    """A flow_run_name that formats the run's parameters, with a period or day left out shown as filled in."""

    def name() -> str:
        from prefect.runtime import flow_run

        params = dict(flow_run.parameters or {})
        if params.get("period") is None:
            params["period"] = last_month()
        if params.get("as_of") is None:
            params["as_of"] = today()
        params.setdefault("jurisdiction", "")
        return template.format(**params)

    return name
