"""The demo pipeline: every stage, in order, through Prefect, on synthetic files; then a summary."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from typing import Any

from rich.console import Console
from sqlalchemy import func, select

from common.formatting import yuan
from common.settings import get_settings
from flows.decide_eligibility import decide_eligibility
from flows.intake import intake
from flows.monthly_cycle import monthly_cycle
from flows.record_assessments import record_assessments
from flows.schedule_assessments import schedule_assessments
from ltc.demo import PROFILES, DemoSize, month_files, registry_files, results_file
from rules.engine import PACKS_DIR, load_pack, overrides_dir, period_bounds
from storage import models as m
from storage.db import session_scope, upgrade


def run_demo(
    jurisdiction: str, period: str, seed: int, size: DemoSize, console: Console | None = None
) -> dict[str, Any]:
    con = console or Console(quiet=True)
    with con.status("") as status:
        prepare_demo(jurisdiction, period, seed, size, status.update)
        status.update(f"monthly cycle {period}: billing, payment, notices")
        monthly_cycle(jurisdiction, period)
    return summary(jurisdiction, period)


def prepare_demo(
    jurisdiction: str, period: str, seed: int, size: DemoSize, say: Callable[[str], object] = lambda _: None
) -> None:
    """Everything of the demo before the monthly cycle: the synthetic registry loaded, assessments scheduled and
    recorded, eligibility decided, the month's care days, hospital stays and deaths loaded; each through its flow."""
    pack = load_pack(jurisdiction)
    pack.check_period(period)
    first, _ = period_bounds(period)
    folder = get_settings().demo_dir / jurisdiction
    upgrade()
    _install_demo_overrides(jurisdiction)
    say("writing the synthetic registry")
    files = registry_files(folder, jurisdiction, period, size, seed)
    for kind in ("persons", "providers", "agencies", "assessors", "contributions", "applications"):
        say(f"intake: {kind}")
        intake(kind, str(files[kind]))
    say("scheduling assessments")
    schedule_assessments(jurisdiction)
    say("recording assessment results")
    record_assessments(str(results_file(folder, jurisdiction, seed)), jurisdiction)
    say("deciding eligibility")
    decide_eligibility(jurisdiction, first - dt.timedelta(days=1))
    say("intake: care days, hospital stays, deaths")
    month = month_files(folder, jurisdiction, period, seed)
    intake("persons", str(month["deaths"]))
    intake("hospital_stays", str(month["hospital_stays"]))
    intake("care_days", str(month["care_days"]))


def _install_demo_overrides(jurisdiction: str) -> None:
    """A pack that needs values an operator must supply (Jinjiang's grade rates) gets the demo's labelled,
    illustrative values, unless the operator's own override file is already in place."""
    name = PROFILES[jurisdiction].overrides
    target_dir = overrides_dir()
    if not name or target_dir is None:
        return
    target = target_dir / f"{jurisdiction}.yaml"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PACKS_DIR / jurisdiction / name, target)


def summary(jurisdiction: str, period: str) -> dict[str, Any]:
    """What the record holds for a pooling area and period, read back from the database."""
    pack = load_pack(jurisdiction)

    with session_scope() as s:
        person = select(m.Person.person_id).where(m.Person.jurisdiction == jurisdiction)
        apps = s.scalar(select(func.count()).where(m.Application.person_id.in_(person)))
        assessed = s.scalar(
            select(func.count())
            .select_from(m.Assessment)
            .join(m.Application)
            .where(m.Application.person_id.in_(person), m.Assessment.status == "done")
        )
        dec = m.EligibilityDecision
        approved = s.scalar(select(func.count()).where(dec.jurisdiction == jurisdiction, dec.approved.is_(True)))
        denied = s.scalar(select(func.count()).where(dec.jurisdiction == jurisdiction, dec.approved.is_(False)))
        cl = m.ClaimLine
        claims = s.execute(
            select(
                func.count(),
                func.sum(cl.days_paid),
                func.sum(cl.days_excluded),
                func.sum(cl.submitted_fen),
                func.sum(cl.payable_fen),
            ).where(cl.jurisdiction == jurisdiction, cl.period == period)
        ).one()
        by_reason: dict[str, int] = {}
        for excl in s.scalars(select(cl.exclusions).where(cl.jurisdiction == jurisdiction, cl.period == period)):
            for reason, n in excl.items():
                if not reason.endswith("_FEN"):
                    by_reason[reason] = by_reason.get(reason, 0) + int(n)
        pb = m.PaymentBatch
        batches = s.execute(
            select(func.count(), func.sum(pb.total_fen)).where(pb.jurisdiction == jurisdiction, pb.period == period)
        ).one()
        notices = dict(s.execute(select(m.Notice.status, func.count()).group_by(m.Notice.status)).tuples().all())
        quarantined = s.scalar(select(func.count()).select_from(m.QuarantinedRow))
        fees = s.execute(
            select(func.sum(m.Assessment.fee_fund_fen), func.sum(m.Assessment.fee_applicant_fen))
            .join(m.Application)
            .where(m.Application.person_id.in_(person))
        ).one()
    rows = [
        ("applications", apps),
        ("assessments with results", assessed),
        ("assessment fees: fund / applicant (yuan)", f"{yuan(int(fees[0] or 0))} / {yuan(int(fees[1] or 0))}"),
        ("eligibility: approved", approved),
        ("eligibility: denied", denied),
        ("claim lines", claims[0]),
        ("days paid", claims[1] or 0),
        ("days excluded", claims[2] or 0),
        *((f"  of which {reason}", n) for reason, n in sorted(by_reason.items())),
        ("amount payable (yuan)", yuan(int(claims[4] or 0), grouping=True)),
        ("payment batches", batches[0]),
        ("amount in batches (yuan)", yuan(int(batches[1] or 0), grouping=True)),
        ("notices sent", notices.get("sent", 0)),
        ("notices pending / failed", f"{notices.get('pending', 0)} / {notices.get('failed', 0)}"),
        ("rows quarantined", quarantined),
    ]
    notes = [f"policy: {pack.status}"]
    if pack.draft:
        notes.append("DRAFT POLICY: every decision, claim and notice under this pack is marked as a draft")
    if pack.assumptions():
        notes.append("assumptions (no document fixes these): " + ", ".join(pack.assumptions()))
    if pack.operator_values():
        notes.append(
            f"values supplied by the operator ({', '.join(pack.overrides)}): " + ", ".join(pack.operator_values())
        )
    notes.append(f"notices: {get_settings().outbox_dir}   bank file: {get_settings().bank_dir}")
    return {
        "pack": pack.name,
        "rows": rows,
        "notes": notes,
        "claim_lines": claims[0],
        "payable_fen": int(claims[4] or 0),
        "batches": batches[0],
        "batch_total_fen": int(batches[1] or 0),
        "approved": approved,
        "denied": denied,
    }
