"""The contracts between steps: a pandera model for every frame that crosses one.

Inbound models describe a file after its text has been parsed (money in fen, dates as dates); `INBOUND` says,
for each kind of file, which CSV column feeds which field and how its text is read. `docs/formats.md` is
generated from these, so the documentation and the checks cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandera.polars as pa
import polars as pl

from common.idvault import check_digit_ok
from rules.engine import pack_ids
from rules.inputs import CARE_MODES, INSURANCE_TYPES, PAYERS, PROVIDER_KINDS, STAY_KINDS
from tasks.calendar import CLOCK, DEFAULT_DAY_ENDS_AT, DEFAULT_DAY_STARTS_AT, DEFAULT_VISIT_MINUTES

PROVIDER_STATUSES = ["active", "suspended", "terminated"]
ID_NUMBER = r"^\d{17}[\dX]$"
CHECK_DIGIT_ERROR = "check digit of GB 11643-1999 is wrong"
PERIOD = r"^\d{4}-(0[1-9]|1[0-2])$"
PERIOD_OR_YEAR = r"^\d{4}(-(0[1-9]|1[0-2]))?$"


class Inbound(pa.DataFrameModel):
    line: int = pa.Field(ge=2, description="line of the file (the header is line 1)")

    class Config:
        strict = False
        coerce = False


class Persons(Inbound):
    person_id: str = pa.Field(str_length={"min_value": 1, "max_value": 32}, description="insured person id")
    name: str = pa.Field(str_length={"min_value": 1, "max_value": 64}, description="full name")
    id_number: str = pa.Field(str_matches=ID_NUMBER, description="身份证号, 18 characters")
    jurisdiction: str = pa.Field(isin=pack_ids(), description="policy pack of the pooling area")
    area: str = pa.Field(str_length={"min_value": 1}, description="district or zone")
    insurance_type: str = pa.Field(isin=INSURANCE_TYPES, description="medical insurance type")
    contribution_base_fen: int = pa.Field(ge=0, description="contribution base, yuan per month")
    birth_date: dt.date = pa.Field(nullable=True, description="YYYY-MM-DD")
    death_date: dt.date = pa.Field(nullable=True, description="YYYY-MM-DD, empty if alive")
    work_injury_care_allowance: bool = pa.Field(description="receives a work-injury care allowance")
    student: bool = pa.Field(description="a student (Beijing: not covered)")
    medical_premium_fully_subsidised: bool = pa.Field(description="resident whose medical premium is fully subsidised")
    retired_cadre: bool = pa.Field(description="离休干部")
    disabled_veteran_grade: int = pa.Field(nullable=True, ge=1, le=10, description="残疾军人 grade 1-10, if any")
    village: str = pa.Field(nullable=True, description="村/社区 through which a resident pays")
    notify_url: str = pa.Field(nullable=True, description="apprise URL for notices")
    language: str = pa.Field(isin=["zh_CN", "en"], description="notice language")

    @pa.check("id_number", name="id_number_check_digit", error=CHECK_DIGIT_ERROR)
    def id_number_check_digit(cls, data: Any) -> pl.LazyFrame:
        return data.lazyframe.select(check_digit_ok(pl.col(data.key)))


class Contributions(Inbound):
    person_id: str = pa.Field(str_length={"min_value": 1})
    period: str = pa.Field(str_matches=PERIOD_OR_YEAR, description="YYYY-MM, or YYYY for a yearly contribution")
    due_fen: int = pa.Field(ge=0, description="amount due, yuan")
    paid_fen: int = pa.Field(ge=0, description="amount paid, yuan")
    paid_on: dt.date = pa.Field(nullable=True, description="YYYY-MM-DD")


class Providers(Inbound):
    provider_id: str = pa.Field(str_length={"min_value": 1, "max_value": 32})
    name: str = pa.Field(str_length={"min_value": 1})
    jurisdiction: str = pa.Field(isin=pack_ids())
    kind: str = pa.Field(isin=PROVIDER_KINDS)
    contract_start: dt.date = pa.Field(description="first day of the service agreement")
    contract_end: dt.date = pa.Field(nullable=True, description="last day of the agreement, empty if open")
    status: str = pa.Field(isin=PROVIDER_STATUSES)
    bank_account: str = pa.Field(str_length={"min_value": 6, "max_value": 64})
    notify_url: str = pa.Field(nullable=True)
    language: str = pa.Field(isin=["zh_CN", "en"])

    @pa.dataframe_check(error="contract_end is before contract_start")
    def contract_window(cls, data: Any) -> pl.LazyFrame:
        f = data.lazyframe
        return f.select(pl.col("contract_end").is_null() | (pl.col("contract_end") >= pl.col("contract_start")))


class Agencies(Inbound):
    agency_id: str = pa.Field(str_length={"min_value": 1, "max_value": 32})
    name: str = pa.Field(str_length={"min_value": 1})
    jurisdiction: str = pa.Field(isin=pack_ids())
    area: str = pa.Field(str_length={"min_value": 1})
    capacity_per_day: int = pa.Field(ge=1, le=1000, description="assessment visits per working day")
    notify_url: str = pa.Field(nullable=True)
    contract_start: dt.date = pa.Field(nullable=True, description="first day of the agency's contract")
    contract_end: dt.date = pa.Field(nullable=True, description="last day of the contract, empty if open")
    linked_providers: str = pa.Field(description="care providers the agency has ties to, `;`-separated")
    language: str = pa.Field(isin=["zh_CN", "en"])
    day_starts_at: str = pa.Field(
        nullable=True,
        str_matches=CLOCK,
        description=f"start of the first visit of a working day, HH:MM; empty: {DEFAULT_DAY_STARTS_AT} (an assumption)",
    )
    day_ends_at: str = pa.Field(
        nullable=True,
        str_matches=CLOCK,
        description=f"the last visit of a day ends by then, HH:MM; empty: {DEFAULT_DAY_ENDS_AT} (an assumption)",
    )
    visit_minutes: int = pa.Field(
        nullable=True,
        ge=15,
        le=600,
        description=f"one visit, travel included, minutes; empty: {DEFAULT_VISIT_MINUTES} (an assumption)",
    )

    @pa.dataframe_check(error="day_ends_at leaves no time for one visit of visit_minutes after day_starts_at")
    def hours_hold_a_visit(cls, data: Any) -> pl.LazyFrame:
        def minutes(col: str, default: str) -> pl.Expr:
            clock = pl.col(col).fill_null(default)
            hh, mm = (
                clock.str.slice(0, 2).cast(pl.Int64, strict=False),
                clock.str.slice(3, 2).cast(pl.Int64, strict=False),
            )
            return pl.when(clock.str.contains(CLOCK)).then(hh * 60 + mm)  # a malformed time is reported on its own

        length = pl.col("visit_minutes").fill_null(DEFAULT_VISIT_MINUTES)
        fits = minutes("day_ends_at", DEFAULT_DAY_ENDS_AT) - minutes("day_starts_at", DEFAULT_DAY_STARTS_AT) >= length
        return data.lazyframe.select(fits.fill_null(True))


class Assessors(Inbound):
    assessor_id: str = pa.Field(str_length={"min_value": 1, "max_value": 32})
    agency_id: str = pa.Field(str_length={"min_value": 1})
    name: str = pa.Field(str_length={"min_value": 1})
    active: bool = pa.Field(description="can be assigned visits")
    linked_providers: str = pa.Field(description="care providers the assessor has ties to, `;`-separated")


class AssessmentEvents(Inbound):
    application_id: str = pa.Field(str_length={"min_value": 1})
    event: str = pa.Field(
        isin=["cancel", "no_show", "objection", "reassessment"],
        description="cancel, no_show, objection (异议, in the publicity period) or reassessment (复评)",
    )
    reported_on: dt.date = pa.Field()
    reported_by: str = pa.Field(isin=["applicant", "agency", "bureau"])
    note: str = pa.Field(nullable=True)


class Applications(Inbound):
    application_id: str = pa.Field(str_length={"min_value": 1, "max_value": 32})
    person_id: str = pa.Field(str_length={"min_value": 1})
    received_on: dt.date = pa.Field()
    disabled_since: dt.date = pa.Field(description="date the disability began")
    care_mode: str = pa.Field(isin=CARE_MODES, description="care mode chosen")
    provider_id: str = pa.Field(nullable=True, description="care provider chosen, if any")

    @pa.dataframe_check(error="disabled_since is after received_on")
    def disabled_before_application(cls, data: Any) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("disabled_since") <= pl.col("received_on"))


class AssessmentResults(Inbound):
    application_id: str = pa.Field(str_length={"min_value": 1})
    agency_id: str = pa.Field(str_length={"min_value": 1})
    visited_on: dt.date = pa.Field()
    grade: int = pa.Field(ge=0, le=5, description="national standard grade 0-5 (医保办发〔2021〕37号)")
    published_on: dt.date = pa.Field(description="day the conclusion was published (公示)")
    fee_fen: int = pa.Field(nullable=True, ge=0, description="the agency's fee for the visit, yuan")
    assessor_ids: str = pa.Field(nullable=True, description="the assessors who made the visit, `;`-separated")
    adl_score: int = pa.Field(nullable=True, ge=0, le=100, description="日常生活活动能力 total, 0-100")
    cognition_score: int = pa.Field(nullable=True, ge=0, le=16, description="认知能力 total, 0-16")
    perception_score: int = pa.Field(nullable=True, ge=0, le=12, description="感知觉与沟通能力 total, 0-12")

    @pa.dataframe_check(error="published_on is before visited_on")
    def published_after_visit(cls, data: Any) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("published_on") >= pl.col("visited_on"))


class CareDays(Inbound):
    person_id: str = pa.Field(str_length={"min_value": 1})
    provider_id: str = pa.Field(str_length={"min_value": 1})
    period: str = pa.Field(str_matches=PERIOD, description="billing month claimed, YYYY-MM")
    care_date: dt.date = pa.Field()
    care_mode: str = pa.Field(isin=CARE_MODES)
    item_code: str = pa.Field(description="service item (home care); empty for a bed-day")
    amount_fen: int = pa.Field(ge=0, description="cost of the items, yuan (home care); 0 for a bed-day")

    @pa.dataframe_check(error="care_date is outside the period")
    def care_date_in_period(cls, data: Any) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("care_date").dt.strftime("%Y-%m") == pl.col("period"))


class HospitalStays(Inbound):
    person_id: str = pa.Field(str_length={"min_value": 1})
    admitted_on: dt.date = pa.Field()
    discharged_on: dt.date = pa.Field(nullable=True, description="empty while still in hospital")
    kind: str = pa.Field(isin=STAY_KINDS, description="inpatient (住院) or emergency_observation (急诊留观)")

    @pa.dataframe_check(error="discharged_on is before admitted_on")
    def discharge_after_admission(cls, data: Any) -> pl.LazyFrame:
        f = data.lazyframe
        return f.select(pl.col("discharged_on").is_null() | (pl.col("discharged_on") >= pl.col("admitted_on")))


class BankReturns(Inbound):
    batch_ref: str = pa.Field(str_length={"min_value": 1, "max_value": 64}, description="the batch transferred")
    amount_fen: int = pa.Field(ge=0, description="amount transferred, yuan")
    status: str = pa.Field(isin=["paid", "failed"], description="paid, or failed (returned by the bank)")
    value_date: dt.date = pa.Field(nullable=True, description="YYYY-MM-DD the transfer was made")
    bank_reference: str = pa.Field(nullable=True, description="the bank's own reference")
    reason: str = pa.Field(nullable=True, description="why a transfer failed")


@dataclass(frozen=True)
class Column:
    """A CSV column: its header, the field it feeds, how its text is read, whether it may be empty."""

    header: str
    field: str
    reader: str  # text | date | money | int | bool
    required: bool = True
    default: Any = None


@dataclass(frozen=True)
class InboundKind:
    kind: str
    model: type[Inbound]
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    references: tuple[tuple[str, str], ...] = ()  # (field, table it must exist in)
    description: str = ""


def _c(header: str, reader: str = "text", required: bool = True, default: Any = None) -> Column:
    field = f"{header}_fen" if reader == "money" else header
    return Column(header, field, reader, required, default)


INBOUND: dict[str, InboundKind] = {
    k.kind: k
    for k in [
        InboundKind(
            "persons",
            Persons,
            (
                _c("person_id"),
                _c("name"),
                _c("id_number"),
                _c("jurisdiction"),
                _c("area"),
                _c("insurance_type"),
                _c("contribution_base", "money"),
                _c("birth_date", "date", False),
                _c("death_date", "date", False),
                _c("work_injury_care_allowance", "bool", False, False),
                _c("student", "bool", False, False),
                _c("medical_premium_fully_subsidised", "bool", False, False),
                _c("retired_cadre", "bool", False, False),
                _c("disabled_veteran_grade", "int", False),
                _c("village", required=False),
                _c("notify_url", required=False),
                _c("language", required=False, default="zh_CN"),
            ),
            ("person_id",),
            description="Insured persons of a pooling area, from the medical insurance register.",
        ),
        InboundKind(
            "contributions",
            Contributions,
            (
                _c("person_id"),
                _c("period"),
                _c("due", "money"),
                _c("paid", "money"),
                _c("paid_on", "date", False),
            ),
            ("person_id", "period"),
            (("person_id", "person"),),
            "Monthly contributions: what was due, what was paid and when.",
        ),
        InboundKind(
            "providers",
            Providers,
            (
                _c("provider_id"),
                _c("name"),
                _c("jurisdiction"),
                _c("kind"),
                _c("contract_start", "date"),
                _c("contract_end", "date", False),
                _c("status"),
                _c("bank_account"),
                _c("notify_url", required=False),
                _c("language", required=False, default="zh_CN"),
            ),
            ("provider_id",),
            description="Designated care providers and their service agreements.",
        ),
        InboundKind(
            "agencies",
            Agencies,
            (
                _c("agency_id"),
                _c("name"),
                _c("jurisdiction"),
                _c("area"),
                _c("capacity_per_day", "int"),
                _c("notify_url", required=False),
                _c("contract_start", "date", False),
                _c("contract_end", "date", False),
                _c("linked_providers", required=False, default=""),
                _c("language", required=False, default="zh_CN"),
                _c("day_starts_at", required=False),
                _c("day_ends_at", required=False),
                _c("visit_minutes", "int", False),
            ),
            ("agency_id",),
            description=(
                "Third-party assessment agencies, their daily capacity and working hours. A visit is placed only "
                "within the hours; a capacity that the agency's assessors cannot make within them is cut to what "
                "they can (the scheduling run names the agency)."
            ),
        ),
        InboundKind(
            "assessors",
            Assessors,
            (
                _c("assessor_id"),
                _c("agency_id"),
                _c("name"),
                _c("active", "bool", False, True),
                _c("linked_providers", required=False, default=""),
            ),
            ("assessor_id",),
            (("agency_id", "agency"),),
            "Assessors of the agencies, and the care providers each has ties to (never assigned to their clients).",
        ),
        InboundKind(
            "assessment_events",
            AssessmentEvents,
            (
                _c("application_id"),
                _c("event"),
                _c("reported_on", "date"),
                _c("reported_by"),
                _c("note", required=False),
            ),
            ("application_id", "event", "reported_on"),
            (("application_id", "application"),),
            "Changes to visits and results: cancellations, no-shows, objections (公示 period), re-assessments.",
        ),
        InboundKind(
            "applications",
            Applications,
            (
                _c("application_id"),
                _c("person_id"),
                _c("received_on", "date"),
                _c("disabled_since", "date"),
                _c("care_mode"),
                _c("provider_id", required=False),
            ),
            ("application_id",),
            (("person_id", "person"),),
            "Applications for benefits.",
        ),
        InboundKind(
            "assessment_results",
            AssessmentResults,
            (
                _c("application_id"),
                _c("agency_id"),
                _c("visited_on", "date"),
                _c("grade", "int"),
                _c("published_on", "date"),
                _c("fee", "money", False),
                _c("assessor_ids", required=False),
                _c("adl_score", "int", False),
                _c("cognition_score", "int", False),
                _c("perception_score", "int", False),
            ),
            ("application_id",),
            (("application_id", "application"), ("agency_id", "agency")),
            "Assessment results returned by agencies.",
        ),
        InboundKind(
            "care_days",
            CareDays,
            (
                _c("person_id"),
                _c("provider_id"),
                _c("period"),
                _c("care_date", "date"),
                _c("care_mode"),
                _c("item_code", required=False, default=""),
                _c("amount", "money", False, 0),
            ),
            ("person_id", "provider_id", "care_date", "item_code", "period"),
            (("person_id", "person"), ("provider_id", "provider")),
            "Care given, one row per bed-day (institutional) or per service item and day (home care).",
        ),
        InboundKind(
            "hospital_stays",
            HospitalStays,
            (
                _c("person_id"),
                _c("admitted_on", "date"),
                _c("discharged_on", "date", False),
                _c("kind", required=False, default="inpatient"),
            ),
            ("person_id", "admitted_on"),
            (("person_id", "person"),),
            "Hospital admissions and discharges.",
        ),
        InboundKind(
            "bank_returns",
            BankReturns,
            (
                _c("batch_ref"),
                _c("amount", "money"),
                _c("status"),
                _c("value_date", "date", False),
                _c("bank_reference", required=False),
                _c("reason", required=False),
            ),
            ("batch_ref",),
            (),
            "The bank's return file for a bank transfer file: one row per transfer, paid or failed. A batch it does "
            "not name, or names twice, is a reconciliation break, not a bad row.",
        ),
    ]
}


# Frames between steps.


class Claims(pa.DataFrameModel):
    """Claim lines produced by billing: one per person, provider, period and care mode (rules.inputs.OUTPUT_CLAIMS)."""

    person_id: str
    provider_id: str
    period: str = pa.Field(str_matches=PERIOD)
    care_mode: str = pa.Field(isin=CARE_MODES)
    grade: int = pa.Field(nullable=True, ge=0, le=5)
    days_submitted: int = pa.Field(ge=0)
    days_paid: int = pa.Field(ge=0)
    days_excluded: int = pa.Field(ge=0)
    submitted_fen: int = pa.Field(ge=0)
    gross_fen: int = pa.Field(ge=0)
    payable_fen: int = pa.Field(ge=0)
    personal_fen: int = pa.Field(ge=0)
    over_cap_fen: int = pa.Field(ge=0)

    class Config:
        strict = False

    @pa.dataframe_check(error="days_paid + days_excluded != days_submitted")
    def days_add_up(cls, data: Any) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("days_paid") + pl.col("days_excluded") == pl.col("days_submitted"))

    @pa.dataframe_check(error="payable_fen + personal_fen != gross_fen")
    def shares_add_up(cls, data: Any) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("payable_fen") + pl.col("personal_fen") == pl.col("gross_fen"))

    @pa.dataframe_check(error="over_cap_fen > personal_fen")
    def over_cap_is_personal(cls, data: Any) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("over_cap_fen") <= pl.col("personal_fen"))

    @pa.dataframe_check(error="excluded_ranges: a range's days are not its dates, or do not add up to days_excluded")
    def ranges_add_up(cls, data: Any) -> pl.LazyFrame:
        ranges = pl.col("excluded_ranges")
        days = ranges.list.eval(pl.element().struct.field("days")).list.sum()
        spans = ranges.list.eval(
            (pl.element().struct.field("to") - pl.element().struct.field("from")).dt.total_days() + 1
        ).list.sum()
        return data.lazyframe.select((days == pl.col("days_excluded")) & (spans == pl.col("days_excluded")))


class ContributionDues(pa.DataFrameModel):
    """What a pack's rules say is due: one row per person, period and payer."""

    person_id: str
    period: str = pa.Field(str_matches=PERIOD_OR_YEAR)
    payer: str = pa.Field(isin=PAYERS)
    amount_fen: int = pa.Field(gt=0)

    class Config:
        strict = True


class Decisions(pa.DataFrameModel):
    """Eligibility decisions: approved with a start date, or refused with every reason."""

    application_id: str
    person_id: str
    approved: bool
    grade: int = pa.Field(nullable=True, ge=0, le=5)
    start_date: dt.date = pa.Field(nullable=True)
    end_date: dt.date = pa.Field(nullable=True)

    class Config:
        strict = False

    @pa.dataframe_check(error="an approved decision needs a start date")
    def approved_has_start(cls, data: Any) -> pl.LazyFrame:
        # An approval may still carry reasons that shape it (a waiting period that defers the start).
        return data.lazyframe.select(~pl.col("approved") | pl.col("start_date").is_not_null())

    @pa.dataframe_check(error="a refusal needs at least one reason")
    def refusal_has_reason(cls, data: Any) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("approved") | (pl.col("reason_codes").list.len() > 0))
