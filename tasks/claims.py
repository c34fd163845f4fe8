"""Work claims: one run at a time does a unit of work; a second run at the same time waits for it and does not
do it again.

`claim(s, kind, key, since)` is called at the start of the transaction that does the work. On PostgreSQL it locks
the work's row with `SELECT … FOR UPDATE SKIP LOCKED`; if another transaction holds it, it waits for that
transaction to end and returns False (the other run has just done the work). On SQLite the transaction already
holds the database's write lock from its first statement (`BEGIN IMMEDIATE`), so a second run waits at its
start. Either way, work that another process finished after `since` (the calling run's start) is not done again.
A run killed mid-work loses its lock with its connection and its transaction is rolled back: nothing waits for a
lease to run out, and the next run does the work.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage.db import upsert
from storage.models import WorkClaim


def holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def ensure(s: Session, kind: str, keys: Iterable[str]) -> None:
    """Create the claim rows of a run's units of work (in a transaction of their own, before the work starts)."""
    upsert(s, WorkClaim, [{"kind": kind, "work_key": k} for k in keys], ["kind", "work_key"], update=False)


def claim(s: Session, kind: str, key: str, since: dt.datetime) -> bool:
    """Take the unit of work in the caller's transaction: True, or False if another run did it after `since`
    (waiting for it to finish if it is at it now)."""
    stmt = select(WorkClaim.id).where(WorkClaim.kind == kind, WorkClaim.work_key == key)
    if s.scalar(stmt) is None:  # work planned without ensure(): its row is made here
        ensure(s, kind, [key])
    if s.get_bind().dialect.name == "postgresql" and s.scalar(stmt.with_for_update(skip_locked=True)) is None:
        s.scalar(stmt.with_for_update())  # wait for the other run's transaction to end
        return False
    row = s.execute(select(WorkClaim.holder, WorkClaim.finished_at).where(WorkClaim.id == s.scalar(stmt))).one()
    if row.holder not in (None, holder()) and row.finished_at is not None:
        finished = row.finished_at if row.finished_at.tzinfo else row.finished_at.replace(tzinfo=dt.UTC)
        if finished >= since:
            return False
    return True


def finish(s: Session, kind: str, key: str) -> None:
    """Record, at the end of the work's transaction, that this process did it now."""
    s.execute(
        update(WorkClaim)
        .where(WorkClaim.kind == kind, WorkClaim.work_key == key)
        .values(holder=holder(), finished_at=dt.datetime.now(dt.UTC))
    )
