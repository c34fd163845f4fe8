"""The system of record: typed SQLAlchemy 2 models.

Natural keys are unique constraints, so a rerun of any step finds its earlier work instead of repeating it.
Money is integer fen. Dates are the dates the policy talks about (care, admission, publication), never clock
readings, except for the `created_at` / `sent_at` audit stamps.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common import idvault

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Person(Base):
    """An insured person (参保人)."""

    __tablename__ = "person"
    person_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    # 身份证号 encrypted, with a keyed hash for matching (ltc/idvault.py); `id_number` reads and writes it.
    id_number_enc: Mapped[str] = mapped_column(String(128))
    id_hash: Mapped[str] = mapped_column(String(64), index=True)
    jurisdiction: Mapped[str] = mapped_column(String(32), index=True)
    area: Mapped[str] = mapped_column(String(64))
    insurance_type: Mapped[str] = mapped_column(String(16))
    contribution_base_fen: Mapped[int] = mapped_column(BigInteger)
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    death_date: Mapped[dt.date | None] = mapped_column(Date)
    work_injury_care_allowance: Mapped[bool] = mapped_column(default=False)
    student: Mapped[bool] = mapped_column(default=False, server_default=false())
    medical_premium_fully_subsidised: Mapped[bool] = mapped_column(default=False, server_default=false())
    retired_cadre: Mapped[bool] = mapped_column(default=False, server_default=false())
    disabled_veteran_grade: Mapped[int | None] = mapped_column(Integer)
    village: Mapped[str | None] = mapped_column(String(64))
    notify_url: Mapped[str | None] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(8), default="zh_CN")

    @property
    def id_number(self) -> str:
        """The ID number in clear, for a notice's masked form or a bank file; never logged or stored."""
        return idvault.decrypt(self.id_number_enc)

    @id_number.setter
    def id_number(self, value: str) -> None:
        self.id_number_enc = idvault.encrypt(value)
        self.id_hash = idvault.id_hash(value)


class Contribution(Base):
    """One month's contribution of one person: what was due, what was paid and when."""

    __tablename__ = "contribution"
    __table_args__ = (UniqueConstraint("person_id", "period"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("person.person_id"), index=True)
    period: Mapped[str] = mapped_column(String(7))
    due_fen: Mapped[int] = mapped_column(BigInteger)
    paid_fen: Mapped[int] = mapped_column(BigInteger)
    paid_on: Mapped[dt.date | None] = mapped_column(Date)


class ContributionDue(Base):
    """What a pack's rules say is due for a person and period, one row per payer."""

    __tablename__ = "contribution_due"
    __table_args__ = (UniqueConstraint("person_id", "period", "payer"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("person.person_id"), index=True)
    jurisdiction: Mapped[str] = mapped_column(String(32))
    period: Mapped[str] = mapped_column(String(7))
    payer: Mapped[str] = mapped_column(String(24))
    amount_fen: Mapped[int] = mapped_column(BigInteger)


class Provider(Base):
    """A designated care provider (定点护理服务机构) under a service agreement."""

    __tablename__ = "provider"
    provider_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    jurisdiction: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    contract_start: Mapped[dt.date] = mapped_column(Date)
    contract_end: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    bank_account: Mapped[str] = mapped_column(String(64))
    notify_url: Mapped[str | None] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(8), default="zh_CN")


class Agency(Base):
    """A third-party disability assessment agency (评估机构)."""

    __tablename__ = "agency"
    agency_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    jurisdiction: Mapped[str] = mapped_column(String(32))
    area: Mapped[str] = mapped_column(String(64))
    capacity_per_day: Mapped[int] = mapped_column(Integer)
    notify_url: Mapped[str | None] = mapped_column(String(512))
    contract_start: Mapped[dt.date | None] = mapped_column(Date)
    contract_end: Mapped[dt.date | None] = mapped_column(Date)
    linked_providers: Mapped[str] = mapped_column(String(512), default="", server_default="")
    language: Mapped[str] = mapped_column(String(8), default="zh_CN", server_default="zh_CN")
    # Working hours (HH:MM) and the length of a visit; empty: the defaults of tasks/calendar.py.
    day_starts_at: Mapped[str | None] = mapped_column(String(5))
    day_ends_at: Mapped[str | None] = mapped_column(String(5))
    visit_minutes: Mapped[int | None] = mapped_column(Integer)


class Assessor(Base):
    """An assessor (评估人员) of an agency. `linked_providers`: care providers the assessor has ties to."""

    __tablename__ = "assessor"
    assessor_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agency.agency_id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=True)
    linked_providers: Mapped[str] = mapped_column(String(512), default="", server_default="")


class Application(Base):
    """An application for benefits (待遇申请)."""

    __tablename__ = "application"
    application_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("person.person_id"), index=True)
    received_on: Mapped[dt.date] = mapped_column(Date)
    disabled_since: Mapped[dt.date] = mapped_column(Date)
    care_mode: Mapped[str] = mapped_column(String(16))
    provider_id: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="received")
    # Why the next visit is needed (initial, reschedule, objection, reassessment, periodic) and since when.
    visit_reason: Mapped[str] = mapped_column(String(16), default="initial", server_default="initial")
    visit_requested_on: Mapped[dt.date | None] = mapped_column(Date)
    problem: Mapped[str | None] = mapped_column(Text)


class Assessment(Base):
    """A scheduled assessment visit and, once it has come back, its result."""

    __tablename__ = "assessment"
    __table_args__ = (UniqueConstraint("application_id", "sequence"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("application.application_id"))
    sequence: Mapped[int] = mapped_column(Integer, default=1)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agency.agency_id"), index=True)
    scheduled_on: Mapped[dt.date] = mapped_column(Date, index=True)
    visited_on: Mapped[dt.date | None] = mapped_column(Date)
    grade: Mapped[int | None] = mapped_column(Integer)
    published_on: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    requested_by: Mapped[str] = mapped_column(String(16), default="applicant", server_default="applicant")
    kind: Mapped[str] = mapped_column(String(16), default="initial", server_default="initial")
    slot_no: Mapped[int | None] = mapped_column(Integer)
    starts_at: Mapped[str | None] = mapped_column(String(5))
    assessor_ids: Mapped[str] = mapped_column(String(256), default="", server_default="")
    adl_score: Mapped[int | None] = mapped_column(Integer)
    cognition_score: Mapped[int | None] = mapped_column(Integer)
    perception_score: Mapped[int | None] = mapped_column(Integer)
    hold_reason: Mapped[str | None] = mapped_column(Text)
    fee_fen: Mapped[int | None] = mapped_column(BigInteger)
    fee_fund_fen: Mapped[int | None] = mapped_column(BigInteger)
    fee_applicant_fen: Mapped[int | None] = mapped_column(BigInteger)
    # The visit's iCalendar SEQUENCE in its agency's calendar: raised each time a booked visit changes there (it
    # is cancelled, or the applicant does not show), when it changed (an audit stamp).
    calendar_sequence: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    changed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class SlotBooking(Base):
    """A visit slot of an agency on a day: held by one visit at a time."""

    __tablename__ = "slot_booking"
    __table_args__ = (UniqueConstraint("agency_id", "day", "slot_no"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agency.agency_id"))
    day: Mapped[dt.date] = mapped_column(Date)
    slot_no: Mapped[int] = mapped_column(Integer)
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessment.id"), unique=True)


class AssessorBooking(Base):
    """An assessor at a visit at one time of a day: never two visits at once."""

    __tablename__ = "assessor_booking"
    __table_args__ = (UniqueConstraint("assessor_id", "day", "time_index"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    assessor_id: Mapped[str] = mapped_column(ForeignKey("assessor.assessor_id"))
    day: Mapped[dt.date] = mapped_column(Date)
    time_index: Mapped[int] = mapped_column(Integer)
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessment.id"), index=True)


class AssessmentEvent(Base):
    """A change reported for a visit or a result: cancel, no_show, objection (异议) or reassessment (复评)."""

    __tablename__ = "assessment_event"
    __table_args__ = (UniqueConstraint("application_id", "event", "reported_on"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("application.application_id"), index=True)
    event: Mapped[str] = mapped_column(String(16))
    reported_on: Mapped[dt.date] = mapped_column(Date)
    reported_by: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(Text)


class EligibilityDecision(Base):
    """The decision on an application: approved with a start date and grade, or refused with reasons."""

    __tablename__ = "eligibility_decision"
    __table_args__ = (UniqueConstraint("application_id", "assessment_sequence"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("application.application_id"))
    assessment_sequence: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    person_id: Mapped[str] = mapped_column(ForeignKey("person.person_id"), index=True)
    jurisdiction: Mapped[str] = mapped_column(String(32))
    decided_on: Mapped[dt.date] = mapped_column(Date)
    approved: Mapped[bool] = mapped_column()
    grade: Mapped[int | None] = mapped_column(Integer)
    start_date: Mapped[dt.date | None] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    rules: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    policy_draft: Mapped[bool] = mapped_column(default=False, server_default=false())
    # What the decision counted, where the pack says (Jilin 二(六): the waiting period's length in days and the
    # day it counts from, the years lapsed and paid back it rests on, the continuous years insured).
    facts: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")


class CareDay(Base):
    """A provider's record of care given on one day (one line per service item for home care)."""

    __tablename__ = "care_day"
    # The period is in the key (care_date lies in it): on PostgreSQL the table is partitioned by period, and a
    # partitioned table's unique keys hold its partition key (migration 0015, storage/partitions.py).
    # No index of its own on person_id: the key begins with it and serves a person's lookups and ranges.
    __table_args__ = (UniqueConstraint("person_id", "provider_id", "care_date", "item_code", "period"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(32))
    provider_id: Mapped[str] = mapped_column(String(32))
    period: Mapped[str] = mapped_column(String(7), index=True)
    care_date: Mapped[dt.date] = mapped_column(Date)
    care_mode: Mapped[str] = mapped_column(String(16))
    item_code: Mapped[str] = mapped_column(String(16), default="")
    amount_fen: Mapped[int] = mapped_column(BigInteger, default=0)


class HospitalStay(Base):
    """A hospital admission reported by the medical insurance system."""

    __tablename__ = "hospital_stay"
    __table_args__ = (UniqueConstraint("person_id", "admitted_on"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(32), index=True)
    admitted_on: Mapped[dt.date] = mapped_column(Date)
    discharged_on: Mapped[dt.date | None] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(24), default="inpatient", server_default="inpatient")


class ClaimLine(Base):
    """A month's claim of one provider for one beneficiary and care mode, with why days were not paid."""

    __tablename__ = "claim_line"
    # No index of its own on person_id: the key begins with it and serves a person's lookups and ranges.
    __table_args__ = (UniqueConstraint("person_id", "provider_id", "period", "care_mode"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(32))
    provider_id: Mapped[str] = mapped_column(String(32), index=True)
    period: Mapped[str] = mapped_column(String(7), index=True)
    jurisdiction: Mapped[str] = mapped_column(String(32))
    care_mode: Mapped[str] = mapped_column(String(16))
    grade: Mapped[int | None] = mapped_column(Integer)
    days_submitted: Mapped[int] = mapped_column(Integer)
    days_paid: Mapped[int] = mapped_column(Integer)
    days_excluded: Mapped[int] = mapped_column(Integer)
    submitted_fen: Mapped[int] = mapped_column(BigInteger)
    gross_fen: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    payable_fen: Mapped[int] = mapped_column(BigInteger)
    personal_fen: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    over_cap_fen: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    cap_reason: Mapped[str | None] = mapped_column(String(48))
    policy_draft: Mapped[bool] = mapped_column(default=False, server_default=false())
    exclusions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The dates not paid: [{"reason", "from", "to", "days"}], each a run of consecutive care dates with one reason
    # (from and to inclusive, YYYY-MM-DD), in date order (rules.inputs.OUTPUT_CLAIMS).
    excluded_ranges: Mapped[list[Any]] = mapped_column(default=list, server_default=text("'[]'"))
    rules: Mapped[list[Any]] = mapped_column(default=list)


class PaymentBatch(Base):
    """What the fund pays one payee for one period. It can exist once."""

    __tablename__ = "payment_batch"
    __table_args__ = (UniqueConstraint("payee_id", "period"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_ref: Mapped[str] = mapped_column(String(64), unique=True)
    payee_id: Mapped[str] = mapped_column(String(32))
    period: Mapped[str] = mapped_column(String(7))
    jurisdiction: Mapped[str] = mapped_column(String(32))
    bank_account: Mapped[str] = mapped_column(String(64))
    total_fen: Mapped[int] = mapped_column(BigInteger)
    line_count: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="created")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The digest of what the batch pays (payee, account, total and every line): the batch_ref is the payout's
    # idempotency key, and the same key with other content is refused (tasks.payment.batch_content_sha256).
    content_sha256: Mapped[str] = mapped_column(String(64), default="", server_default="")


class ClaimAdjustment(Base):
    """A change to a claim line after it was paid (a late hospital record, a death reported late, a corrected care
    day): the difference is paid (补发, positive) or recovered (追回, negative) in a later batch; the paid line and
    its batch are never edited. `revision` counts a line's adjustments, so a rerun that finds the same amount adds
    nothing and two runs cannot both add the same revision."""

    __tablename__ = "claim_adjustment"
    __table_args__ = (UniqueConstraint("claim_line_id", "revision"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    claim_line_id: Mapped[int] = mapped_column(ForeignKey("claim_line.id"), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    person_id: Mapped[str] = mapped_column(String(32), index=True)
    provider_id: Mapped[str] = mapped_column(String(32), index=True)
    period: Mapped[str] = mapped_column(String(7))
    jurisdiction: Mapped[str] = mapped_column(String(32))
    care_mode: Mapped[str] = mapped_column(String(16))
    before_fen: Mapped[int] = mapped_column(BigInteger)
    after_fen: Mapped[int] = mapped_column(BigInteger)
    delta_fen: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PaymentLine(Base):
    """A claim line, or an adjustment of one, paid in a batch. Each is paid once. `period` is the month of the
    care paid for, which is earlier than the batch's own for a late line or an adjustment."""

    __tablename__ = "payment_line"
    __table_args__ = (UniqueConstraint("claim_line_id"), UniqueConstraint("adjustment_id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("payment_batch.id"), index=True)
    claim_line_id: Mapped[int | None] = mapped_column(ForeignKey("claim_line.id"))
    adjustment_id: Mapped[int | None] = mapped_column(ForeignKey("claim_adjustment.id"))
    period: Mapped[str | None] = mapped_column(String(7))
    person_id: Mapped[str] = mapped_column(String(32))
    amount_fen: Mapped[int] = mapped_column(BigInteger)


class BankReturn(Base):
    """One transfer in the bank's return file: the batch it pays, the amount and whether it was paid."""

    __tablename__ = "bank_return"
    __table_args__ = (UniqueConstraint("batch_ref"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_ref: Mapped[str] = mapped_column(String(64))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(8))
    value_date: Mapped[dt.date | None] = mapped_column(Date)
    bank_reference: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)


class ReconciliationBreak(Base):
    """A difference between the payment batches and the bank's return: a transfer missing, extra, failed or of
    another amount. A break keeps its period open until it is resolved."""

    __tablename__ = "reconciliation_break"
    __table_args__ = (UniqueConstraint("jurisdiction", "period", "batch_ref", "kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    jurisdiction: Mapped[str] = mapped_column(String(32))
    period: Mapped[str] = mapped_column(String(7))
    batch_ref: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text)
    resolved: Mapped[bool] = mapped_column(default=False, server_default=false())
    found_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PeriodClose(Base):
    """A fund's period, closed once its batches reconcile with the bank's return. It can close once."""

    __tablename__ = "period_close"
    __table_args__ = (UniqueConstraint("jurisdiction", "period"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    jurisdiction: Mapped[str] = mapped_column(String(32))
    period: Mapped[str] = mapped_column(String(7))
    batches: Mapped[int] = mapped_column(Integer)
    paid_fen: Mapped[int] = mapped_column(BigInteger)
    closed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class LedgerEntry(Base):
    """One side of a double-entry posting, in integer fen, per fund (jurisdiction) and period. Entries are
    appended, never edited (the database refuses UPDATE and DELETE); a correction is a reversing posting. The
    entries of one `txn_ref` balance; a `txn_ref` is posted once, and posting it again with other content is an
    error (`content_sha256`)."""

    __tablename__ = "ledger_entry"
    __table_args__ = (UniqueConstraint("txn_ref", "line_no"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    txn_ref: Mapped[str] = mapped_column(String(128), index=True)
    line_no: Mapped[int] = mapped_column(Integer)
    fund: Mapped[str] = mapped_column(String(32), index=True)
    period: Mapped[str] = mapped_column(String(7), index=True)
    account: Mapped[str] = mapped_column(String(64))
    debit_fen: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    credit_fen: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    memo: Mapped[str] = mapped_column(String(256), default="", server_default="")
    content_sha256: Mapped[str] = mapped_column(String(64))
    reverses: Mapped[str | None] = mapped_column(String(128))
    posted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Notice(Base):
    """The outbox: a notice written with the decision it reports and delivered after commit."""

    __tablename__ = "notice"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(160), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    recipient_type: Mapped[str] = mapped_column(String(16))
    recipient_id: Mapped[str] = mapped_column(String(32), index=True)
    url: Mapped[str] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(String(256))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # A notice whose template cannot render its context is quarantined (status "quarantined", the reason in
    # last_error) with the context kept, ID numbers masked, so it can be rendered again once the template is fixed.
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class QuarantinedRow(Base):
    """An inbound row that failed validation, kept with its reason until it is corrected."""

    __tablename__ = "quarantined_row"
    __table_args__ = (UniqueConstraint("kind", "file_sha256", "row_number", "field"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    source_file: Mapped[str] = mapped_column(String(512))
    file_sha256: Mapped[str] = mapped_column(String(64))
    row_number: Mapped[int] = mapped_column(Integer)
    row_key: Mapped[str | None] = mapped_column(String(128))
    field: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class FraudFlag(Base):
    """A care-day record that one of the named fraud checks (`rules/fraud.yaml`) found, for the fund's
    inspectors. Billing writes a part's flags in the transaction of its claim lines."""

    __tablename__ = "fraud_flag"
    __table_args__ = (UniqueConstraint("rule", "person_id", "provider_id", "care_date"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(32))
    person_id: Mapped[str] = mapped_column(String(32), index=True)
    provider_id: Mapped[str] = mapped_column(String(32), index=True)
    care_date: Mapped[dt.date] = mapped_column(Date)
    period: Mapped[str] = mapped_column(String(7), index=True)
    jurisdiction: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(256), default="", server_default="")
    clause: Mapped[str] = mapped_column(String(128))


class AuditEntry(Base):
    """The audit log: every decision and every read of a person's record, appended, never edited (the database
    refuses UPDATE and DELETE). Each entry carries the hash of the one before it and its own hash over both, so
    an edited or removed entry breaks the chain (`ltc audit verify`). Entries name internal ids, never an ID
    number."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(48), index=True)
    subject: Mapped[str] = mapped_column(String(160), index=True)
    detail: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)


class WorkClaim(Base):
    """A unit of work that one run at a time may do (a billing part). A run takes the row's lock in the
    transaction that does the work (`SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL; on SQLite every transaction
    holds the write lock from its start), so a second run at the same time finds it taken; a run that dies loses
    the lock with its connection, and the work is free again. The row keeps who did the work last and when."""

    __tablename__ = "work_claim"
    __table_args__ = (UniqueConstraint("kind", "work_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    work_key: Mapped[str] = mapped_column(String(160))
    holder: Mapped[str | None] = mapped_column(String(160))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Approver(Base):
    """The roster of persons who may release a payout (`ltc approvers add|list|remove`). A person is removed by
    marking them inactive, never deleted: the audit log and their codes keep naming them."""

    __tablename__ = "approver"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)  # as typed in the approval form, lower case
    display_name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(64))
    notify_url: Mapped[str | None] = mapped_column(String(512))  # apprise URL, or env:NAME / block:NAME
    language: Mapped[str] = mapped_column(String(8), default="zh_CN")
    active: Mapped[bool] = mapped_column(default=True)
    added_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    removed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ApprovalCode(Base):
    """A one-time code that lets one approver decide one payout proposal of one run, until it expires with the
    run's approval timeout. Only its keyed hash is kept; the code itself reached the approver and nowhere else."""

    __tablename__ = "approval_code"
    __table_args__ = (UniqueConstraint("flow_run_id", "proposal_sha256", "approver"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    jurisdiction: Mapped[str] = mapped_column(String(32))
    period: Mapped[str] = mapped_column(String(7))
    flow_run_id: Mapped[str] = mapped_column(String(64))
    proposal_sha256: Mapped[str] = mapped_column(String(64))
    approver: Mapped[str] = mapped_column(ForeignKey("approver.name"))
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(16))  # approve | reject | burned
