"""Bulk writes of whole frames: PostgreSQL's COPY into a temporary table and one INSERT … ON CONFLICT from it;
SQLite's executemany on the raw connection, in the caller's transaction.

Both keep the natural-key semantics of `storage.db.upsert` (a row whose key exists is updated, or left alone),
so a rerun writes nothing twice, at a fraction of the cost of row-by-row ORM or Core statements.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import polars as pl
from sqlalchemy import Table
from sqlalchemy.orm import Session

from storage.models import Base

COPY_CHUNK_ROWS = 1_000_000
ANALYZE_AFTER_ROWS = 50_000
DIRECT_COPY_MIN_ROWS = 50_000


def bulk_upsert(
    session: Session,
    model: type[Base],
    frame: pl.DataFrame,
    keys: Sequence[str],
    update: bool = True,
    analyze: bool = True,
) -> int:
    """Insert the frame's rows (columns named as the table's); rows whose natural key exists are updated (or
    left alone with `update=False`). Returns the number of rows sent.

    `analyze` (PostgreSQL): refresh the table's statistics after a large write (`ANALYZE_AFTER_ROWS`), for a
    table that is read by the column's values next (care days after a load). Writers of many parts of one run
    (billing) leave it to autovacuum: the planner's row counts follow the table's size without it."""
    if frame.is_empty():
        return 0
    table: Table = model.__table__  # type: ignore[assignment]
    given = list(frame.columns)  # a conflict updates only these; defaults fill new rows alone
    for col in table.columns:  # the model's Python-side defaults, which raw statements do not apply
        default: Any = col.default
        if col.name not in frame.columns and default is not None and default.is_scalar:
            frame = frame.with_columns(pl.lit(default.arg).alias(col.name))
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return _pg_copy_upsert(session, table, frame, keys, update, given, analyze)
    return _sqlite_upsert(session, table, frame, keys, update, given)


def _conflict_clause(columns: list[str], keys: Sequence[str], update: bool, excluded: str) -> str:
    """`columns`: those a conflicting row updates."""
    rest = [c for c in columns if c not in keys]
    if update and rest:
        sets = ", ".join(f'"{c}" = {excluded}."{c}"' for c in rest)
        return f"ON CONFLICT ({', '.join(chr(34) + k + chr(34) for k in keys)}) DO UPDATE SET {sets}"
    return f"ON CONFLICT ({', '.join(chr(34) + k + chr(34) for k in keys)}) DO NOTHING"


def copy_frame_binary(cur: Any, target: str, frame: pl.DataFrame) -> None:
    """COPY a frame in PostgreSQL's binary format, encoded from its Arrow columns (pgpq): no text to parse on
    either side. The frame's types must be the columns' own (Int64 for bigint, Utf8 for text, Date for date)."""
    import pyarrow as pa
    from pgpq import ArrowToPostgresBinaryEncoder

    table = frame.to_arrow()
    plain = [
        pa.field(f.name, pa.string()) if pa.types.is_large_string(f.type) or pa.types.is_string_view(f.type) else f
        for f in table.schema
    ]
    table = table.cast(pa.schema(plain))
    encoder = ArrowToPostgresBinaryEncoder(table.schema)
    cols = ", ".join(f'"{c}"' for c in frame.columns)
    with cur.copy(f'COPY "{target}" ({cols}) FROM STDIN WITH (FORMAT binary)') as copy:
        copy.write(encoder.write_header())
        for batch in table.to_batches(max_chunksize=COPY_CHUNK_ROWS // 4):
            copy.write(encoder.write_batch(batch))
        copy.write(encoder.finish())


def copy_frame(cur: Any, target: str, frame: pl.DataFrame) -> None:
    cols = ", ".join(f'"{c}"' for c in frame.columns)
    for start in range(0, frame.height, COPY_CHUNK_ROWS):
        buf = io.BytesIO()
        frame.slice(start, COPY_CHUNK_ROWS).write_csv(buf, include_header=False, null_value="\\N")
        with cur.copy(f"COPY \"{target}\" ({cols}) FROM STDIN WITH (FORMAT csv, NULL '\\N')") as copy:
            copy.write(buf.getvalue())


def _pg_copy_upsert(
    session: Session,
    table: Table,
    frame: pl.DataFrame,
    keys: Sequence[str],
    update: bool,
    given: list[str],
    analyze: bool = True,
) -> int:
    columns = frame.columns
    cols = ", ".join(f'"{c}"' for c in columns)
    raw: Any = session.connection().connection.dbapi_connection
    staging = f"_stage_{table.name}"
    if frame.height >= DIRECT_COPY_MIN_ROWS and _direct_copy(raw, table, frame, analyze):
        return frame.height
    with raw.cursor() as cur:
        cur.execute(
            f'CREATE TEMP TABLE IF NOT EXISTS "{staging}" (LIKE "{table.name}" INCLUDING DEFAULTS) ON COMMIT DROP'
        )
        cur.execute(f'TRUNCATE "{staging}"')
        copy_frame(cur, staging, frame)
        cur.execute(
            f'INSERT INTO "{table.name}" ({cols}) SELECT {cols} FROM "{staging}" '
            + _conflict_clause(given, keys, update, "EXCLUDED")
        )
        cur.execute(f'TRUNCATE "{staging}"')
        if analyze and frame.height >= ANALYZE_AFTER_ROWS:
            # Fresh statistics, or the planner takes a table just filled with millions of rows for an empty one.
            cur.execute(f'ANALYZE "{table.name}"')
    return frame.height


def _direct_copy(raw: Any, table: Table, frame: pl.DataFrame, analyze: bool = True) -> bool:
    """A large frame of rows the table does not hold yet (the first load of a month's file, the first billing of
    a month) is copied straight into the table, once; if any key already exists the unique constraint refuses
    the copy, which is rolled back to its savepoint, and the caller takes the staging path that upserts."""
    import psycopg

    with raw.cursor() as cur:
        cur.execute("SAVEPOINT direct_copy")
        try:
            copy_frame(cur, table.name, frame)
        except psycopg.errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT direct_copy")
            return False
        cur.execute("RELEASE SAVEPOINT direct_copy")
        if analyze:
            cur.execute(f'ANALYZE "{table.name}"')
    return True


def _sqlite_upsert(
    session: Session, table: Table, frame: pl.DataFrame, keys: Sequence[str], update: bool, given: list[str]
) -> int:
    columns = frame.columns
    cols = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" for _ in columns)
    sql = f'INSERT INTO "{table.name}" ({cols}) VALUES ({marks}) ' + _conflict_clause(given, keys, update, "excluded")
    raw: Any = session.connection().connection.dbapi_connection
    dates = [c for c, t in frame.schema.items() if t == pl.Date]
    out = frame.with_columns([pl.col(c).dt.strftime("%Y-%m-%d") for c in dates]) if dates else frame
    cur = raw.cursor()
    for chunk in out.iter_slices(n_rows=200_000):
        cur.executemany(sql, chunk.iter_rows())
    cur.close()
    return frame.height
