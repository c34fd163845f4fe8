"""Care days in a partition a month (PostgreSQL): a month's first file is written into a partition created for it,
whose indexes are built once, after the rows are in, then attached to `care_day`.

Building an index over rows already written is several times cheaper than keeping it up to date row by row, and
a month's care days all arrive for billing in one or a few files. Later files of a month that has its partition
go through the usual upsert (`storage.bulk`). All of it is in the caller's transaction: a load that fails leaves
no partition behind. Months are created one load at a time (an advisory lock a period), so two loads of the same
new month cannot both create it. SQLite has one table and takes the usual path.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import polars as pl
from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import Session

from storage.bulk import bulk_upsert, copy_frame_binary
from storage.models import CareDay

PERIOD = re.compile(r"(\d{4})-(\d{2})")
# The natural key, as the model declares it (the period in it).
KEY = next(tuple(c.columns.keys()) for c in CareDay.__table_args__ if isinstance(c, UniqueConstraint))
# Memory for building a month's indexes (PostgreSQL's maintenance_work_mem, for this transaction only): with the
# default 64 MB the sort of a 3-million-row month spills to disk.
INDEX_BUILD_MEMORY = "1GB"
LOCK_SPACE = 0x0CA2E  # advisory locks of care-day partitions: (LOCK_SPACE, yyyymm)


PARTITION = re.compile(r"care_day_(p\d{4}_\d{2}|default)")


def is_care_day_partition(table: str) -> bool:
    return PARTITION.fullmatch(table) is not None


def partition_name(period: str) -> str:
    """`care_day_p2026_03` for 2026-03."""
    m = PERIOD.fullmatch(period)
    if not m:
        raise ValueError(f"period {period!r} is not YYYY-MM")
    return f"care_day_p{m[1]}_{m[2]}"


class CareDayWriter:
    """Writes a load's care-day rows, batch after batch, in the caller's transaction: each month's rows into a
    partition created for it when the month has none yet (its indexes built and the partition attached at
    `finish`, once, whatever the number of batches); the rest upserted on the natural key. SQLite: upserts.

    A new partition's rows are copied (binary COPY) by a thread of the writer's while the caller reads and checks
    the next batch: the database parses and stores one batch as Python parses the next. The caller calls `wait`
    before it uses the session itself again."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.postgresql = session.get_bind().dialect.name == "postgresql"
        self.new: dict[str, str] = {}  # period -> partition created by this load, not attached yet
        self._copying: Future[None] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="care-day-copy")

    def wait(self) -> None:
        """Until the copy under way is done (its error, if any, raised here)."""
        copying, self._copying = self._copying, None
        if copying is not None:
            copying.result()

    def write(self, rows: pl.DataFrame) -> None:
        self.wait()
        if rows.is_empty():
            return
        if not self.postgresql:
            bulk_upsert(self.session, CareDay, rows, KEY)
            return
        raw: Any = self.session.connection().connection.dbapi_connection
        fresh: list[tuple[str, pl.DataFrame]] = []
        for (period,), month in rows.partition_by("period", as_dict=True).items():
            period = str(period)
            if period not in self.new and self._taken(raw, period):
                bulk_upsert(self.session, CareDay, month, KEY)
                continue
            if period not in self.new:
                self.new[period] = partition_name(period)
                with raw.cursor() as cur:
                    cur.execute(f'CREATE TABLE "{self.new[period]}" (LIKE care_day INCLUDING DEFAULTS)')
            fresh.append((self.new[period], month))
        if fresh:
            self._copying = self._pool.submit(_copy_months, raw, fresh)

    def _taken(self, raw: Any, period: str) -> bool:
        """Whether the month has its partition, or rows in the default one (kept there); taken under a lock of the
        month, held to the end of the transaction, so that one load at a time creates a month."""
        with raw.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_SPACE, int(period.replace("-", ""))))
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (partition_name(period),))
            if cur.fetchone()[0]:
                return True
            cur.execute("SELECT EXISTS (SELECT 1 FROM care_day_default WHERE period = %s)", (period,))
            return bool(cur.fetchone()[0])

    def finish(self) -> dict[str, float]:
        """Build each new partition's keys and indexes over its rows and attach it. Returns the seconds spent, per
        month."""
        self.wait()
        self._pool.shutdown()
        raw: Any = self.session.connection().connection.dbapi_connection if self.new else None
        built = {}
        for period, name in self.new.items():
            t = time.perf_counter()
            _index_and_attach(raw, name, period)
            built[period] = time.perf_counter() - t
        self.new = {}
        return built

    def abandon(self) -> None:
        """After an error elsewhere: let the copy under way end (its own error dropped), before the caller's
        transaction is rolled back."""
        with contextlib.suppress(Exception):
            self.wait()
        self._pool.shutdown()


def _copy_months(raw: Any, months: list[tuple[str, pl.DataFrame]]) -> None:
    with raw.cursor() as cur:
        for name, month in months:
            copy_frame_binary(cur, name, month)


@contextlib.contextmanager
def care_day_writer(session: Session) -> Iterator[CareDayWriter]:
    """A `CareDayWriter` whose new partitions are indexed and attached when the block ends without an error."""
    writer = CareDayWriter(session)
    try:
        yield writer
    except BaseException:
        writer.abandon()
        raise
    writer.finish()


def _index_and_attach(raw: Any, name: str, period: str) -> None:
    """The check on the period lets the attach skip the scan that would prove every row belongs."""
    with raw.cursor() as cur:
        cur.execute(f'ALTER TABLE "{name}" ADD CONSTRAINT "{name}_period" CHECK (period = \'{period}\')')
        cur.execute(f'ALTER TABLE "{name}" ADD CONSTRAINT "{name}_pkey" PRIMARY KEY (id, period)')
        cur.execute(f'CREATE UNIQUE INDEX "{name}_key" ON "{name}" ({", ".join(KEY)})')
        cur.execute(f'CREATE INDEX "{name}_period_idx" ON "{name}" (period)')
        cur.execute(f"ALTER TABLE care_day ATTACH PARTITION \"{name}\" FOR VALUES IN ('{period}')")
        cur.execute(f'ANALYZE "{name}"')
