"""`ltc status` and `ltc review`: the state of a pooling area's month at a glance, and what waits for a person."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from common.formatting import yuan
from storage import models as m
from storage.db import session_scope

# The last approval event of a period as the status shows it.
WAITING = {"codes_issued": "waiting for an approver"}


def status(jurisdiction: str, period: str) -> list[tuple[str, Any]]:
    """(label, value) rows: applications waiting, assessments due, claims billed, batches, approvals, notices."""
    ap, a, cl, pb, n = m.Application, m.Assessment, m.ClaimLine, m.PaymentBatch, m.Notice
    mine = select(m.Person.person_id).where(m.Person.jurisdiction == jurisdiction)
    with session_scope() as s:
        apps = {
            st: c
            for st, c in s.execute(
                select(ap.status, func.count()).where(ap.person_id.in_(mine)).group_by(ap.status)
            ).all()
        }
        visits = {
            st: c
            for st, c in s.execute(
                select(a.status, func.count())
                .join(ap, ap.application_id == a.application_id)
                .where(ap.person_id.in_(mine))
                .group_by(a.status)
            ).all()
        }
        billed = s.execute(
            select(func.count(), func.coalesce(func.sum(cl.payable_fen), 0)).where(
                cl.jurisdiction == jurisdiction, cl.period == period
            )
        ).one()
        batches = s.execute(
            select(func.count(), func.coalesce(func.sum(pb.total_fen), 0)).where(
                pb.jurisdiction == jurisdiction, pb.period == period
            )
        ).one()
        decisions = [
            e.action.rsplit(".", 1)[1]
            for e in s.scalars(
                select(m.AuditEntry)
                .where(
                    m.AuditEntry.action.startswith("payment.approval."),
                    m.AuditEntry.subject == f"{jurisdiction} {period}",
                )
                .order_by(m.AuditEntry.id)
            )
        ]
        notices = {st: c for st, c in s.execute(select(n.status, func.count()).group_by(n.status)).all()}
        quarantined = int(s.scalar(select(func.count()).select_from(m.QuarantinedRow)) or 0)
        closed = s.scalar(
            select(m.PeriodClose.id).where(m.PeriodClose.jurisdiction == jurisdiction, m.PeriodClose.period == period)
        )

    return [
        ("applications waiting for a visit", apps.get("received", 0)),
        ("assessment visits scheduled", visits.get("scheduled", 0)),
        ("assessment results held for review", visits.get("held", 0)),
        ("applications decided", apps.get("decided", 0)),
        (f"claim lines billed for {period}", f"{billed[0]} ({yuan(int(billed[1]))} yuan)"),
        (f"payment batches for {period}", f"{batches[0]} ({yuan(int(batches[1]))} yuan)"),
        (
            "payout approval",
            WAITING.get(decisions[-1], decisions[-1])
            if decisions
            else ("none asked" if not batches[0] else "not required"),
        ),
        ("period closed", "yes" if closed is not None else "no"),
        ("notices pending", notices.get("pending", 0)),
        ("notices failed", notices.get("failed", 0)),
        ("notices quarantined", notices.get("quarantined", 0)),
        ("rows quarantined at intake", quarantined),
    ]


def review() -> dict[str, list[dict[str, Any]]]:
    """What needs a person: quarantined rows, held assessment results, notices failed or quarantined."""
    with session_scope() as s:
        rows = [
            {"kind": q.kind, "file": q.source_file, "line": q.row_number, "field": q.field, "reason": q.reason}
            for q in s.scalars(select(m.QuarantinedRow).order_by(m.QuarantinedRow.id))
        ]
        held = [
            {"application": x.application_id, "visit": x.sequence, "agency": x.agency_id, "reason": x.hold_reason}
            for x in s.scalars(select(m.Assessment).where(m.Assessment.status == "held").order_by(m.Assessment.id))
        ]
        notices = [
            {
                "notice": x.id,
                "status": x.status,
                "kind": x.kind,
                "to": f"{x.recipient_type}:{x.recipient_id}",
                "reason": (x.last_error or "")[:200],
            }
            for x in s.scalars(
                select(m.Notice).where(m.Notice.status.in_(["failed", "quarantined"])).order_by(m.Notice.id)
            )
        ]
    return {
        "rows quarantined at intake": rows,
        "assessment results held": held,
        "notices failed or quarantined": notices,
    }
