"""Contribution dues: what each insured person's period costs, split by who pays, by the pack's rules."""

from __future__ import annotations

from typing import cast

import pandera.polars as pa
import polars as pl
from pandera.typing.polars import DataFrame
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import delete

from rules import packinfo
from rules.engine import Pack, RulesError, load_pack, period_start
from rules.formulas import resolve
from storage import models as m
from storage.db import session_scope, upsert
from tasks import records
from tasks.retrying import RETRY_TRANSIENT
from tasks.schemas import ContributionDues


@task(cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def insured_persons(jurisdiction: str) -> pl.DataFrame:
    with session_scope() as s:
        return records.persons(s, jurisdiction)


@task(cache_policy=NO_CACHE)
@pa.check_types
def compute_dues(persons: pl.DataFrame, jurisdiction: str, period: str) -> DataFrame[ContributionDues]:
    out = dues_under(load_pack(jurisdiction), persons, period)
    named = packinfo.payers(jurisdiction)
    others = sorted(set(out["payer"].unique().to_list()) - set(named)) if named is not None else []
    if others:
        raise RulesError(
            f"pack {jurisdiction}: contributions_due gives payer(s) {', '.join(others)} its pack.yaml does not name"
        )
    return cast(DataFrame[ContributionDues], out)


def dues_under(pack: Pack, persons: pl.DataFrame, period: str) -> pl.DataFrame:
    """A contribution period's dues by the contributions formula of `pack` (the pack in force, or a variant of it)."""
    due: pl.DataFrame = resolve(pack, "contributions_due", period_start(period, pack))(persons, pack, period)
    return due


@task(cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def write_dues(dues: pl.DataFrame, jurisdiction: str, period: str) -> int:
    """The period's dues, in place of what an earlier run wrote for it, in one transaction: a rerun for the same
    period leaves exactly the rows the rules give now (no row of a payer the rules no longer name, or of a person
    no longer insured). Dues are what is owed; what was paid, and the ledger, come from the contributions file."""
    rows = dues.with_columns(jurisdiction=pl.lit(jurisdiction)).to_dicts()
    with session_scope() as s:
        s.execute(
            delete(m.ContributionDue).where(
                m.ContributionDue.jurisdiction == jurisdiction, m.ContributionDue.period == period
            )
        )
        upsert(s, m.ContributionDue, rows, ["person_id", "period", "payer"])
    return len(rows)
