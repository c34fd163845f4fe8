"""What a pack's pack.yaml says of its periods and payers is what its formulas do: the payers it names are exactly
those its worked cases give, and its contributions take the periods it names and refuse the others."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from ltc import checks
from ltc.demo import PROFILES
from rules import packinfo
from rules.cases import load_cases, run_case
from rules.engine import RulesError, load_pack, pack_ids, period_start
from rules.errors import UserError
from rules.formulas import resolve
from rules.inputs import PAYER_MEANINGS, PAYERS, PERIODS, RESOLVED_ON, SCHEMAS


def test_every_payer_and_pack_function_is_explained() -> None:
    assert PAYERS == list(PAYER_MEANINGS) and all(PAYER_MEANINGS.values())
    assert set(RESOLVED_ON) == {"contributions_due", "eligibility", "bill", "assessment_fees"}


@pytest.mark.parametrize("pack_id", pack_ids())
def test_the_payers_a_pack_names_are_those_its_worked_cases_give(pack_id: str) -> None:
    named = packinfo.payers(pack_id)
    if named is None:
        pytest.skip(f"{pack_id}: pack.yaml names no payers")
    given: set[str] = set()
    for _, case in load_cases(pack_id):
        if case["formula"] == "contributions_due" and "error" not in case:
            given |= {payer for row in run_case(pack_id, case) for payer in row["dues"]}
    assert given == set(named)
    assert all(named.values())  # each in the document's words


def _one_of_each(pack_id: str) -> pl.DataFrame:
    kinds = ["employee", "retiree", "flexible", "unemployed", "resident"]
    rows = [
        {
            **dict.fromkeys(SCHEMAS["persons"]),
            "person_id": f"P{i}",
            "insurance_type": kind,
            "contribution_base_fen": 500000,
            "birth_date": dt.date(1950, 1, 1),
            "work_injury_care_allowance": False,
            "student": False,
            "medical_premium_fully_subsidised": False,
            "retired_cadre": False,
            "area": "",
        }
        for i, kind in enumerate(kinds)
    ]
    return pl.DataFrame(rows, schema=SCHEMAS["persons"], orient="row")


@pytest.mark.parametrize("pack_id", pack_ids())
def test_a_packs_contributions_take_the_periods_it_names(pack_id: str) -> None:
    named = packinfo.periods(pack_id)
    if named is None:
        pytest.skip(f"{pack_id}: pack.yaml does not say whether its periods are months or years")
    pack = load_pack(pack_id)
    month = PROFILES[pack_id].period
    if pack_id == "jilin":
        month = "2028-03"  # 二(三)3: the residents' standard before 2028 is the province's, not among the sources
    for kind, period in (("month", month), ("year", month[:4])):
        due = resolve(pack, "contributions_due", period_start(period, pack))
        if kind in named:
            assert due(_one_of_each(pack_id), pack, period).height > 0, (kind, period)
            assert checks.period(period, pack_id, "contributions") == period
        else:
            with pytest.raises(RulesError):
                due(_one_of_each(pack_id), pack, period)
            # The command line says so before any flow starts.
            with pytest.raises(UserError, match=f"pack {pack_id} takes contributions by the {named[0]}"):
                checks.period(period, pack_id, "contributions")


def test_the_year_a_yearly_pack_took_effect_is_a_period_of_it() -> None:
    """Jinjiang took effect on 2023-04-01; its 2023 dues are those of that day (the worked case 四(四))."""
    assert checks.period("2023", "jinjiang", "contributions") == "2023"
    with pytest.raises(RulesError, match="outside pack jinjiang"):
        checks.period("2022", "jinjiang", "contributions")


def test_a_pack_yaml_that_names_an_unknown_period_or_payer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packinfo, "_meta", lambda pid: {"period": "week", "payers": {"landlord": "房东"}})
    with pytest.raises(RulesError, match="period must be month, year or"):
        packinfo.periods("nanning")
    with pytest.raises(RulesError, match="payers landlord are not among"):
        packinfo.payers("nanning")
    monkeypatch.setattr(packinfo, "_meta", lambda pid: {"period": ["year", "month"]})
    assert packinfo.periods("nanning") == tuple(PERIODS)
