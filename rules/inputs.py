"""The contract between the record and the packs' formulas: the frames a formula takes, column by column, and
the codes they use. One definition for the record's readers, the intake checks and the worked cases alike.

Every pack's formulas have the same three signatures:

- `contributions_due(persons, pack, period) -> frame[person_id, period, payer, amount_fen]`: what is due for the
  period (`YYYY-MM` for monthly packs, `YYYY` for yearly ones), one row per person and payer, amount > 0.
- `eligibility(inputs, pack) -> frame[application_id, person_id, approved, grade, start_date, end_date,
  reason_codes]`, with `inputs["apps"]` and `inputs["contributions"]`.
- `bill(inputs, pack, period) -> frame[OUTPUT_CLAIMS]`, with `inputs` holding `care`, `entitlements`, `persons`,
  `stays`, `providers`, `contributions` and `ytd` (what the fund already paid earlier in the year).
- `assessment_fees(assessments, pack, on) -> frame[application_id, sequence, fund_fen, applicant_fen,
  reason_codes]`: who pays each assessment's fee.
"""

from __future__ import annotations

from typing import Any

import polars as pl

# Care modes: residential care in an institution, day care in a community centre, care at home (visits by a
# designated provider, or an individual carer where a pack pays one).
CARE_MODES = ["institutional", "community", "home"]

# What a provider is. `carer_trained` / `carer_untrained`: an individual carer, registered after training or not.
PROVIDER_KINDS = ["institution", "home_care", "community", "mixed", "carer_trained", "carer_untrained"]

# Medical insurance types of the insured.
INSURANCE_TYPES = ["employee", "retiree", "flexible", "unemployed", "resident"]

# Who pays a contribution.
PAYERS = [
    "employer",  # 用人单位 / 单位
    "individual",  # 个人缴费
    "personal_account",  # 职工医保个人账户划转
    "medical_fund",  # 医保统筹基金划转
    "city_budget",  # 市(区)财政
    "town_budget",  # 镇(街道)财政
    "village",  # 村(社区)代收
    "government_subsidy",  # 政府补助 / 财政补助
]

# Why a hospital day is not a care day.
STAY_KINDS = ["inpatient", "emergency_observation"]

SCHEMAS: dict[str, dict[str, Any]] = {
    "persons": {
        "person_id": pl.Utf8,
        "insurance_type": pl.Utf8,
        "contribution_base_fen": pl.Int64,
        "birth_date": pl.Date,
        "death_date": pl.Date,
        "work_injury_care_allowance": pl.Boolean,
        "student": pl.Boolean,
        "medical_premium_fully_subsidised": pl.Boolean,
        "retired_cadre": pl.Boolean,
        "disabled_veteran_grade": pl.Int64,
        "area": pl.Utf8,
    },
    "contributions": {
        "person_id": pl.Utf8,
        "period": pl.Utf8,
        "due_fen": pl.Int64,
        "paid_fen": pl.Int64,
        "paid_on": pl.Date,
    },
    "apps": {
        "application_id": pl.Utf8,
        "person_id": pl.Utf8,
        "received_on": pl.Date,
        "disabled_since": pl.Date,
        "care_mode": pl.Utf8,
        "grade": pl.Int64,
        "published_on": pl.Date,
        "insurance_type": pl.Utf8,
        "birth_date": pl.Date,
        "student": pl.Boolean,
        "retired_cadre": pl.Boolean,
        "disabled_veteran_grade": pl.Int64,
        "work_injury_care_allowance": pl.Boolean,
        "death_date": pl.Date,
        "full_contribution_months": pl.Int64,
        "already_beneficiary": pl.Boolean,
    },
    "care": {
        "person_id": pl.Utf8,
        "provider_id": pl.Utf8,
        "care_date": pl.Date,
        "care_mode": pl.Utf8,
        "item_code": pl.Utf8,
        "amount_fen": pl.Int64,
    },
    "entitlements": {
        "person_id": pl.Utf8,
        "grade": pl.Int64,
        "start_date": pl.Date,
        "end_date": pl.Date,
    },
    "stays": {"person_id": pl.Utf8, "admitted_on": pl.Date, "discharged_on": pl.Date, "kind": pl.Utf8},
    "providers": {
        "provider_id": pl.Utf8,
        "kind": pl.Utf8,
        "status": pl.Utf8,
        "contract_start": pl.Date,
        "contract_end": pl.Date,
    },
    "ytd": {"person_id": pl.Utf8, "care_mode": pl.Utf8, "payable_fen": pl.Int64},
    # One row per assessment visit: sequence 1 is the first assessment of an application; `requested_by` says
    # who asked for a later one (applicant: re-assessment on request; bureau: specified by the fund's agency).
    "assessments": {
        "application_id": pl.Utf8,
        "person_id": pl.Utf8,
        "sequence": pl.Int64,
        "grade": pl.Int64,
        "fee_fen": pl.Int64,
        "requested_by": pl.Utf8,
    },
}

# What `bill` returns, one row per (person, provider, care mode) of the period. Money in fen:
#   gross_fen    what the line is worth before the fund/personal split: days x rate for per-diem packs, the
#                eligible cost on paid days for cost-based ones
#   payable_fen  the fund's share, after ratios, quotas and caps, rounded half-up once
#   personal_fen gross_fen - payable_fen (the member's share, including anything above a quota or cap)
#   over_cap_fen the part of personal_fen that is above a quota or cap
#   exclusions   [{reason, days}] for days not paid; rule_params: names of the parameters applied
#   cap_reason   the reason code (in the pack's reasons.yaml) of over_cap_fen, if any
OUTPUT_CLAIMS: dict[str, Any] = {
    "person_id": pl.Utf8,
    "provider_id": pl.Utf8,
    "period": pl.Utf8,
    "care_mode": pl.Utf8,
    "grade": pl.Int64,
    "days_submitted": pl.Int64,
    "days_paid": pl.Int64,
    "days_excluded": pl.Int64,
    "submitted_fen": pl.Int64,
    "gross_fen": pl.Int64,
    "payable_fen": pl.Int64,
    "personal_fen": pl.Int64,
    "over_cap_fen": pl.Int64,
    "exclusions": pl.List(pl.Struct({"reason": pl.Utf8, "days": pl.Int64})),
    "rule_params": pl.List(pl.Utf8),
    "cap_reason": pl.Utf8,
}


# What `eligibility` returns, one row per application. `reason_codes` lists every reason that refuses it (or, on an
# approval, that shapes it, such as a waiting period that defers the start).
OUTPUT_DECISIONS: dict[str, Any] = {
    "application_id": pl.Utf8,
    "person_id": pl.Utf8,
    "approved": pl.Boolean,
    "grade": pl.Int64,
    "start_date": pl.Date,
    "end_date": pl.Date,
    "reason_codes": pl.List(pl.Utf8),
}


def empty(name: str) -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMAS[name])
