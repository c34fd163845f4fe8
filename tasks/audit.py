"""The audit log: every decision and every read of a person's record, hash-chained.

`record(s, action, subject, detail)` appends an entry in the caller's transaction, so an entry exists exactly when
the decision it records is committed. Each entry's hash covers the hash of the entry before it and its own
content; `verify` walks the chain and names the first entry that does not check out (an edited row, a removed
row, a row inserted out of turn). The database also refuses UPDATE and DELETE on the table.

Appends are serialised: on PostgreSQL by a transaction-scoped advisory lock, on SQLite by the write lock every
transaction takes when it begins. Two chains can never fork: `prev_hash` is unique.

Subjects and details carry internal ids (person_id, application_id, batch_ref), never an ID number.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from common.privacy import mask_ids
from storage.models import AuditEntry

GENESIS = "0" * 64
ACTOR_ENV = "LTC_ACTOR"
# A fixed key for pg_advisory_xact_lock: the audit chain's tail.
ADVISORY_KEY = 7_420_031


def actor() -> str:
    """Who acts: `LTC_ACTOR` (set by a deployment or an operator's shell), else the OS user at this host; with the
    Prefect flow run, when there is one."""
    who = os.environ.get(ACTOR_ENV) or f"{getpass.getuser()}@{socket.gethostname()}"
    try:
        from prefect.runtime import flow_run

        run = flow_run.get_id()
    except Exception:  # outside Prefect, or its runtime unavailable: the person or program alone
        run = None
    return f"{who} (flow run {run})" if run else who


def _canonical(at: dt.datetime, who: str, action: str, subject: str, detail: str) -> str:
    return json.dumps([at.isoformat(), who, action, subject, detail], ensure_ascii=False, separators=(",", ":"))


def entry_hash(prev_hash: str, at: dt.datetime, who: str, action: str, subject: str, detail: str) -> str:
    payload = prev_hash + "\n" + _canonical(at, who, action, subject, detail)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _detail(detail: Mapping[str, Any] | None) -> str:
    # ID numbers never enter the log, even where a caller passes one by mistake.
    return mask_ids(json.dumps(dict(detail or {}), ensure_ascii=False, sort_keys=True, default=str))


def _tail(s: Session) -> str:
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_KEY})
    last = s.scalar(select(AuditEntry.entry_hash).order_by(AuditEntry.id.desc()).limit(1))
    return last or GENESIS


def record_many(s: Session, entries: Iterable[tuple[str, str, Mapping[str, Any] | None]]) -> int:
    """Append (action, subject, detail) entries in order, in the caller's transaction. Returns how many."""
    rows = list(entries)
    if not rows:
        return 0
    prev = _tail(s)
    who = actor()
    # Microseconds dropped: what a database stores of a timestamp is what the hash covers.
    at = dt.datetime.now(dt.UTC).replace(microsecond=0)
    objects = []
    for action, subject, detail in rows:
        body = _detail(detail)
        h = entry_hash(prev, at, who, action, subject, body)
        objects.append(
            AuditEntry(at=at, actor=who, action=action, subject=subject, detail=body, prev_hash=prev, entry_hash=h)
        )
        prev = h
    s.add_all(objects)
    s.flush()
    return len(objects)


def record(s: Session, action: str, subject: str, detail: Mapping[str, Any] | None = None) -> None:
    """Append one entry in the caller's transaction."""
    record_many(s, [(action, subject, detail)])


def content_sha256(rows: Iterable[Any]) -> str:
    """A digest of what a decision decided (e.g. a part's claim lines), for its audit entry."""
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps(r, ensure_ascii=False, sort_keys=True, default=str).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


@dataclass(frozen=True)
class Problem:
    entry_id: int
    what: str


def verify(s: Session) -> tuple[int, list[Problem]]:
    """Walk the chain in order. Returns the number of entries and every problem found: an entry whose content no
    longer gives its hash (edited), or whose `prev_hash` is not the hash of the entry before it (an entry removed
    or inserted)."""
    problems: list[Problem] = []
    prev = GENESIS
    n = 0
    stmt = select(AuditEntry).order_by(AuditEntry.id).execution_options(yield_per=10_000)
    for e in s.scalars(stmt):
        n += 1
        at = e.at if e.at.tzinfo else e.at.replace(tzinfo=dt.UTC)
        if e.prev_hash != prev:
            problems.append(Problem(e.id, "the entry before it is missing or was changed (chain broken)"))
        if entry_hash(e.prev_hash, at.astimezone(dt.UTC), e.actor, e.action, e.subject, e.detail) != e.entry_hash:
            problems.append(Problem(e.id, "its content does not give its hash (edited)"))
        prev = e.entry_hash
    return n, problems
