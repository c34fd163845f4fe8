"""`ltc explain`: the trace from a person's decisions and claim lines to the clauses behind every amount."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from common.formatting import mask_id, yuan
from rules.engine import load_pack, reasons
from storage import models as m
from storage.db import session_scope
from tasks import audit


def _cite(c: dict[str, Any]) -> str:
    flag = "" if c["source"] == "document" else f"  [{c['source']}]"
    return f"{c['parameter']} = {c['value']} {c['unit']} (from {c['from']}; {c['reference']}){flag}"


def _dates(r: dict[str, Any]) -> str:
    """A range of dates not paid: `2026-03-10 to 2026-03-14 (5 days)`, or one day: `2026-03-20 (1 day)`."""
    days = f"{r['days']} day{'s' if r['days'] != 1 else ''}"
    return f"{r['from']} ({days})" if r["from"] == r["to"] else f"{r['from']} to {r['to']} ({days})"


def explain(person_id: str, period: str | None = None) -> str:
    """A plain-text trace for auditors and for answering a person's question."""
    lines: list[str] = []
    with session_scope() as s:
        person = s.get(m.Person, person_id)
        if person is None:
            raise LookupError(f"no person {person_id}")
        audit.record(s, "read.person", person_id, {"view": "explain", "period": period})
        pack = load_pack(person.jurisdiction)
        catalogue = reasons(pack)
        lines.append(f"{person.person_id} {person.name} {mask_id(person.id_number)} · {pack.name} · {pack.status}")
        dec = m.EligibilityDecision
        for d in s.scalars(select(dec).where(dec.person_id == person_id).order_by(dec.decided_on, dec.id)):
            verdict = "approved" if d.approved else "refused"
            lines.append("")
            lines.append(
                f"decision on application {d.application_id} ({d.decided_on}): {verdict}, grade {d.grade}, "
                f"from {d.start_date or '-'} to {d.end_date or '-'}" + ("  [DRAFT POLICY]" if d.policy_draft else "")
            )
            for r in d.reasons:
                lines.append(f"  reason {r['code']}: {r['zh']} ({r['clause']})")
            for c in d.rules:
                lines.append(f"  rule {_cite(c)}")
        cl = m.ClaimLine
        stmt = select(cl).where(cl.person_id == person_id).order_by(cl.period, cl.provider_id, cl.care_mode)
        if period:
            stmt = stmt.where(cl.period == period)
        for c in s.scalars(stmt):
            lines.append("")
            lines.append(
                f"claim {c.period} {c.provider_id} {c.care_mode} grade {c.grade}: {c.days_paid}/{c.days_submitted} "
                f"days paid; worth {yuan(c.gross_fen)}, fund pays {yuan(c.payable_fen)}, personal "
                f"{yuan(c.personal_fen)}" + ("  [DRAFT POLICY]" if c.policy_draft else "")
            )
            for code, days in sorted(c.exclusions.items()):
                why = catalogue.get(code, {"zh": code, "clause": "?"})
                lines.append(f"  {days} day(s) not paid, {code}: {why['zh']} ({why['clause']})")
                ranges = [r for r in c.excluded_ranges or [] if r["reason"] == code]
                lines.extend(f"    {_dates(r)}" for r in ranges)
                if not ranges:
                    lines.append("    (dates not kept: the line was billed before claim lines kept them)")
            if c.over_cap_fen:
                lines.append(f"  {yuan(c.over_cap_fen)} above a quota or cap is not paid by the fund")
            for r in c.rules:
                lines.append(f"  rule {_cite(r)}")
    return "\n".join(lines)
