"""Eligibility: assessed applications become decisions, each with its reasons and clauses, and a notice."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandera.polars as pa
import polars as pl
from pandera.typing.polars import DataFrame
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import update

from rules.engine import load_pack, reasons
from rules.formulas import resolve
from storage import models as m
from storage.db import session_scope, upsert
from tasks import records
from tasks.billing import rate_lines
from tasks.notices import notify
from tasks.schemas import Decisions


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def load_assessed(jurisdiction: str) -> dict[str, pl.DataFrame]:
    with session_scope() as s:
        return {
            "apps": records.assessed_applications(s, jurisdiction),
            "contributions": records.contributions(s, jurisdiction),
        }


@task(cache_policy=NO_CACHE)
@pa.check_types
def decide(inputs: dict[str, pl.DataFrame], jurisdiction: str, as_of: dt.date) -> DataFrame[Decisions]:
    """The pack's eligibility formula in force on the as-of date; its parameters are resolved on each
    application's own date."""
    pack = load_pack(jurisdiction)
    if inputs["apps"].is_empty():
        return DataFrame[Decisions](
            pl.DataFrame(
                schema={
                    "application_id": pl.Utf8,
                    "person_id": pl.Utf8,
                    "approved": pl.Boolean,
                    "grade": pl.Int64,
                    "start_date": pl.Date,
                    "end_date": pl.Date,
                    "reason_codes": pl.List(pl.Utf8),
                }
            )
        )
    out: pl.DataFrame = resolve(pack, "eligibility", as_of)(inputs, pack)
    return DataFrame[Decisions](out)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def record_decisions(decisions: pl.DataFrame, jurisdiction: str, as_of: dt.date) -> int:
    """Write each decision and its notice in one transaction; a decided application is not decided again."""
    pack = load_pack(jurisdiction)
    catalogue = reasons(pack)
    with session_scope() as s:
        for d in decisions.iter_rows(named=True):
            app = s.get(m.Application, d["application_id"])
            if app is None or app.status != "assessed":
                continue
            person = s.get(m.Person, d["person_id"])
            assert person is not None
            why = [{"code": c, **catalogue[c]} for c in d["reason_codes"]]
            upsert(
                s,
                m.EligibilityDecision,
                [
                    {
                        "application_id": d["application_id"],
                        "person_id": d["person_id"],
                        "jurisdiction": jurisdiction,
                        "decided_on": as_of,
                        "approved": d["approved"],
                        "grade": d["grade"],
                        "start_date": d["start_date"],
                        "end_date": d["end_date"],
                        "reasons": why,
                        "policy_draft": pack.draft,
                    }
                ],
                ["application_id"],
                update=False,
            )
            s.execute(
                update(m.Application)
                .where(m.Application.application_id == d["application_id"])
                .values(status="decided")
            )
            context: dict[str, Any] = {
                "person_name": person.name,
                "id_number": person.id_number,
                "application_id": d["application_id"],
                "approved": d["approved"],
                "grade": d["grade"],
                "start_date": d["start_date"],
                "rates": rate_lines(pack, d["grade"], d["start_date"]) if d["approved"] else [],
                "reasons": [{"code": w["code"], "clause": w["clause"], "text": w["zh"]} for w in why],
                "document": pack.document,
                "assumptions": pack.assumptions(),
                "draft": pack.draft,
            }
            notify(
                s,
                person,
                kind="eligibility_decision",
                dedupe_key=f"eligibility_decision:{d['application_id']}",
                context=context,
            )
    return decisions.height
