"""Assessment fees: who pays each visit's fee (the fund or the applicant), by the pack's rule on the visit day.

The fund's share is posted to the ledger in the same transaction (assessment fee expense, payable to the agency),
one posting per visit keyed by the visit, so a rerun posts nothing twice."""

from __future__ import annotations

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import select, update

from rules.engine import load_pack
from rules.formulas import resolve
from rules.inputs import SCHEMAS
from storage import models as m
from storage.db import session_scope
from tasks import ledger
from tasks.records import frame
from tasks.retrying import RETRY_TRANSIENT


@task(cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def charge_assessment_fees(jurisdiction: str) -> int:
    """Split the fee of every assessment with a result and a fee not yet charged; returns how many."""
    pack = load_pack(jurisdiction)
    a = m.Assessment
    with session_scope() as s:
        stmt = (
            select(
                a.application_id,
                m.Application.person_id,
                a.sequence,
                a.grade,
                a.fee_fen,
                a.requested_by,
                a.agency_id,
                a.visited_on,
            )
            .join(m.Application, m.Application.application_id == a.application_id)
            .join(m.Person, m.Person.person_id == m.Application.person_id)
            .where(m.Person.jurisdiction == jurisdiction, a.status == "done", a.fee_fen.is_not(None))
            .where(a.fee_fund_fen.is_(None))
        )
        visits = frame(s, stmt, {**SCHEMAS["assessments"], "agency_id": pl.String, "visited_on": pl.Date})
        n = 0
        for (day,), group in visits.group_by("visited_on", maintain_order=True):
            split = resolve(pack, "assessment_fees", day)(group.drop("visited_on", "agency_id"), pack, day)
            keys = zip(group["application_id"], group["sequence"], strict=True)
            agency = dict(zip(keys, group["agency_id"], strict=True))
            for r in split.iter_rows(named=True):
                s.execute(
                    update(a)
                    .where(a.application_id == r["application_id"], a.sequence == r["sequence"])
                    .values(fee_fund_fen=r["fund_fen"], fee_applicant_fen=r["applicant_fen"])
                )
                ledger.post(
                    s,
                    f"assessment_fee:{r['application_id']}:{r['sequence']}",
                    jurisdiction,
                    f"{day:%Y-%m}",
                    [
                        ledger.debit("assessment_fee_expense", r["fund_fen"]),
                        ledger.credit(f"payable:{agency[(r['application_id'], r['sequence'])]}", r["fund_fen"]),
                    ],
                    memo="fund's share of an assessment fee",
                )
                n += 1
    return n
