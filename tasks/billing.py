"""Monthly billing: care days of a period become claim lines, each knowing why days were or were not paid."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
import time
from typing import Any, cast

import pandera.polars as pa
import polars as pl
from pandera.typing.polars import DataFrame
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.faults import failpoint
from common.formatting import yuan
from rules import fraud
from rules.engine import Pack, RulesError, load_pack, period_bounds, reasons
from rules.formulas import resolve
from rules.inputs import CLAIM_FIGURES
from storage import models as m
from storage.bulk import bulk_upsert
from storage.db import session_scope
from tasks import audit, records
from tasks import claims as work
from tasks.notices import Outbox
from tasks.records import WHOLE, Part
from tasks.retrying import RETRY_TRANSIENT
from tasks.schemas import Claims

DEFAULT_CAP_REASON = {"zh": "超过支付限额的部分不予支付。", "clause": "（支付限额）"}
UNIT_NAMES = {"yuan/day": "元/天", "yuan/month": "元/月", "yuan/year": "元/年", "yuan": "元"}


def rate_lines(pack: Pack, grade: int | None, on: dt.date | None) -> list[str]:
    """What a decision notice says the person will be paid: the pack's money parameters for billing that apply
    to the grade (or to every grade), with their descriptions, as in force on the start date."""
    if grade is None or on is None:
        return []
    out = []
    for name, p in sorted(pack.parameters.items()):
        last = name.rsplit(".", 1)[-1]
        if not name.startswith("billing.") or (p.unit not in UNIT_NAMES and p.unit != "ratio"):
            continue
        if last.startswith("grade_") and last != f"grade_{grade}":
            continue
        try:
            if p.unit == "ratio":
                text = f"{(p.decimal(on) * 100).normalize():f}%"
            else:
                text = f"{yuan(p.fen(on))} {UNIT_NAMES[p.unit]}"
        except RulesError:
            continue
        out.append(f"{p.description or name} {text}")
    return out


PERSON_FRAMES = ("care", "entitlements", "persons", "stays", "contributions", "ytd")


def read_inputs(s: Session, jurisdiction: str, period: str, part: Part = WHOLE) -> dict[str, pl.DataFrame]:
    """The frames the pack's billing formula takes, for the persons of one part (providers: all of them)."""
    with records.arrow_reads(s):
        return {
            "care": records.care_days(s, jurisdiction, period, part),
            "entitlements": records.entitlements(s, jurisdiction, part),
            "persons": records.persons(s, jurisdiction, part),
            "stays": records.hospital_stays(s, jurisdiction, period, part),
            "providers": records.providers(s, jurisdiction),
            "contributions": records.contributions(s, jurisdiction, part),
            "ytd": records.year_to_date(s, jurisdiction, period, part),
        }


def compute_claims(inputs: dict[str, pl.DataFrame], jurisdiction: str, period: str) -> DataFrame[Claims]:
    """The pack's billing formula in force on the first day of the period, on whole frames."""
    return claims_under(load_pack(jurisdiction), inputs, period)


@pa.check_types
def claims_under(pack: Pack, inputs: dict[str, pl.DataFrame], period: str) -> DataFrame[Claims]:
    """The billing formula of `pack` (the pack in force, or a variant of it) in force on the period's first day."""
    first, _ = period_bounds(period)
    bill = resolve(pack, "bill", first)
    out: pl.DataFrame = bill(inputs, pack, period)
    return cast(DataFrame[Claims], out)


def split_by_person(inputs: dict[str, pl.DataFrame], n: int) -> list[dict[str, pl.DataFrame]]:
    """The same month cut into n parts of whole persons by a stable hash of the id (shared frames, such as
    providers, go to every part): what billing in parts must give the same month for."""
    if n <= 1:
        return [inputs]
    out: list[dict[str, pl.DataFrame]] = [{} for _ in range(n)]
    for name, frame in inputs.items():
        for i, part in enumerate(out):
            part[name] = frame if name not in PERSON_FRAMES else frame.filter(frame["person_id"].hash(seed=0) % n == i)
    return out


@task(cache_policy=NO_CACHE, **RETRY_TRANSIENT)
def plan_parts(jurisdiction: str, period: str, persons_per_part: int) -> list[Part]:
    """The month's parts: ranges of whole persons, about `persons_per_part` each, so that memory is bounded by
    the part, not by the pooling area."""
    load_pack(jurisdiction).check_period(period)
    with session_scope() as s:
        parts = records.parts(s, jurisdiction, persons_per_part)
    with session_scope() as s:
        work.ensure(s, "billing", [part_key(jurisdiction, period, p) for p in parts])
    return parts


def part_key(jurisdiction: str, period: str, part: Part) -> str:
    return f"{jurisdiction} {period} persons {part[0] or ''}..{part[1] or ''}"


@task(
    cache_policy=NO_CACHE,
    **RETRY_TRANSIENT,
    task_run_name="bill {jurisdiction} {period} persons {part[0]}..{part[1]}",
)
def bill_part(jurisdiction: str, period: str, part: Part, since: float | None = None) -> dict[str, Any]:
    """Read, compute, validate and write one part's claim lines, in one transaction. Returns the part's totals
    and the seconds spent in each stage.

    The part is claimed first (`tasks.claims`): if another run bills it at the same time, or has billed it since
    `since` (this run's start, epoch seconds), this run leaves it to that run and returns zeros with
    `billed_by_another_run`."""
    seconds: dict[str, float] = {}
    started = time.time()
    key = part_key(jurisdiction, period, part)
    run_start = dt.datetime.fromtimestamp(since if since is not None else started, dt.UTC)
    with session_scope() as s:
        if not work.claim(s, "billing", key, run_start):
            return _nothing_billed(started)
        t = time.perf_counter()
        inputs = read_inputs(s, jurisdiction, period, part)
        seconds["read"] = time.perf_counter() - t
        t = time.perf_counter()
        claims = compute_claims(inputs, jurisdiction, period)
        seconds["compute"] = time.perf_counter() - t
        t = time.perf_counter()
        flags = fraud.fraud_flags(inputs)
        seconds["checks"] = time.perf_counter() - t
        del inputs
        t = time.perf_counter()
        written = write_lines(s, claims, jurisdiction, period, part)
        write_flags(s, flags, jurisdiction, period)
        work.finish(s, "billing", key)
        audit.record(
            s,
            "billing.part",
            key,
            {
                "claim_lines": claims.height,
                "written": written,
                "payable_fen": int(claims["payable_fen"].sum()),
                "claims_sha256": frame_sha256(claims, ["person_id", "provider_id", "care_mode"]),
                "fraud_flags": {k: v for k, v in fraud.counts(flags).items() if v},
            },
        )
        failpoint("billing.part.before_commit")
    failpoint("billing.part.committed")
    seconds["write"] = time.perf_counter() - t
    return {
        "claim_lines": claims.height,
        "written": written,
        "care_days": int(claims["days_submitted"].sum()),
        "days_paid": int(claims["days_paid"].sum()),
        "days_excluded": int(claims["days_excluded"].sum()),
        "payable_fen": int(claims["payable_fen"].sum()),
        "fraud_flags": fraud.counts(flags),
        "seconds": seconds,
        "interval": (started, time.time()),
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "billed_by_another_run": False,
    }


def _nothing_billed(started: float) -> dict[str, Any]:
    totals = dict.fromkeys(("claim_lines", "written", "care_days", "days_paid", "days_excluded", "payable_fen"), 0)
    return totals | {
        "fraud_flags": fraud.counts(pl.DataFrame(schema=fraud.FLAG_SCHEMA)),
        "seconds": dict.fromkeys(("read", "compute", "checks", "write"), 0.0),
        "interval": (started, time.time()),
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "billed_by_another_run": True,
    }


def frame_sha256(frame: pl.DataFrame, keys: list[str]) -> str:
    """A digest of a frame's content, in key order, for the audit log."""
    flat = [c for c, dtype in frame.schema.items() if not dtype.is_nested()]
    data = frame.sort(keys).select(flat).write_csv().encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def write_flags(s: Session, flags: pl.DataFrame, jurisdiction: str, period: str) -> int:
    """Store a part's fraud flags (a rerun finds the same flags and adds nothing)."""
    clauses = pl.DataFrame(
        {"rule": list(fraud.catalogue()), "clause": [c["clause"] for c in fraud.catalogue().values()]}
    )
    rows = flags.join(clauses, on="rule", how="left").with_columns(
        period=pl.lit(period), jurisdiction=pl.lit(jurisdiction), detail=pl.col("detail").str.slice(0, 256)
    )
    keys = ["rule", "person_id", "provider_id", "care_date"]
    return bulk_upsert(s, m.FraudFlag, rows, keys, update=False, analyze=False)


def _cites(pack: Pack, names: list[str | None], period: str) -> list[dict[str, Any]]:
    first, last = period_bounds(period)
    seen: list[dict[str, Any]] = []
    for name in (n for n in names if n):
        for day in (first, last):
            c = pack.param(name).cite(day)
            if c not in seen:
                seen.append(c)
    return seen


def _exclusions_json() -> pl.Expr:
    """{"REASON": days, ...} from the list of (reason, days), built in polars (reason codes are identifiers)."""
    pairs = pl.col("exclusions").list.eval(
        pl.format('"{}": {}', pl.element().struct.field("reason"), pl.element().struct.field("days"))
    )
    return pl.concat_str([pl.lit("{"), pairs.list.join(", "), pl.lit("}")]).alias("exclusions")


def _ranges_json() -> pl.Expr:
    """[{"reason": "IN_HOSPITAL", "from": "2026-03-10", "to": "2026-03-14", "days": 5}, ...] from the list of
    ranges, built in polars (reason codes are identifiers, dates ISO)."""
    field = pl.element().struct.field
    items = pl.col("excluded_ranges").list.eval(
        pl.concat_str(
            pl.lit('{"reason": "'),
            field("reason"),
            pl.lit('", "from": "'),
            field("from").dt.strftime("%Y-%m-%d"),
            pl.lit('", "to": "'),
            field("to").dt.strftime("%Y-%m-%d"),
            pl.lit('", "days": '),
            field("days").cast(pl.Utf8),
            pl.lit("}"),
        )
    )
    return pl.concat_str([pl.lit("["), items.list.join(", "), pl.lit("]")]).alias("excluded_ranges")


def write_lines(s: Session, claims: pl.DataFrame, jurisdiction: str, period: str, part: Part = WHOLE) -> int:
    """Upsert the part's claim lines for the period, except any already paid (a paid line is never edited)."""
    pack = load_pack(jurisdiction)
    keys = ["person_id", "provider_id", "care_mode"]
    cl = m.ClaimLine
    paid = records.frame(
        s,
        select(cl.id, cl.person_id, cl.provider_id, cl.care_mode, cl.payable_fen)
        .join(m.PaymentLine, m.PaymentLine.claim_line_id == cl.id)
        .where(cl.period == period, cl.jurisdiction == jurisdiction, records.in_part(cl.person_id, part)),
        {"claim_line_id": pl.Int64, **dict.fromkeys(keys, pl.Utf8), "paid_fen": pl.Int64},
    )
    if not paid.is_empty():
        adjust_paid_lines(s, paid, claims, jurisdiction, period, part)
    lines = claims.join(paid, on=keys, how="anti")
    cites = {
        tuple(names): json.dumps(_cites(pack, list(names), period), ensure_ascii=False)
        for names in lines["rule_params"].unique().to_list()
    }
    rules = pl.DataFrame(
        {"rule_params": [list(k) for k in cites], "rules": list(cites.values())},
        schema={"rule_params": pl.List(pl.Utf8), "rules": pl.Utf8},
    )
    frame = lines.join(rules, on="rule_params", how="left", nulls_equal=True).select(
        "person_id",
        "provider_id",
        pl.lit(period).alias("period"),
        pl.lit(jurisdiction).alias("jurisdiction"),
        "care_mode",
        *CLAIM_FIGURES,
        "cap_reason",
        pl.lit(pack.draft).alias("policy_draft"),
        _exclusions_json(),
        _ranges_json(),
        "rules",
    )
    bulk_upsert(s, m.ClaimLine, frame, ["person_id", "provider_id", "period", "care_mode"], analyze=False)
    return frame.height


def adjust_paid_lines(
    s: Session, paid: pl.DataFrame, claims: pl.DataFrame, jurisdiction: str, period: str, part: Part = WHOLE
) -> int:
    """A paid line is never edited. Where billing again gives it another amount (a late hospital record, a death
    reported late, a corrected care day), the difference from what was paid and adjusted so far becomes the line's
    next adjustment, paid (补发) or recovered (追回) in a later batch. A paid line that billing no longer gives at
    all is recovered whole. Returns the number of adjustments added."""
    adj = m.ClaimAdjustment
    done = records.frame(
        s,
        select(adj.claim_line_id, func.sum(adj.delta_fen), func.max(adj.revision))
        .join(m.ClaimLine, m.ClaimLine.id == adj.claim_line_id)
        .where(m.ClaimLine.period == period, adj.jurisdiction == jurisdiction, records.in_part(adj.person_id, part))
        .group_by(adj.claim_line_id),
        {"claim_line_id": pl.Int64, "adjusted_fen": pl.Int64, "revisions": pl.Int64},
    )
    keys = ["person_id", "provider_id", "care_mode"]
    changed = (
        paid.join(done, on="claim_line_id", how="left")
        .join(claims.select(*keys, pl.col("payable_fen").alias("after_fen")), on=keys, how="left")
        .select(
            "claim_line_id",
            (pl.col("revisions").fill_null(0) + 1).alias("revision"),
            *keys,
            pl.lit(period).alias("period"),
            pl.lit(jurisdiction).alias("jurisdiction"),
            (pl.col("paid_fen") + pl.col("adjusted_fen").fill_null(0)).alias("before_fen"),
            pl.col("after_fen").fill_null(0),
        )
        .with_columns((pl.col("after_fen") - pl.col("before_fen")).alias("delta_fen"))
        .filter(pl.col("delta_fen") != 0)
    )
    return bulk_upsert(s, adj, changed, ["claim_line_id", "revision"], update=False)


STATEMENT_LINES = {
    "person_id": pl.Utf8,
    "provider_id": pl.Utf8,
    "care_mode": pl.Utf8,
    "days_submitted": pl.Int64,
    "days_paid": pl.Int64,
    "days_excluded": pl.Int64,
    "payable_fen": pl.Int64,
    "personal_fen": pl.Int64,
    "over_cap_fen": pl.Int64,
    "cap_reason": pl.Utf8,
    "exclusions": pl.Utf8,
}


@task(
    cache_policy=NO_CACHE,
    **RETRY_TRANSIENT,
    task_run_name="statements {jurisdiction} {period} persons {part[0]}..{part[1]}",
)
def issue_statements(jurisdiction: str, period: str, part: Part = WHOLE) -> int:
    """Each beneficiary's monthly statement of the period's claim lines, written to the outbox. A statement is
    keyed by its content: issuing again adds nothing, and a line that changed gives a new statement."""
    pack = load_pack(jurisdiction)
    catalogue = reasons(pack)
    cl = m.ClaimLine
    with session_scope() as s:
        claims = records.frame(
            s,
            select(*(getattr(cl, c) for c in STATEMENT_LINES))
            .where(cl.period == period, cl.jurisdiction == jurisdiction, records.in_part(cl.person_id, part))
            .order_by(cl.person_id, cl.provider_id, cl.care_mode),
            STATEMENT_LINES,
        )
        return _enqueue_statements(s, claims, pack, catalogue, period)


def _enqueue_statements(
    s: Session, claims: pl.DataFrame, pack: Pack, catalogue: dict[str, dict[str, str]], period: str
) -> int:
    if claims.is_empty():
        return 0
    provider_names = dict(s.execute(select(m.Provider.provider_id, m.Provider.name)).tuples().all())
    wanted = claims["person_id"].unique().to_list()
    people: dict[str, m.Person] = {}
    for i in range(0, len(wanted), 10_000):
        people.update(
            (p.person_id, p) for p in s.scalars(select(m.Person).where(m.Person.person_id.in_(wanted[i : i + 10_000])))
        )
    outbox = Outbox(s)
    for (person_id,), group in claims.group_by("person_id", maintain_order=True):
        person = people.get(str(person_id))
        if person is None:
            continue
        lines = []
        for c in group.iter_rows(named=True):
            excl = [
                {"text": catalogue[reason]["zh"], "clause": catalogue[reason]["clause"], "days": days}
                for reason, days in sorted(json.loads(c["exclusions"] or "{}").items())
            ]
            if c["over_cap_fen"]:
                q = catalogue[c["cap_reason"]] if c.get("cap_reason") in catalogue else DEFAULT_CAP_REASON
                excl.append(
                    {"text": f"{q['zh']}（超出 {yuan(c['over_cap_fen'])} 元）", "clause": q["clause"], "days": 0}
                )
            lines.append(
                {
                    "provider_name": provider_names.get(c["provider_id"], c["provider_id"]),
                    "care_mode": c["care_mode"],
                    "days_submitted": c["days_submitted"],
                    "days_paid": c["days_paid"],
                    "days_excluded": c["days_excluded"],
                    "payable_fen": c["payable_fen"],
                    "personal_fen": c["personal_fen"],
                    "exclusions": excl,
                }
            )
        context = {
            "person_name": person.name,
            "id_number": person.id_number,
            "period": period,
            "lines": lines,
            "total_fen": int(group["payable_fen"].sum()),
            "document": pack.document,
            "draft": pack.draft,
        }
        digest = hashlib.sha256(json.dumps(lines, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:12]
        outbox.notify(
            person,
            kind="monthly_statement",
            dedupe_key=f"monthly_statement:{person_id}:{period}:{digest}",
            context=context,
        )
    return outbox.flush()
