"""Reading frames out of the record. Tasks call these; flows never see a session."""

from __future__ import annotations

from typing import Any

import polars as pl
from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import Executable

from rules.engine import period_bounds
from rules.inputs import SCHEMAS
from storage import models as m


def frame(session: Session, stmt: Executable, schema: dict[str, Any]) -> pl.DataFrame:
    rows = session.execute(stmt).all()
    return pl.DataFrame([tuple(r) for r in rows], schema=schema, orient="row")


def _select(model: type[m.Base], name: str) -> Any:
    """SELECT the columns of a formula input frame (rules.inputs.SCHEMAS[name]) from the model that holds them."""
    return select(*(getattr(model, c) for c in SCHEMAS[name]))


def persons(session: Session, jurisdiction: str) -> pl.DataFrame:
    return frame(session, _select(m.Person, "persons").where(m.Person.jurisdiction == jurisdiction), SCHEMAS["persons"])


def providers(session: Session, jurisdiction: str) -> pl.DataFrame:
    stmt = _select(m.Provider, "providers").where(m.Provider.jurisdiction == jurisdiction)
    return frame(session, stmt, SCHEMAS["providers"])


def contributions(session: Session, jurisdiction: str) -> pl.DataFrame:
    stmt = (
        _select(m.Contribution, "contributions")
        .join(m.Person, m.Person.person_id == m.Contribution.person_id)
        .where(m.Person.jurisdiction == jurisdiction)
    )
    return frame(session, stmt, SCHEMAS["contributions"])


def year_to_date(session: Session, jurisdiction: str, period: str) -> pl.DataFrame:
    """What the fund has already been billed for each person and care mode earlier in the period's year."""
    cl = m.ClaimLine
    stmt = (
        select(cl.person_id, cl.care_mode, func.sum(cl.payable_fen))
        .where(cl.jurisdiction == jurisdiction, cl.period >= period[:4] + "-01", cl.period < period)
        .group_by(cl.person_id, cl.care_mode)
    )
    return frame(session, stmt, SCHEMAS["ytd"])


def care_days(session: Session, jurisdiction: str, period: str) -> pl.DataFrame:
    stmt = (
        _select(m.CareDay, "care")
        .join(m.Person, m.Person.person_id == m.CareDay.person_id)
        .where(m.CareDay.period == period, m.Person.jurisdiction == jurisdiction)
    )
    return frame(session, stmt, SCHEMAS["care"])


def entitlements(session: Session, jurisdiction: str) -> pl.DataFrame:
    stmt = _select(m.EligibilityDecision, "entitlements").where(
        m.EligibilityDecision.jurisdiction == jurisdiction, m.EligibilityDecision.approved.is_(True)
    )
    return frame(session, stmt, SCHEMAS["entitlements"])


def hospital_stays(session: Session, jurisdiction: str, period: str) -> pl.DataFrame:
    first, last = period_bounds(period)
    stmt = (
        _select(m.HospitalStay, "stays")
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
    later = aliased(m.Assessment)
    latest_done = (
        select(func.max(later.sequence))
        .where(later.application_id == m.Application.application_id, later.status == "done")
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
            m.Application.care_mode,
            m.Assessment.grade,
            m.Assessment.published_on,
            m.Person.insurance_type,
            m.Person.birth_date,
            m.Person.student,
            m.Person.retired_cadre,
            m.Person.disabled_veteran_grade,
            m.Person.work_injury_care_allowance,
            m.Person.death_date,
            full_months.label("full_contribution_months"),
            already.label("already_beneficiary"),
            m.Assessment.sequence,
        )
        .join(m.Person, m.Person.person_id == m.Application.person_id)
        .join(
            m.Assessment,
            and_(
                m.Assessment.application_id == m.Application.application_id,
                m.Assessment.status == "done",
                m.Assessment.sequence == latest_done,
            ),
        )
        .where(m.Application.status == "assessed", m.Person.jurisdiction == jurisdiction)
        .order_by(m.Application.application_id)
    )
    return frame(session, stmt, {**SCHEMAS["apps"], "assessment_sequence": pl.Int64})
