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

`RESOLVED_ON` says on which date each of them is resolved; a pack's `pack.yaml` says whether its periods are months
or years (`period`, `PERIODS`) and which payers its document names (`payers`, from `PAYERS`).
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

# Who pays a contribution: one name for one payer, in every pack, wherever a document means that payer. A payer is
# a line of money a document names on its own (who pays, and for what), so that each can be collected and
# reconciled: the city budget's own share and its subsidy to the villages are two payers. Each pack's pack.yaml
# (`payers`) names the ones its document has, in the document's words and clause; docs/policies.md lists them.
PAYER_MEANINGS: dict[str, str] = {
    "employer": "用人单位缴费: the employer's share",
    "individual": "个人缴费: the member's own share, paid by the member",
    "personal_account": (
        "个人账户划转: the member's own share, moved from (or deducted from the monthly transfer into) their "
        "employee medical insurance personal account"
    ),
    "medical_fund": "统筹基金划转: a share moved from the employee medical insurance pooling fund",
    "city_budget": "市(区)级财政补助: the city's (or district's) budget, its own share of a member's dues",
    "city_village_subsidy": (
        "市级财政补助村(社区)集体: the city budget's subsidy to the village (community) collective, towards the "
        "residents' own shares the village pays"
    ),
    "town_budget": (
        "镇(街道)补助村(社区)集体: the town's (subdistrict's) budget, its subsidy to the village (community) "
        "collective towards the residents' own shares"
    ),
    "village": "村(社区)集体: the village (community) collective, for what is left of its residents' own shares",
    "government_subsidy": (
        "财政全额补助个人缴费: a member's own share, paid in full by the budget for the members a document names "
        "(the member owes nothing)"
    ),
    "government": (
        "政府补助: the government's share of a member's dues, beside the member's own, where the document does not "
        "name the budget's level"
    ),
    "medical_assistance": (
        "医疗救助基金资助: a member's own share, paid by the medical assistance fund for the members in need a "
        "document names"
    ),
}
PAYERS = list(PAYER_MEANINGS)

# What a pack's periods are (pack.yaml `period`: one of these, or both): its contributions are due by the month
# or by the year. Billing is by the month in every pack.
PERIODS: dict[str, str] = {"month": "YYYY-MM", "year": "YYYY"}

# The date on which each pack function is resolved: `rules.formulas.resolve(pack, name, on)` runs the version of
# the function in force on it, and the function reads its parameters as in force on it, except the values its
# docstring says it reads on another date.
RESOLVED_ON: dict[str, str] = {
    "contributions_due": (
        "the first day of the period: the 1st of a `YYYY-MM` month, 1 January of a `YYYY` year, or the pack's "
        "first day if that is later (`rules.engine.period_start`)"
    ),
    "eligibility": (
        "the day the application was received (`received_on`), each application on its own (the day a decision "
        "is made, `as_of`, only says which assessments have passed their publicity period)"
    ),
    "bill": (
        "the first day of the billing month (`YYYY-MM-01`): the month's version and its parameters (ratios, "
        "quotas, ceilings, what is excluded); a daily rate, where a pack has one, as in force on each care date"
    ),
    "assessment_fees": "the day of the assessment visit (`visited_on`)",
}

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
#   excluded_ranges [{reason, from, to, days}]: the dates not paid, as runs of consecutive care dates with one
#                reason (from and to inclusive, days = to - from + 1), in date order; their days add up to
#                days_excluded, and by reason to `exclusions`
#   cap_reason   the reason code (in the pack's reasons.yaml) of over_cap_fen, if any
# A claim line's figures, in the order the record, the bench and the exports give them.
CLAIM_FIGURES = (
    "grade",
    "days_submitted",
    "days_paid",
    "days_excluded",
    "submitted_fen",
    "gross_fen",
    "payable_fen",
    "personal_fen",
    "over_cap_fen",
)
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
    "excluded_ranges": pl.List(pl.Struct({"reason": pl.Utf8, "from": pl.Date, "to": pl.Date, "days": pl.Int64})),
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
