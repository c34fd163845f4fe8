"""Payout approval, four eyes: before the month's batches are made, a person on the roster of approvers, other
than the one who started the run, releases or rejects what would be paid.

The proposal (every payee's lines and total) is published as a Prefect artifact and bound to a digest. Each
approver on the roster (`approver`, managed with `ltc approvers`) is sent a one-time code bound to them, that
proposal and that run, through their own channel; only the code's keyed hash is kept, and it expires with the
run's approval timeout. The flow pauses for a typed input in the Prefect UI (`PayoutApproval`) that must carry
the approver's name and their code. A name not on the roster, the person who started the run, a wrong, reused or
expired code, or another approver's code (which is then spent) is refused; every answer, refused or not, is
appended to the audit log with the proposal's digest. Batches are made only for the proposal that was approved.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from typing import Any, Literal
from zoneinfo import ZoneInfo

import polars as pl
from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.input import RunInput
from sqlalchemy import select
from sqlalchemy.orm import Session

from common import idvault
from common.formatting import yuan
from common.settings import get_settings, notify_url_for
from rules.errors import UserError
from storage import models as m
from storage.db import session_scope
from tasks import audit
from tasks.notices import render, send_one
from tasks.reports import artifact_key, markdown_table

CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read aloud and typed without doubt
CODE_LENGTH = 10  # 32**10 = 2**50 codes; a run takes a few answers before it gives up
TIMEZONE = ZoneInfo("Asia/Shanghai")  # what the approver reads an expiry in
HELD = "held"  # an approval notice's record: kept with its code masked, sent directly, never by the outbox


class PayoutApproval(RunInput):
    """The approver's decision on a month's payout, with the one-time code they were sent."""

    decision: Literal["approve", "reject"]
    approver: str
    code: str
    comment: str = ""


def normal_name(name: str) -> str:
    """A name as the roster keys it: spaces collapsed, lower case."""
    return " ".join(name.split()).lower()


def _normal_code(code: str) -> str:
    return re.sub(r"[\s\-]", "", code).upper()


def code_hash(code: str) -> str:
    """The keyed hash an approval code is kept as (HMAC-SHA256, a key of its own derived from LTC_ID_KEY)."""
    return hmac.new(idvault.derived_key("approval codes"), _normal_code(code).encode(), hashlib.sha256).hexdigest()


def new_code() -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)  # SQLite gives naive UTC back


# --- the roster -----------------------------------------------------------------------------------------------


class RosterError(UserError):
    """An approver who cannot be put on the roster as given."""


def check_channel(notify_url: str | None) -> str:
    """An approver's channel must be their own: their one-time codes must not reach a place that the person who
    starts a payment run can read too, such as the file outbox every other notice goes to by default."""
    url = (notify_url or "").strip()
    if not url:
        raise RosterError("an approver needs a channel of their own (--notify-url): their approval codes go there")
    shared = get_settings().default_notify_url
    if url.rstrip("/") == shared.rstrip("/") or url.startswith(f"{shared.rstrip('/')}?"):
        raise RosterError(
            "the shared file outbox cannot carry approval codes (whoever starts a run can read it): give the "
            "approver a channel of their own"
        )
    return url


def add_approver(s: Session, name: str, role: str, notify_url: str | None, language: str = "zh_CN") -> m.Approver:
    """Add a person to the roster, or bring them back with new details; audited."""
    key = normal_name(name)
    if not key:
        raise RosterError("an approver needs a name")
    notify_url = check_channel(notify_url)
    approver = s.get(m.Approver, key)
    if approver is None:
        approver = m.Approver(name=key, display_name=" ".join(name.split()))
        s.add(approver)
    approver.display_name, approver.role, approver.notify_url = " ".join(name.split()), role, notify_url
    approver.language, approver.active, approver.removed_at = language, True, None
    audit.record(s, "approver.add", key, {"role": role, "channel": _channel_kind(notify_url)})
    return approver


def remove_approver(s: Session, name: str) -> bool:
    """Take a person off the roster (kept, inactive); their unused codes can no longer be used. Audited."""
    approver = s.get(m.Approver, normal_name(name))
    if approver is None or not approver.active:
        return False
    approver.active, approver.removed_at = False, dt.datetime.now(dt.UTC)
    audit.record(s, "approver.remove", approver.name, {})
    return True


def roster(s: Session, active_only: bool = True) -> list[m.Approver]:
    stmt = select(m.Approver).order_by(m.Approver.name)
    if active_only:
        stmt = stmt.where(m.Approver.active.is_(True))
    return list(s.scalars(stmt))


def _channel_kind(url: str | None) -> str:
    """What the audit log says of a channel: its scheme or secret form, never the URL (it may carry a token)."""
    if not url:
        return "outbox"
    return url.split(":", 1)[0]


# --- a payout's proposal, codes and answers ---------------------------------------------------------------------


def proposal_sha256(lines: pl.DataFrame) -> str:
    """The digest of a payout proposal: every line (payee, claim line or adjustment, fen), in a fixed order."""
    columns = lines.select("provider_id", "claim_line_id", "adjustment_id", "payable_fen")
    return audit.content_sha256(
        sorted((str(p), int(c or 0), int(a or 0), int(f)) for p, c, a, f in columns.iter_rows())
    )


def _by_payee(lines: pl.DataFrame) -> pl.DataFrame:
    return (
        lines.group_by("provider_id")
        .agg(pl.len().alias("lines"), pl.col("payable_fen").sum().alias("fen"))
        .sort("provider_id")
    )


@task(cache_policy=NO_CACHE)
def publish_proposal(lines: pl.DataFrame, jurisdiction: str, period: str) -> str:
    """The proposal as an artifact for the approver: each payee's lines and total (internal ids only)."""
    rows = [
        {"payee": r["provider_id"], "lines": r["lines"], "total (yuan)": yuan(int(r["fen"]))}
        for r in _by_payee(lines).iter_rows(named=True)
    ]
    total = int(lines["payable_fen"].sum()) if lines.height else 0
    key = artifact_key("payout-proposal", jurisdiction, period)
    create_markdown_artifact(
        f"# Payout proposal {jurisdiction} {period}\n\nTotal {yuan(total)} yuan to {len(rows)} payees, digest "
        f"`{proposal_sha256(lines)}`.\n\nEach approver on the roster has been sent a one-time code: resume this run "
        f"with your decision, your name and your code.\n\n{markdown_table(rows)}",
        key=key,
        description=f"payout awaiting approval: {jurisdiction} {period}",
    )
    return key


def _run_url(flow_run_id: str) -> str:
    from prefect.settings import PREFECT_UI_URL

    base = PREFECT_UI_URL.value()
    return f"{base.rstrip('/')}/runs/flow-run/{flow_run_id}" if base else ""


@task(cache_policy=NO_CACHE)
def issue_codes(
    lines: pl.DataFrame,
    jurisdiction: str,
    period: str,
    flow_run_id: str,
    run_name: str,
    started_by: str,
    timeout_hours: float,
) -> dict[str, Any]:
    """A one-time code for each approver on the roster but the person who started the run, kept hashed and
    recorded (with its notice, the code masked) in one transaction, then sent to each approver's channel.
    Returns who was issued a code, and whose delivery failed and why."""
    digest = proposal_sha256(lines)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    expires = now + dt.timedelta(hours=timeout_hours)
    total_fen = int(lines["payable_fen"].sum()) if lines.height else 0
    summary: dict[str, Any] = {
        "jurisdiction": jurisdiction,
        "period": period,
        "payees": _by_payee(lines).height,
        "lines": lines.height,
        "total_fen": total_fen,
        "proposal_sha256": digest,
        "run_name": run_name,
        "flow_run_id": flow_run_id,
        "run_url": _run_url(flow_run_id),
        "expires_at": f"{expires.astimezone(TIMEZONE):%Y-%m-%d %H:%M}",
        "started_by": started_by,
    }
    to_send: list[tuple[m.Notice, str, str]] = []
    failed: dict[str, str] = {}
    with session_scope() as s:
        have = set(
            s.scalars(
                select(m.ApprovalCode.approver).where(
                    m.ApprovalCode.flow_run_id == flow_run_id, m.ApprovalCode.proposal_sha256 == digest
                )
            )
        )
        issued = sorted(have)  # codes this run already sent (a retried task sends them once)
        for a in roster(s):
            if a.name == normal_name(started_by) or a.name in have:
                continue
            try:
                channel = check_channel(a.notify_url)
            except RosterError as e:
                failed[a.name] = str(e)
                continue
            code = new_code()
            s.add(
                m.ApprovalCode(
                    jurisdiction=jurisdiction,
                    period=period,
                    flow_run_id=flow_run_id,
                    proposal_sha256=digest,
                    approver=a.name,
                    code_hash=code_hash(code),
                    issued_at=now,
                    expires_at=expires,
                )
            )
            context = {**summary, "approver_name": a.display_name, "approver": a.name}
            subject, kept = render("payout_approval", a.language, {**context, "code": "*" * CODE_LENGTH})
            _, body = render("payout_approval", a.language, {**context, "code": code})
            notice = m.Notice(
                dedupe_key=f"payout_approval:{flow_run_id}:{digest[:16]}:{a.name}"[:160],
                kind="payout_approval",
                recipient_type="approver",
                recipient_id=a.name[:32],
                url=notify_url_for(channel),
                language=a.language,
                subject=subject,
                body=kept,
                status=HELD,
                attempts=0,
            )
            s.add(notice)
            to_send.append((notice, subject, body))
            issued.append(a.name)
        audit.record(
            s,
            "payment.approval.codes_issued",
            f"{jurisdiction} {period}",
            {
                "approvers": issued,
                "proposal_sha256": digest,
                "expires_at": expires.isoformat(),
                "flow_run": flow_run_id,
            },
        )
        s.flush()
        sends = [(n.id, n.url, n.recipient_id, n.dedupe_key, n.language, subj, body) for n, subj, body in to_send]
    for notice_id, url, recipient, key, language, subject, body in sends:
        error = send_one(notice_id, url, "payout_approval", recipient, subject, body, key, language)
        with session_scope() as s:
            held = s.get(m.Notice, notice_id)
            assert held is not None
            held.attempts = 1
            if error is None:
                held.status, held.sent_at = "sent", dt.datetime.now(dt.UTC)
            else:
                held.status, held.last_error = "failed", error
                failed[recipient] = error
    waiting = {k: summary[k] for k in ("jurisdiction", "period", "payees", "lines", "proposal_sha256", "run_name")}
    waiting |= {"flow_run_id": flow_run_id, "total_yuan": yuan(total_fen)}
    return {"issued": issued, "failed": failed, "proposal_sha256": digest, "waiting": waiting}


def announce_waiting(codes: dict[str, Any]) -> None:
    """Tell the Prefect server that a payout waits (event `ltc.payout.awaiting-approval`, with the run's own
    resources related to it): the operators' automation notifies the operations channel."""
    from prefect.events import emit_event

    w = codes["waiting"]
    emit_event(
        event="ltc.payout.awaiting-approval",
        resource={
            "prefect.resource.id": f"ltc.payout.{w['jurisdiction']}.{w['period']}",
            "prefect.resource.name": f"payout {w['jurisdiction']} {w['period']}",
        },
        payload={**w, "approvers": ", ".join(codes["issued"])},
    )


@task(cache_policy=NO_CACHE)
def judge_answer(
    jurisdiction: str, period: str, flow_run_id: str, digest: str, answer: dict[str, Any], started_by: str
) -> dict[str, Any]:
    """Whether an answer releases (or rejects) the payout: a rostered approver other than the one who started the
    run, with their own unused, unexpired code for this run and proposal. The code is spent by its use (and
    a code typed by another person than its owner is spent too). Audited, refused or not, in the same
    transaction."""
    name = normal_name(str(answer.get("approver") or ""))
    decision = str(answer.get("decision"))
    now = dt.datetime.now(dt.UTC)
    reason: str | None = None
    with session_scope() as s:
        approver = s.get(m.Approver, name) if name else None
        if name == normal_name(started_by):
            reason = "started this run and cannot approve its payout"
        elif approver is None or not approver.active:
            reason = "is not on the roster of approvers"
        else:
            row = s.scalar(
                select(m.ApprovalCode).where(m.ApprovalCode.code_hash == code_hash(str(answer.get("code") or "")))
            )
            if row is None or row.flow_run_id != flow_run_id or row.proposal_sha256 != digest:
                reason = "gave a code that is not a code for this run's proposal"
            elif row.approver != name:
                reason = f"gave the code of another approver ({row.approver}); that code is now spent"
                if row.used_at is None:
                    row.used_at, row.outcome = now, "burned"
            elif row.used_at is not None:
                reason = "gave a code that was already used"
            elif _utc(row.expires_at) <= now:
                reason = "gave a code that has expired"
            else:
                row.used_at, row.outcome = now, decision
        audit.record(
            s,
            f"payment.approval.{decision if reason is None else 'refused'}",
            f"{jurisdiction} {period}",
            {
                "started_by": started_by,
                "proposal_sha256": digest,
                "flow_run": flow_run_id,
                "approver": str(answer.get("approver") or ""),
                "decision": decision,
                "comment": str(answer.get("comment") or ""),
                **({"refused": reason} if reason else {}),
            },
        )
    return {"accepted": reason is None, "decision": decision, "approver": name, "reason": reason}


@task(cache_policy=NO_CACHE)
def record_approval(
    jurisdiction: str, period: str, outcome: str, answer: dict[str, Any] | None, started_by: str, digest: str
) -> None:
    """Append an approval event that is not an answer (no approver to ask, the payout changed) to the audit log."""
    with session_scope() as s:
        audit.record(
            s,
            f"payment.approval.{outcome}",
            f"{jurisdiction} {period}",
            {"started_by": started_by, "proposal_sha256": digest, **(answer or {})},
        )
