"""Reading frames out of the record. Tasks call these; flows never see a session."""

from __future__ import annotations

from typing import Any

import polars as pl
from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from rules.engine import period_bounds
from rules.inputs import SCHEMAS
from storage import models as m


def frame(session: Session, stmt: Executable, schema: dict[str, Any]) -> pl.DataFrame:
    rows = session.execute(stmt).all()
    return pl.DataFrame([tuple(r) for r in rows], schema=schema, orient="row")


PERSON_SCHEMA = {
    "person_id": pl.Utf8,
    "name": pl.Utf8,
    "id_number": pl.Utf8,
    "insurance_type": pl.Utf8,
    "contribution_base_fen": pl.Int64,
    "work_injury_care_allowance": pl.Boolean,
    "death_date": pl.Date,
    "notify_url": pl.Utf8,
    "language": pl.Utf8,
}


def persons(session: Session, jurisdiction: str) -> pl.DataFrame:
    stmt = select(
        m.Person.person_id,
        m.Person.name,
        m.Person.id_number,
        m.Person.insurance_type,
        m.Person.contribution_base_fen,
        m.Person.work_injury_care_allowance,
        m.Person.death_date,
        m.Person.notify_url,
        m.Person.language,
    ).where(m.Person.jurisdiction == jurisdiction)
    return frame(session, stmt, PERSON_SCHEMA)


def providers(session: Session, jurisdiction: str) -> pl.DataFrame:
    stmt = select(
        m.Provider.provider_id,
        m.Provider.name,
        m.Provider.status,
        m.Provider.contract_start,
        m.Provider.contract_end,
        m.Provider.bank_account,
        m.Provider.notify_url,
        m.Provider.language,
    ).where(m.Provider.jurisdiction == jurisdiction)
    return frame(
        session,
        stmt,
        {
            "provider_id": pl.Utf8,
            "name": pl.Utf8,
            "status": pl.Utf8,
            "contract_start": pl.Date,
            "contract_end": pl.Date,
            "bank_account": pl.Utf8,
            "notify_url": pl.Utf8,
            "language": pl.Utf8,
        },
    )


def care_days(session: Session, jurisdiction: str, period: str) -> pl.DataFrame:
    stmt = (
        select(
            m.CareDay.person_id,
            m.CareDay.provider_id,
            m.CareDay.care_date,
            m.CareDay.care_mode,
            m.CareDay.item_code,
            m.CareDay.amount_fen,
        )
        .join(m.Person, m.Person.person_id == m.CareDay.person_id)
        .where(m.CareDay.period == period, m.Person.jurisdiction == jurisdiction)
    )
    return frame(session, stmt, SCHEMAS["care"])


def entitlements(session: Session, jurisdiction: str) -> pl.DataFrame:
    stmt = select(
        m.EligibilityDecision.person_id,
        m.EligibilityDecision.grade,
        m.EligibilityDecision.start_date,
        m.EligibilityDecision.end_date,
    ).where(m.EligibilityDecision.jurisdiction == jurisdiction, m.EligibilityDecision.approved.is_(True))
    return frame(session, stmt, SCHEMAS["entitlements"])


def hospital_stays(session: Session, jurisdiction: str, period: str) -> pl.DataFrame:
    first, last = period_bounds(period)
    stmt = (
        select(m.HospitalStay.person_id, m.HospitalStay.admitted_on, m.HospitalStay.discharged_on)
        .join(m.Person, m.Person.person_id == m.HospitalStay.person_id)
        .where(
            m.Person.jurisdiction == jurisdiction,
            m.HospitalStay.admitted_on <= last,
            (m.HospitalStay.discharged_on.is_(None)) | (m.HospitalStay.discharged_on >= first),
        )
    )
    return frame(session, stmt, SCHEMAS["stays"])


def assessed_applications(session: Session, jurisdiction: str) -> pl.DataFrame:
    """Assessed applications without a decision, with what eligibility needs to know of the person."""
    received_month = func.substr(func.cast(m.Application.received_on, m.Contribution.period.type), 1, 7)
    full_months = (
        select(func.count())
        .where(
            m.Contribution.person_id == m.Application.person_id,
            m.Contribution.paid_fen >= m.Contribution.due_fen,
            m.Contribution.due_fen > 0,
            m.Contribution.period < received_month,
        )
        .correlate(m.Application)
        .scalar_subquery()
    )
    already = exists().where(
        and_(
            m.EligibilityDecision.person_id == m.Application.person_id,
            m.EligibilityDecision.approved.is_(True),
        )
    )
    stmt = (
        select(
            m.Application.application_id,
            m.Application.person_id,
            m.Application.received_on,
            m.Application.disabled_since,
            m.Assessment.grade,
            m.Assessment.published_on,
            m.Person.insurance_type,
            m.Person.work_injury_care_allowance,
            m.Person.death_date,
            full_months.label("full_contribution_months"),
            already.label("already_beneficiary"),
        )
        .join(m.Person, m.Person.person_id == m.Application.person_id)
        .join(
            m.Assessment,
            and_(m.Assessment.application_id == m.Application.application_id, m.Assessment.status == "done"),
        )
        .where(m.Application.status == "assessed", m.Person.jurisdiction == jurisdiction)
        .order_by(m.Application.application_id)
    )
    return frame(session, stmt, SCHEMAS["apps"])
