"""The frames the pack formulas take, column by column: one definition for the record's readers and the worked
cases alike."""

from __future__ import annotations

from typing import Any

import polars as pl

SCHEMAS: dict[str, dict[str, Any]] = {
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
    "persons": {
        "person_id": pl.Utf8,
        "insurance_type": pl.Utf8,
        "contribution_base_fen": pl.Int64,
        "work_injury_care_allowance": pl.Boolean,
        "death_date": pl.Date,
    },
    "stays": {"person_id": pl.Utf8, "admitted_on": pl.Date, "discharged_on": pl.Date},
    "providers": {
        "provider_id": pl.Utf8,
        "status": pl.Utf8,
        "contract_start": pl.Date,
        "contract_end": pl.Date,
    },
    "apps": {
        "application_id": pl.Utf8,
        "person_id": pl.Utf8,
        "received_on": pl.Date,
        "disabled_since": pl.Date,
        "grade": pl.Int64,
        "published_on": pl.Date,
        "insurance_type": pl.Utf8,
        "work_injury_care_allowance": pl.Boolean,
        "death_date": pl.Date,
        "full_contribution_months": pl.Int64,
        "already_beneficiary": pl.Boolean,
    },
}
