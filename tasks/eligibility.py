"""Eligibility: assessed applications become decisions, each with its reasons and clauses, and a notice."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import pandera.polars as pa
import polars as pl
from pandera.typing.polars import DataFrame
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import select, update

from rules.engine import Pack, RulesError, load_pack, reasons, with_params
from rules.formulas import resolve
from rules.inputs import OUTPUT_DECISIONS
from storage import models as m
from storage.db import session_scope, upsert
from tasks import audit, records
from tasks.billing import rate_lines
from tasks.notices import notify
from tasks.retrying import RETRY_TRANSIENT
from tasks.schemas import Decisions


@task(cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def load_assessed(jurisdiction: str, as_of: dt.date) -> dict[str, pl.DataFrame]:
    """Assessed applications whose conclusion's publicity period (公示) is over by `as_of`: a result can still be
    objected to until then, so it starts nothing before."""
    pack = load_pack(jurisdiction)
    with session_scope() as s:
        apps = records.assessed_applications(s, jurisdiction)
        contributions = records.contributions(s, jurisdiction)
    if not apps.is_empty():
        apps = with_params(apps, pack, {"_publicity": "assessment.publicity_days"}, on="published_on")
        apps = apps.filter(pl.col("published_on") + pl.duration(days=pl.col("_publicity")) < pl.lit(as_of)).drop(
            "_publicity"
        )
    return {"apps": apps, "contributions": contributions}


@task(cache_policy=NO_CACHE)
@pa.check_types
def decide(inputs: dict[str, pl.DataFrame], jurisdiction: str, as_of: dt.date) -> DataFrame[Decisions]:
    """The pack's eligibility formula and parameters in force on each application's own date; `as_of` is the
    date the decisions are made and recorded."""
    return decide_under(load_pack(jurisdiction), inputs)


@pa.check_types
def decide_under(pack: Pack, inputs: dict[str, pl.DataFrame]) -> DataFrame[Decisions]:
    """The eligibility formula of `pack` (the pack in force, or a variant of it) in force on each application's
    day of receipt, with the pack's parameters."""
    if inputs["apps"].is_empty():
        return cast(DataFrame[Decisions], pl.DataFrame(schema={**OUTPUT_DECISIONS, "assessment_sequence": pl.Int64}))
    # Each application is decided by the formula in force on the day it was received (not the decision day).
    apps = inputs["apps"].with_columns(
        _formula=pl.col("received_on").map_elements(
            lambda d: resolve(pack, "eligibility", d).__qualname__, return_dtype=pl.Utf8
        )
    )
    parts = []
    for (_,), group in apps.group_by("_formula", maintain_order=True):
        fn = resolve(pack, "eligibility", group["received_on"].min())  # type: ignore[arg-type]
        parts.append(fn({**inputs, "apps": group.drop("_formula")}, pack))
    out = (
        pl.concat(parts)
        .join(inputs["apps"].select("application_id", "assessment_sequence"), on="application_id", how="left")
        .sort("application_id")
    )
    return cast(DataFrame[Decisions], out)


def _supersede(s: Any, d: dict[str, Any], sequence: int) -> None:
    """A later assessment of the same application replaces the earlier decision from its own start: an approval
    from its start date, a refusal (reassessed below the threshold) from the end the pack gives it, or else from
    the publication of the new conclusion. The earlier entitlement ends the day before."""
    if sequence == 1:
        return
    visit = s.scalars(
        select(m.Assessment).where(
            m.Assessment.application_id == d["application_id"], m.Assessment.sequence == sequence
        )
    ).one()
    if d["approved"] and d["start_date"] is not None:
        stop = d["start_date"] - dt.timedelta(days=1)
    elif d["end_date"] is not None:
        stop = d["end_date"]
    else:
        stop = visit.published_on - dt.timedelta(days=1)
    for earlier in s.scalars(
        select(m.EligibilityDecision).where(
            m.EligibilityDecision.application_id == d["application_id"],
            m.EligibilityDecision.assessment_sequence < sequence,
            m.EligibilityDecision.approved.is_(True),
        )
    ):
        if earlier.end_date is None or earlier.end_date > stop:
            earlier.end_date = stop


NOT_ELIGIBILITY_NODES = {"billing", "contributions", "payment", "fund", "assessment", "assistive_devices"}


def eligibility_rules(pack: Pack, on: dt.date) -> list[dict[str, Any]]:
    """The parameters an eligibility decision rests on, with their values and clauses on the application day."""
    out = []
    for name in sorted(pack.parameters):
        if name.split(".", 1)[0] in NOT_ELIGIBILITY_NODES:
            continue
        try:
            out.append(pack.param(name).cite(on))
        except RulesError:
            continue
    return out


# Columns a pack's eligibility may add beyond the contract: what the decision counted (Jilin 二(六): the waiting
# period's length and first day, the years lapsed and the whole years paid back it rests on, the continuous years
# insured). Each is kept with the decision (`facts`), audited and said in its notice.
FACTS = ("waiting_days", "waiting_from", "lapsed_years", "repaid_years", "continuous_years")


def facts(d: dict[str, Any]) -> dict[str, Any]:
    """The facts a decision row carries (dates as ISO text); none where the pack counts none."""
    out: dict[str, Any] = {}
    for key in FACTS:
        value = d.get(key)
        if value is not None:
            out[key] = value.isoformat() if isinstance(value, dt.date) else int(value)
    return out


@task(cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def record_decisions(decisions: pl.DataFrame, jurisdiction: str, as_of: dt.date) -> int:
    """Write each decision and its notice in one transaction; a decided application is not decided again."""
    pack = load_pack(jurisdiction)
    catalogue = reasons(pack)
    with session_scope() as s:
        for d in decisions.iter_rows(named=True):
            app = s.get(m.Application, d["application_id"])
            if app is None or app.status != "assessed":
                continue
            sequence = int(d["assessment_sequence"])
            person = s.get(m.Person, d["person_id"])
            assert person is not None
            _supersede(s, d, sequence)
            why = [{"code": c, **catalogue[c]} for c in d["reason_codes"]]
            counted = facts(d)
            upsert(
                s,
                m.EligibilityDecision,
                [
                    {
                        "application_id": d["application_id"],
                        "assessment_sequence": sequence,
                        "person_id": d["person_id"],
                        "jurisdiction": jurisdiction,
                        "decided_on": as_of,
                        "approved": d["approved"],
                        "grade": d["grade"],
                        "start_date": d["start_date"],
                        "end_date": d["end_date"],
                        "reasons": why,
                        "rules": eligibility_rules(pack, app.received_on),
                        "policy_draft": pack.draft,
                        "facts": counted,
                    }
                ],
                ["application_id", "assessment_sequence"],
                update=False,
            )
            s.execute(
                update(m.Application)
                .where(m.Application.application_id == d["application_id"])
                .values(status="decided")
            )
            audit.record(
                s,
                "decision.eligibility",
                d["application_id"],
                {
                    "person_id": d["person_id"],
                    "assessment_sequence": sequence,
                    "approved": d["approved"],
                    "grade": d["grade"],
                    "start_date": d["start_date"],
                    "end_date": d["end_date"],
                    "reasons": list(d["reason_codes"]),
                    "facts": counted,
                    "as_of": as_of,
                },
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
                "counted": _counted(counted),
            }
            notify(
                s,
                person,
                kind="eligibility_decision",
                dedupe_key=f"eligibility_decision:{d['application_id']}:{sequence}",
                context=context,
            )
    return decisions.height


def _counted(counted: dict[str, Any]) -> dict[str, Any] | None:
    """What a notice says of the facts: the waiting period (its days, first day, years lapsed and paid back) and the
    continuous years insured; None where the pack counts neither."""
    if not counted:
        return None
    waiting = None
    if "waiting_days" in counted:
        waiting = {
            "days": counted["waiting_days"],
            "from": dt.date.fromisoformat(counted["waiting_from"]) if "waiting_from" in counted else None,
            "lapsed_years": counted.get("lapsed_years"),
            "repaid_years": counted.get("repaid_years"),
        }
    return {"waiting": waiting, "continuous_years": counted.get("continuous_years")}
