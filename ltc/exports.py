"""Tables of the record as rows for CSV export. ID numbers are masked wherever a person can read them."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from common.formatting import mask_id
from rules.inputs import CLAIM_FIGURES
from storage import models as m
from storage.db import session_scope
from tasks import audit

EXPORTS = ["claims", "payments", "decisions", "notices", "quarantine", "held", "flagged", "fraud"]
# Exports that hold persons' records: each is written to the audit log as a read.
PERSONAL = {"claims", "decisions", "notices", "held", "flagged", "fraud"}


def export_rows(kind: str, period: str | None = None) -> tuple[list[str], list[list[Any]]]:
    if kind not in EXPORTS:
        raise ValueError(f"unknown export {kind!r}; one of {', '.join(EXPORTS)}")
    with session_scope() as s:
        if kind in PERSONAL:
            audit.record(s, "read.export", kind, {"period": period})
        if kind == "claims":
            cl = m.ClaimLine
            stmt = select(cl).order_by(cl.period, cl.provider_id, cl.person_id, cl.care_mode)
            if period:
                stmt = stmt.where(cl.period == period)
            header = [
                "period",
                "jurisdiction",
                "provider_id",
                "person_id",
                "care_mode",
                *CLAIM_FIGURES,
                "policy_draft",
                "exclusions",
                "excluded_ranges",
                "rules",
            ]
            nested = ("exclusions", "excluded_ranges", "rules")
            return header, [
                [getattr(c, h) if h not in nested else json.dumps(getattr(c, h), ensure_ascii=False) for h in header]
                for c in s.scalars(stmt)
            ]
        if kind == "payments":
            pb = m.PaymentBatch
            stmt2 = select(pb).order_by(pb.period, pb.batch_ref)
            if period:
                stmt2 = stmt2.where(pb.period == period)
            header = [
                "batch_ref",
                "payee_id",
                "period",
                "jurisdiction",
                "bank_account",
                "total_fen",
                "line_count",
                "status",
            ]
            return header, [
                [
                    b.batch_ref,
                    b.payee_id,
                    b.period,
                    b.jurisdiction,
                    mask_id(b.bank_account),
                    b.total_fen,
                    b.line_count,
                    b.status,
                ]
                for b in s.scalars(stmt2)
            ]
        if kind == "decisions":
            d = m.EligibilityDecision
            header = [
                "application_id",
                "person_id",
                "jurisdiction",
                "decided_on",
                "approved",
                "grade",
                "start_date",
                "end_date",
                "reasons",
            ]
            return header, [
                [
                    x.application_id,
                    x.person_id,
                    x.jurisdiction,
                    x.decided_on,
                    x.approved,
                    x.grade,
                    x.start_date,
                    x.end_date,
                    json.dumps(x.reasons, ensure_ascii=False),
                ]
                for x in s.scalars(select(d).order_by(d.application_id))
            ]
        if kind == "notices":
            n = m.Notice
            header = [
                "id",
                "kind",
                "recipient_type",
                "recipient_id",
                "status",
                "attempts",
                "subject",
                "dedupe_key",
            ]
            return header, [
                [
                    x.id,
                    x.kind,
                    x.recipient_type,
                    x.recipient_id,
                    x.status,
                    x.attempts,
                    x.subject,
                    x.dedupe_key,
                ]
                for x in s.scalars(select(n).order_by(n.id))
            ]
        if kind == "held":
            a = m.Assessment
            header = ["application_id", "sequence", "agency_id", "scheduled_on", "visited_on", "grade", "hold_reason"]
            return header, [
                [x.application_id, x.sequence, x.agency_id, x.scheduled_on, x.visited_on, x.grade, x.hold_reason]
                for x in s.scalars(select(a).where(a.status == "held").order_by(a.application_id))
            ]
        if kind == "flagged":
            ap = m.Application
            header = ["application_id", "person_id", "received_on", "visit_reason", "problem"]
            return header, [
                [x.application_id, x.person_id, x.received_on, x.visit_reason, x.problem]
                for x in s.scalars(select(ap).where(ap.problem.is_not(None)).order_by(ap.application_id))
            ]
        if kind == "fraud":
            f = m.FraudFlag
            stmt3 = select(f).order_by(f.period, f.rule, f.person_id, f.provider_id, f.care_date)
            if period:
                stmt3 = stmt3.where(f.period == period)
            header = ["period", "jurisdiction", "rule", "person_id", "provider_id", "care_date", "detail", "clause"]
            return header, [
                [x.period, x.jurisdiction, x.rule, x.person_id, x.provider_id, x.care_date, x.detail, x.clause]
                for x in s.scalars(stmt3)
            ]
        if kind == "quarantine":
            q = m.QuarantinedRow
            header = ["kind", "source_file", "row_number", "row_key", "field", "reason"]
            return header, [
                [x.kind, x.source_file, x.row_number, x.row_key, x.field, x.reason]
                for x in s.scalars(select(q).order_by(q.kind, q.source_file, q.row_number))
            ]
    raise ValueError(f"unknown export {kind!r}; one of {', '.join(EXPORTS)}")
