"""Notices: render them from templates, write them to the outbox, deliver them after commit.

A notice is rendered and added to the outbox (`Notice`) in the same transaction as the decision it reports, so
a decision is never committed without its notice, nor a notice without its decision. `deliver_pending` sends
what the outbox holds with apprise, one recipient per call, and records each result in its own transaction.

The `outbox://localhost/<absolute dir>` scheme is a custom apprise notification registered here: it writes
each notice as a UTF-8 text file into that directory, so a demo or a test delivers without leaving the
machine.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import io
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import apprise
import polars as pl
from apprise.decorators import notify as apprise_notification
from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    UndefinedError,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.channels import SecretMissing, resolve_secret
from common.faults import failpoint
from common.formatting import mask_id, yuan
from common.settings import notify_url_for
from storage.db import session_scope, upsert
from storage.models import Agency, Notice, Person, Provider

# Delivery outcomes are kept on the notice row (status, attempts, last_error); apprise's own chatter is not
# passed on to the run log.
logging.getLogger("apprise").propagate = False

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
DEFAULT_LANGUAGE = "zh_CN"
OUTBOX_SCHEME = "outbox"
MAX_ATTEMPTS = 5
RETRY_BASE_SECONDS = int(os.environ.get("LTC_NOTICE_RETRY_SECONDS", "60"))
MAX_ERROR_CHARS = 2000

# The keys each kind's template receives; all of them must be present (values may be None where noted).
CONTEXT_KEYS: dict[str, tuple[str, ...]] = {
    "application_received": ("person_name", "id_number", "application_id", "received_on"),
    "assessment_scheduled": (
        "person_name",
        "id_number",
        "application_id",
        "agency_name",
        "scheduled_on",
        "what_to_prepare",
    ),
    "eligibility_decision": (
        "person_name",
        "id_number",
        "application_id",
        "approved",
        "grade",
        "start_date",
        "rates",
        "reasons",
        "document",
        "assumptions",
        "draft",
        "counted",
    ),
    "assessment_reminder": (
        "person_name",
        "id_number",
        "application_id",
        "agency_name",
        "scheduled_on",
        "starts_at",
        "what_to_prepare",
    ),
    "agency_visit": (
        "agency_name",
        "application_id",
        "person_name",
        "id_number",
        "scheduled_on",
        "starts_at",
        "assessors",
        "reason",
    ),
    "monthly_statement": ("person_name", "id_number", "period", "lines", "total_fen", "document", "draft"),
    "payout_approval": (
        "approver_name",
        "approver",
        "jurisdiction",
        "period",
        "payees",
        "lines",
        "total_fen",
        "proposal_sha256",
        "run_name",
        "flow_run_id",
        "run_url",
        "code",
        "expires_at",
        "started_by",
    ),
    "remittance_advice": (
        "provider_name",
        "period",
        "batch_ref",
        "bank_account",
        "total_fen",
        "lines",
        "document",
        "draft",
    ),
}

GRADE_NAMES: dict[str, dict[int, str]] = {
    "zh": {
        0: "基本正常",
        1: "轻度失能",
        2: "中度失能",
        3: "重度失能Ⅰ级",
        4: "重度失能Ⅱ级",
        5: "重度失能Ⅲ级",
    },
    "en": {
        0: "basically normal",
        1: "mild disability",
        2: "moderate disability",
        3: "severe disability, grade I",
        4: "severe disability, grade II",
        5: "severe disability, grade III",
    },
}
NO_GRADE = {"zh": "未评定", "en": "not assessed"}
CARE_MODES: dict[str, dict[str, str]] = {
    "zh": {"institutional": "机构护理", "community": "社区护理", "home": "居家护理"},
    "en": {"institutional": "institutional care", "community": "community care", "home": "home care"},
}
MONTHS_EN = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


# --- filters ------------------------------------------------------------------------------------------------


def _lang(language: str) -> str:
    """The filters' language family: "en" for en / en_US, else "zh"."""
    return "en" if language.lower().startswith("en") else "zh"


def grade_name(grade: int | None, language: str = DEFAULT_LANGUAGE) -> str:
    """The national standard's name of a disability grade (0-5): 3 -> 重度失能Ⅰ级."""
    lang = _lang(language)
    if grade is None:
        return NO_GRADE[lang]
    try:
        return GRADE_NAMES[lang][int(grade)]
    except KeyError:
        raise ValueError(f"unknown disability grade {grade!r}") from None


def care_mode_name(mode: str, language: str = DEFAULT_LANGUAGE) -> str:
    """institutional -> 机构护理, home -> 居家护理."""
    try:
        return CARE_MODES[_lang(language)][mode]
    except KeyError:
        raise ValueError(f"unknown care mode {mode!r}") from None


def format_date(value: dt.date | str, language: str = DEFAULT_LANGUAGE) -> str:
    """A date as 2024年3月5日 or 5 March 2024; an ISO string is read as a date."""
    day = dt.date.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(day, dt.date):
        raise TypeError(f"expected a date, got {value!r}")
    if _lang(language) == "en":
        return f"{day.day} {MONTHS_EN[day.month - 1]} {day.year}"
    return f"{day.year}年{day.month}月{day.day}日"


def format_period(period: str, language: str = DEFAULT_LANGUAGE) -> str:
    """A billing period YYYY-MM as 2024年3月 or March 2024."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", str(period))
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"a period is YYYY-MM, got {period!r}")
    year, month = int(match.group(1)), int(match.group(2))
    if _lang(language) == "en":
        return f"{MONTHS_EN[month - 1]} {year}"
    return f"{year}年{month}月"


FILTERS: dict[str, Any] = {
    "yuan": yuan,
    "mask_id": mask_id,
    "grade_name": grade_name,
    "care_mode": care_mode_name,
    "date": format_date,
    "period": format_period,
}


# --- rendering ----------------------------------------------------------------------------------------------


@functools.cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    return env


def _template(kind: str, language: str) -> Template:
    env = environment()
    candidates = [language, re.split(r"[_-]", language)[0], DEFAULT_LANGUAGE]
    for lang in dict.fromkeys(c for c in candidates if c):
        try:
            return env.get_template(f"{lang}/{kind}.txt.j2")
        except TemplateNotFound:
            continue
    raise TemplateNotFound(f"{DEFAULT_LANGUAGE}/{kind}.txt.j2")


def render(kind: str, language: str, context: dict[str, Any]) -> tuple[str, str]:
    """Render a notice: (subject, body). The template's first line is the subject, the rest the body.

    A language without a template falls back to zh_CN. A missing context key raises jinja2.UndefinedError.
    """
    missing = [key for key in CONTEXT_KEYS.get(kind, ()) if key not in context]
    if missing:
        raise UndefinedError(f"notice {kind!r} is missing context keys: {', '.join(missing)}")
    text = _template(kind, language).render(context)
    subject, _, body = text.partition("\n")
    return subject.strip(), body.lstrip("\n")


QUARANTINED = "quarantined"
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
log = logging.getLogger(__name__)


def _kept_context(value: Any, key: str = "") -> Any:
    """A context as JSON, every ID number masked: what a quarantined notice keeps to be rendered again."""
    if isinstance(value, Mapping):
        return {str(k): _kept_context(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_kept_context(v, key) for v in value]
    if key == "id_number" and value is not None:
        return mask_id(str(value))
    if isinstance(value, dt.date):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _restored_context(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _restored_context(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restored_context(v) for v in value]
    if isinstance(value, str) and ISO_DATE.match(value):
        return dt.date.fromisoformat(value)
    return value


def _row(
    kind: str, recipient_type: str, recipient_id: str, url: str, language: str, dedupe_key: str, context: dict[str, Any]
) -> dict[str, Any]:
    """The outbox row of a notice. A template that cannot render the context (a missing field, a missing
    template) quarantines the notice: it is kept, never sent blank, and the decision it reports still commits."""
    row = {
        "dedupe_key": dedupe_key,
        "kind": kind,
        "recipient_type": recipient_type,
        "recipient_id": recipient_id,
        "url": url,
        "language": language,
        "status": "pending",
        "attempts": 0,
        "last_error": None,
        "context": None,
    }
    try:
        subject, body = render(kind, language, context)
    except TemplateError as e:
        reason = f"template {language}/{kind} cannot be rendered: {e}"[:MAX_ERROR_CHARS]
        log.error("notice %s to %s:%s quarantined: %s", dedupe_key, recipient_type, recipient_id, reason)
        return {
            **row,
            "subject": "",
            "body": "",
            "status": QUARANTINED,
            "last_error": reason,
            "context": _kept_context(context),
        }
    return {**row, "subject": subject, "body": body}


def render_quarantined() -> dict[str, int]:
    """Render the quarantined notices again (after their template or data is fixed). A notice that now renders
    becomes pending and is delivered by the next send; one that still fails keeps its new reason."""
    released = still = 0
    with session_scope() as session:
        for notice in session.scalars(select(Notice).where(Notice.status == QUARANTINED).order_by(Notice.id)):
            try:
                notice.subject, notice.body = render(
                    notice.kind, notice.language, _restored_context(notice.context or {})
                )
            except TemplateError as e:
                notice.last_error = f"template {notice.language}/{notice.kind} cannot be rendered: {e}"[
                    :MAX_ERROR_CHARS
                ]
                still += 1
                continue
            notice.status, notice.context, notice.last_error = "pending", None, None
            released += 1
    return {"released": released, "quarantined": still}


def enqueue(
    session: Session,
    *,
    kind: str,
    recipient_type: str,
    recipient_id: str,
    url: str,
    language: str,
    dedupe_key: str,
    context: dict[str, Any],
) -> None:
    """Render a notice and add it to the outbox in the caller's transaction; an existing dedupe_key wins."""
    row = _row(kind, recipient_type, recipient_id, url, language, dedupe_key, context)
    upsert(session, Notice, [row], keys=["dedupe_key"], update=False)


def _recipient(recipient: Person | Provider | Agency) -> tuple[str, str]:
    if isinstance(recipient, Person):
        return "person", recipient.person_id
    if isinstance(recipient, Provider):
        return "provider", recipient.provider_id
    return "agency", recipient.agency_id


def notify(
    session: Session, recipient: Person | Provider | Agency, *, kind: str, dedupe_key: str, context: dict[str, Any]
) -> None:
    """Enqueue a notice to a person, a provider or an agency, at the channel and in the language on record."""
    recipient_type, recipient_id = _recipient(recipient)
    url = notify_url_for(recipient.notify_url)
    enqueue(
        session,
        kind=kind,
        recipient_type=recipient_type,
        recipient_id=recipient_id,
        url=url,
        language=recipient.language,
        dedupe_key=dedupe_key,
        context=context,
    )


class Outbox:
    """Many notices rendered in memory and written with one bulk insert, in the caller's transaction (for a
    month's statements: one per beneficiary)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.rows: list[dict[str, Any]] = []

    def notify(
        self, recipient: Person | Provider | Agency, *, kind: str, dedupe_key: str, context: dict[str, Any]
    ) -> None:
        recipient_type, recipient_id = _recipient(recipient)
        url = notify_url_for(recipient.notify_url)
        self.rows.append(_row(kind, recipient_type, recipient_id, url, recipient.language, dedupe_key, context))

    def flush(self) -> int:
        from storage.bulk import bulk_upsert

        if not self.rows:
            return 0
        n = bulk_upsert(self.session, Notice, pl.DataFrame(self.rows), ["dedupe_key"], update=False)
        self.rows = []
        return n


__all__ = ["Outbox", "deliver_pending", "enqueue", "mask_id", "notify", "render", "yuan"]


# --- the file outbox ----------------------------------------------------------------------------------------


def _safe_file_name(name: str) -> str:
    """A single path component made of safe characters (CJK kept), never empty, never hidden."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = re.sub(r"[^\w.\-]+", "_", base).strip("._")[:120]
    return cleaned or "notice"


@apprise_notification(on=OUTBOX_SCHEME, name="LTC file outbox")
def write_outbox(
    body: str, title: str, notify_type: str, *args: Any, meta: Mapping[str, Any] | None = None, **kwargs: Any
) -> bool:
    """apprise hook for outbox://localhost/<abs dir>?name=FILE: write title, a blank line and the body.

    apprise strips the body's final newline; the file gets one back.
    """
    try:
        meta = meta or {}
        directory = Path(unquote(str(meta.get("fullpath") or "")))
        if not directory.is_absolute():
            return False
        qsd = meta.get("qsd") or {}
        name = _safe_file_name(str(qsd.get("name") or f"{title or 'notice'}.txt"))
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".txt")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(f"{title}\n\n{body}" if body.endswith("\n") else f"{title}\n\n{body}\n")
            os.replace(tmp, directory / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except Exception:
        return False
    return True


# --- delivery -----------------------------------------------------------------------------------------------


def delivery_url(url: str, notice_id: int, kind: str, recipient_id: str) -> str:
    """The URL a notice is sent to; an outbox URL gets the file name `<id>-<kind>-<recipient>.txt`."""
    if url.split("://", 1)[0].lower() != OUTBOX_SCHEME:
        return url
    name = quote(f"{notice_id}-{kind}-{recipient_id}.txt", safe="")
    return f"{url}{'&' if '?' in url else '?'}name={name}"


EMAIL_SCHEMES = ("mailto", "mailtos")


def as_html(title: str, body: str) -> str:
    """A notice's text as a small HTML document: each paragraph a <p>, line breaks kept, everything escaped."""
    paragraphs = [p for p in body.strip().split("\n\n") if p.strip()]
    inner = "\n".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>'
        f'<body style="font-family:sans-serif;line-height:1.6">\n<h3>{html.escape(title)}</h3>\n{inner}\n</body></html>'
    )


def _send(url: str, title: str, body: str) -> str | None:
    """Send one notice to one URL; None on success, else why it failed. Email goes as HTML with a plain-text
    alternative (apprise builds the multipart/alternative message); other channels get the text."""
    log = io.StringIO()
    try:
        url = resolve_secret(url)
    except SecretMissing as e:
        return str(e)
    email = url.split("://", 1)[0].lower() in EMAIL_SCHEMES
    try:
        with apprise.LogCapture(path=None, level=logging.DEBUG, fmt="%(levelname)s %(message)s") as log:
            sender = apprise.Apprise()
            if not sender.add(url):
                return "the notification URL is invalid or its scheme is not supported"
            if email:
                result = sender.notify(title=title, body=as_html(title, body), body_format=apprise.NotifyFormat.HTML)
            else:
                result = sender.notify(title=title, body=body)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
    if result is True:
        return None
    # Only apprise's warnings: its debug lines can quote request URLs, and some services put tokens in them.
    lines = [line for line in log.getvalue().splitlines() if line.startswith(("WARNING", "ERROR", "CRITICAL"))]
    reason = "no notification service accepted the notice" if result is None else "delivery failed"
    return "; ".join([reason, *lines])[:MAX_ERROR_CHARS]


def retry_delay(attempts: int) -> dt.timedelta:
    """How long a notice waits after its n-th failed attempt: RETRY_BASE_SECONDS doubled each time, at most a
    day (60 s, 2 min, 4 min, 8 min, ... with the default)."""
    return dt.timedelta(seconds=min(RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), 86400))


def footer(notice_id: int, dedupe_key: str, language: str) -> str:
    """The line every delivered notice ends with: its number and its dedupe key, so that the rare second copy
    after a crash can be recognised as the same notice."""
    if _lang(language) == "en":
        return f"Notice no. {notice_id} (key {dedupe_key})"
    return f"通知编号：{notice_id}（查重键：{dedupe_key}）"


def send_one(
    notice_id: int, url: str, kind: str, recipient_id: str, subject: str, body: str, key: str, lang: str
) -> str | None:
    """Send one notice now, outside the outbox's queue (for a notice whose delivered text must not be kept in the
    record, such as an approval code); None on success, else why it failed."""
    text = f"{body.rstrip()}\n\n{footer(notice_id, key, lang)}\n"
    return _send(delivery_url(url, notice_id, kind, recipient_id), subject, text)


def _due(now: dt.datetime) -> Any:
    return (Notice.status == "pending") & ((Notice.next_attempt_at.is_(None)) | (Notice.next_attempt_at <= now))


def deliver_pending(limit: int = 1000, now: dt.datetime | None = None) -> dict[str, int]:
    """Send up to `limit` notices that are due (oldest first), one recipient per call, and record each result in
    the transaction that holds the notice while it is sent.

    A notice that was sent is marked "sent" with its `sent_at`. A failure raises `attempts`, keeps the reason in
    `last_error` and sets `next_attempt_at` (`retry_delay`); after MAX_ATTEMPTS failures the notice is marked
    "failed", for an operator (`ltc review`, and the send-notices run's log). Returns {"sent": sent in this run,
    "failed": failed attempts in this run, "pending": pending notices left, due or not}.
    """
    now = now or dt.datetime.now(dt.UTC)
    with session_scope() as session:
        batch = session.execute(
            select(
                Notice.id,
                Notice.url,
                Notice.kind,
                Notice.recipient_id,
                Notice.subject,
                Notice.body,
                Notice.dedupe_key,
                Notice.language,
            )
            .where(_due(now))
            .order_by(Notice.id)
            .limit(limit)
        ).all()

    sent = failed = 0
    for notice_id, url, kind, recipient_id, subject, body, dedupe_key, language in batch:
        with session_scope() as session:
            # The notice is held while it is sent: another run delivering at the same time skips it (PostgreSQL:
            # SKIP LOCKED; SQLite: the write lock), and a run killed mid-send releases it with its connection.
            mine = select(Notice).where(Notice.id == notice_id, _due(now))
            if session.get_bind().dialect.name == "postgresql":
                mine = mine.with_for_update(skip_locked=True)
            notice = session.scalar(mine)
            if notice is None:  # sent or being sent by another run since the batch was read
                continue
            text = f"{body.rstrip()}\n\n{footer(notice_id, dedupe_key, language)}\n"
            error = _send(delivery_url(url, notice_id, kind, recipient_id), subject, text)
            failpoint("notices.sent.before_record")
            if error is None:
                notice.status = "sent"
                notice.sent_at = dt.datetime.now(dt.UTC)
                notice.next_attempt_at = None
                sent += 1
            else:
                notice.attempts += 1
                notice.last_error = error
                notice.next_attempt_at = now + retry_delay(notice.attempts)
                if notice.attempts >= MAX_ATTEMPTS:
                    notice.status = "failed"
                    notice.next_attempt_at = None
                failed += 1

    with session_scope() as session:
        left = session.scalar(select(func.count()).select_from(Notice).where(Notice.status == "pending")) or 0
    return {"sent": sent, "failed": failed, "pending": left}


__all__ = [
    "CONTEXT_KEYS",
    "QUARANTINED",
    "deliver_pending",
    "delivery_url",
    "enqueue",
    "mask_id",
    "render",
    "render_quarantined",
    "write_outbox",
    "yuan",
]
