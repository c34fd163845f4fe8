"""Changes to visits and results: a cancellation or a no-show frees the visit and asks for a new one; an
objection within the publicity period (公示) sets the result aside and asks for a visit by other assessors; a
re-assessment request (复评) asks for a new visit by other assessors after a decision."""

from __future__ import annotations

import datetime as dt

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import select

from rules.engine import load_pack
from storage import models as m
from storage.db import session_scope
from tasks.retrying import RETRY_TRANSIENT
from tasks.scheduling import release


@task(cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def apply_events(jurisdiction: str) -> dict[str, int]:
    """Act on every event not yet acted on, oldest first; each event's outcome is recorded on it."""
    counts: dict[str, int] = {}
    pack = load_pack(jurisdiction)
    with session_scope() as s:
        ids = s.scalars(
            select(m.AssessmentEvent.id)
            .join(m.Application, m.Application.application_id == m.AssessmentEvent.application_id)
            .join(m.Person, m.Person.person_id == m.Application.person_id)
            .where(m.Person.jurisdiction == jurisdiction, m.AssessmentEvent.outcome.is_(None))
            .order_by(m.AssessmentEvent.reported_on, m.AssessmentEvent.id)
        ).all()
    for event_id in ids:
        with session_scope() as s:
            ev = s.get(m.AssessmentEvent, event_id)
            assert ev is not None
            app = s.get(m.Application, ev.application_id)
            assert app is not None
            visits = s.scalars(
                select(m.Assessment)
                .where(m.Assessment.application_id == app.application_id)
                .order_by(m.Assessment.sequence.desc())
            ).all()
            current = visits[0] if visits else None
            if ev.event in ("cancel", "no_show"):
                if current is None or current.status != "scheduled":
                    ev.outcome = "rejected: no visit is scheduled"
                else:
                    release(s, current, "cancelled" if ev.event == "cancel" else "no_show")
                    # The new visit comes after the one that fell through, never on its day.
                    _revisit(app, "reschedule", max(ev.reported_on, current.scheduled_on))
                    ev.outcome = f"visit {current.sequence} released; a new visit is scheduled"
            elif ev.event == "objection":
                done = next((v for v in visits if v.status == "done"), None)
                days = (
                    int(pack.param("assessment.publicity_days").at(done.published_on))
                    if done and done.published_on
                    else 0
                )
                if done is None or done.published_on is None:
                    ev.outcome = "rejected: no published result to object to"
                elif app.status != "assessed":
                    ev.outcome = f"rejected: the application is {app.status}"
                elif not done.published_on <= ev.reported_on <= done.published_on + dt.timedelta(days=days):
                    ev.outcome = f"rejected: outside the publicity period ({done.published_on} + {days} days)"
                else:
                    done.status = "objected"
                    _revisit(app, "objection", ev.reported_on)
                    ev.outcome = f"result {done.sequence} set aside; a new visit by other assessors is scheduled"
            else:  # reassessment (复评)
                if app.status != "decided":
                    ev.outcome = f"rejected: the application is {app.status}, not decided"
                else:
                    _revisit(app, "reassessment", ev.reported_on)
                    ev.outcome = "a new visit by other assessors is scheduled"
            key = ev.outcome.split(":", 1)[0] if ev.outcome.startswith("rejected") else ev.event
            counts[key] = counts.get(key, 0) + 1
    return counts


def _revisit(app: m.Application, reason: str, on: dt.date) -> None:
    app.status, app.visit_reason, app.visit_requested_on, app.problem = "received", reason, on, None
