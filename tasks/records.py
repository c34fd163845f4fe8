"""Reading frames out of the record. Tasks call these; flows never see a session."""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import polars as pl
from sqlalchemy import URL, Engine, and_, event, exists, func, select, true
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import ClauseElement

from rules.engine import period_bounds
from rules.inputs import SCHEMAS
from storage import models as m

Part = tuple[str | None, str | None]
"""A range of person ids, lower bound included, upper bound excluded; None leaves that side open."""

WHOLE: Part = (None, None)


def frame(session: Session, stmt: ClauseElement, schema: dict[str, Any], committed: bool = False) -> pl.DataFrame:
    """The rows of a SELECT as a frame of the given schema, without building a Python object per row where the
    driver allows: PostgreSQL streams the result through `COPY (…) TO STDOUT` into polars' CSV reader; SQLite
    hands its tuples straight to polars.

    `committed=True` (PostgreSQL): the rows as committed when the statement starts, which is what a statement of
    the caller's transaction sees at READ COMMITTED unless the transaction wrote them itself; read over a
    connection of its own through ADBC (binary `COPY` straight into Arrow columns, no Python value per row):
    the one `arrow_reads` opened for the session, else one for this statement. For the large inputs of billing,
    never for rows the caller's transaction may have written."""
    conn = session.connection()
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    raw: Any = conn.connection.dbapi_connection
    names = list(schema)
    if conn.dialect.name == "postgresql" and committed:
        return _arrow_frame(session, conn.engine, sql, schema)
    if conn.dialect.name == "postgresql":
        buf = io.BytesIO()
        with raw.cursor() as cur, cur.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy:
            for chunk in copy:
                buf.write(chunk)
        if buf.tell() == 0:
            return pl.DataFrame(schema=schema)
        buf.seek(0)
        text = {c: (pl.Utf8 if t == pl.Boolean else t) for c, t in schema.items()}
        out = pl.read_csv(buf, has_header=False, new_columns=names, schema=text)
        return out.with_columns(pl.col(c) == "t" for c, t in schema.items() if t == pl.Boolean)
    cur = raw.cursor()
    try:
        rows = cur.execute(sql).fetchall()
    finally:
        cur.close()
    text = {c: (pl.Utf8 if t == pl.Date else pl.Int64 if t == pl.Boolean else t) for c, t in schema.items()}
    out = pl.DataFrame(rows, schema=text, orient="row")
    return out.with_columns(
        [pl.col(c).str.to_date("%Y-%m-%d") for c, t in schema.items() if t == pl.Date]
        + [pl.col(c).cast(pl.Boolean) for c, t in schema.items() if t == pl.Boolean]
    )


ADBC_CONNECTION = "ltc.adbc"
"""The key in `Session.info` of the ADBC connection opened by `arrow_reads`."""


def _adbc_uri(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


# How the planner should see these reads (on their own connection only). A part's read runs once over millions of
# rows: compiling it (JIT) costs half a second and saves nothing. The record is read from memory or SSD, where a
# page read at random costs little more than one in sequence (PostgreSQL's default random_page_cost of 4 is a
# spinning disk's): with it, the planner scans a whole month's partition rather than take a part's range of persons
# from the care-day key (3.5 s against 1.1 s for one part of 100,000 persons in a month of 30 million care days).
READ_SETTINGS = {"jit": "off", "random_page_cost": "1.1"}


def apply_read_settings(connection: Any) -> None:
    """`READ_SETTINGS` for the rest of a DB-API connection's session."""
    with connection.cursor() as cur:
        for name, value in READ_SETTINGS.items():
            cur.execute(f"SET {name} = {value}")


# Idle ADBC connections, per engine and process: opening one costs about 40 ms (the driver reads the server's type
# catalogue), more than a small part's whole read. Closed when the engine is disposed.
_IDLE_ADBC: weakref.WeakKeyDictionary[Engine, list[tuple[int, Any]]] = weakref.WeakKeyDictionary()
_IDLE_LOCK = threading.Lock()
IDLE_ADBC_PER_ENGINE = 4


def _idle_of(engine: Engine) -> list[tuple[int, Any]]:
    """The engine's idle connections, created (with the listener that closes them) on first use; under _IDLE_LOCK."""
    idle = _IDLE_ADBC.get(engine)
    if idle is None:
        idle = _IDLE_ADBC[engine] = []
        if not event.contains(engine, "engine_disposed", _close_idle):  # an engine disposed and used again
            event.listen(engine, "engine_disposed", _close_idle)
    return idle


def _close_idle(engine: Engine) -> None:
    with _IDLE_LOCK:
        idle = _IDLE_ADBC.pop(engine, [])
    for pid, adbc in idle:
        if pid == os.getpid():
            with contextlib.suppress(Exception):
                adbc.close()


@atexit.register
def _close_all_idle() -> None:
    """At exit, while the driver can still close them (a connection left to the garbage collector at
    interpreter shutdown fails in the driver's own finaliser)."""
    for engine in list(_IDLE_ADBC.keys()):
        _close_idle(engine)


def _alive(adbc: Any) -> bool:
    """Whether a pooled connection still answers (the server may have closed it since)."""
    try:
        with adbc.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchall()
    except Exception:
        with contextlib.suppress(Exception):
            adbc.close()
        return False
    return True


@contextlib.contextmanager
def _adbc_connect(engine: Engine) -> Iterator[Any]:
    """An autocommit ADBC connection for committed reads, with `READ_SETTINGS`: an idle one of this engine's that
    still answers, else a new one. Given back to the idle ones when the block ends normally (it is in autocommit:
    it holds no snapshot or lock); closed if the block raises."""
    from adbc_driver_postgresql import dbapi

    adbc = None
    while adbc is None:
        with _IDLE_LOCK:
            idle = _idle_of(engine)
            pid, candidate = idle.pop() if idle else (None, None)
        if candidate is None:
            adbc = dbapi.connect(_adbc_uri(engine.url), autocommit=True)
            apply_read_settings(adbc)
        elif pid == os.getpid() and _alive(candidate):
            adbc = candidate
    try:
        yield adbc
    except BaseException:
        with contextlib.suppress(Exception):
            adbc.close()
        raise
    with _IDLE_LOCK:
        idle = _idle_of(engine)
        if len(idle) < IDLE_ADBC_PER_ENGINE:
            idle.append((os.getpid(), adbc))
            adbc = None
    if adbc is not None:
        adbc.close()


@contextlib.contextmanager
def arrow_reads(session: Session) -> Iterator[None]:
    """Within the block, the session's `committed` reads share one ADBC connection (opening one costs tens of
    milliseconds; a part reads four frames), in autocommit, so that it holds no snapshot or lock between them.
    Nothing on SQLite."""
    conn = session.connection()
    if conn.dialect.name != "postgresql" or ADBC_CONNECTION in session.info:
        yield
        return
    with _adbc_connect(conn.engine) as adbc:
        session.info[ADBC_CONNECTION] = adbc
        try:
            yield
        finally:
            del session.info[ADBC_CONNECTION]


def _arrow_frame(session: Session, engine: Engine, sql: str, schema: dict[str, Any]) -> pl.DataFrame:
    """One SELECT read through ADBC's PostgreSQL driver into Arrow record batches, then polars, cast to the schema
    (integer columns come as the database's widths)."""
    shared = session.info.get(ADBC_CONNECTION)
    with contextlib.ExitStack() as stack:
        if shared is None:
            shared = stack.enter_context(_adbc_connect(engine))
        with shared.cursor() as cur:
            cur.execute(sql)
            # Batch by batch, each turned into polars columns and let go: the whole result is never held twice.
            batches = [_polars(batch) for batch in cur.fetch_record_batch()]
    if not batches:
        return pl.DataFrame(schema=schema)
    out = pl.concat(batches, rechunk=False)
    out.columns = list(schema)
    return out.cast(pl.Schema(schema))


def _polars(batch: Any) -> pl.DataFrame:
    out = pl.from_arrow(batch, rechunk=False)
    assert isinstance(out, pl.DataFrame)
    return out


def in_part(column: Any, part: Part) -> Any:
    lo, hi = part
    conds = ([column >= lo] if lo is not None else []) + ([column < hi] if hi is not None else [])
    return and_(true(), *conds)


def parts(session: Session, jurisdiction: str, persons_per_part: int) -> list[Part]:
    """The jurisdiction's persons cut into ranges of about `persons_per_part` ids each, by a window over the
    person table's key (one query, whatever the number of persons)."""
    numbered = (
        select(m.Person.person_id, func.row_number().over(order_by=m.Person.person_id).label("n"))
        .where(m.Person.jurisdiction == jurisdiction)
        .subquery()
    )
    size = max(persons_per_part, 1)
    stmt = select(numbered.c.person_id).where((numbered.c.n - 1) % size == 0, numbered.c.n > 1).order_by("person_id")
    bounds: list[str | None] = [None, *session.scalars(stmt).all(), None]
    return [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


def _select(model: type[m.Base], name: str) -> Any:
    """SELECT the columns of a formula input frame (rules.inputs.SCHEMAS[name]) from the model that holds them."""
    return select(*(getattr(model, c) for c in SCHEMAS[name]))


def persons(session: Session, jurisdiction: str, part: Part = WHOLE) -> pl.DataFrame:
    stmt = _select(m.Person, "persons").where(m.Person.jurisdiction == jurisdiction, in_part(m.Person.person_id, part))
    return frame(session, stmt, SCHEMAS["persons"], committed=True)


def providers(session: Session, jurisdiction: str) -> pl.DataFrame:
    stmt = _select(m.Provider, "providers").where(m.Provider.jurisdiction == jurisdiction)
    return frame(session, stmt, SCHEMAS["providers"])


def contributions(session: Session, jurisdiction: str, part: Part = WHOLE) -> pl.DataFrame:
    stmt = (
        _select(m.Contribution, "contributions")
        .join(m.Person, m.Person.person_id == m.Contribution.person_id)
        .where(
            m.Person.jurisdiction == jurisdiction,
            in_part(m.Contribution.person_id, part),
            in_part(m.Person.person_id, part),
        )
    )
    return frame(session, stmt, SCHEMAS["contributions"])


def year_to_date(session: Session, jurisdiction: str, period: str, part: Part = WHOLE) -> pl.DataFrame:
    """What the fund has already been billed for each person and care mode earlier in the period's year."""
    cl = m.ClaimLine
    stmt = (
        select(cl.person_id, cl.care_mode, func.sum(cl.payable_fen))
        .where(
            cl.jurisdiction == jurisdiction,
            cl.period >= period[:4] + "-01",
            cl.period < period,
            in_part(cl.person_id, part),
        )
        .group_by(cl.person_id, cl.care_mode)
    )
    return frame(session, stmt, SCHEMAS["ytd"])


def care_days(session: Session, jurisdiction: str, period: str, part: Part = WHOLE) -> pl.DataFrame:
    stmt = (
        _select(m.CareDay, "care")
        .join(m.Person, m.Person.person_id == m.CareDay.person_id)
        .where(
            m.CareDay.period == period,
            m.Person.jurisdiction == jurisdiction,
            in_part(m.CareDay.person_id, part),
            in_part(m.Person.person_id, part),
        )
    )
    return frame(session, stmt, SCHEMAS["care"], committed=True)


def entitlements(session: Session, jurisdiction: str, part: Part = WHOLE) -> pl.DataFrame:
    stmt = _select(m.EligibilityDecision, "entitlements").where(
        m.EligibilityDecision.jurisdiction == jurisdiction,
        m.EligibilityDecision.approved.is_(True),
        in_part(m.EligibilityDecision.person_id, part),
    )
    return frame(session, stmt, SCHEMAS["entitlements"], committed=True)


def hospital_stays(session: Session, jurisdiction: str, period: str, part: Part = WHOLE) -> pl.DataFrame:
    first, last = period_bounds(period)
    stmt = (
        _select(m.HospitalStay, "stays")
        .join(m.Person, m.Person.person_id == m.HospitalStay.person_id)
        .where(
            m.Person.jurisdiction == jurisdiction,
            in_part(m.HospitalStay.person_id, part),
            in_part(m.Person.person_id, part),
            m.HospitalStay.admitted_on <= last,
            (m.HospitalStay.discharged_on.is_(None)) | (m.HospitalStay.discharged_on >= first),
        )
    )
    return frame(session, stmt, SCHEMAS["stays"], committed=True)


def assessed_applications(session: Session, jurisdiction: str) -> pl.DataFrame:
    """Assessed applications without a decision, with what eligibility needs to know of the person."""
    later = aliased(m.Assessment)
    latest_done = (
        select(func.max(later.sequence))
        .where(later.application_id == m.Application.application_id, later.status == "done")
        .correlate(m.Application)
        .scalar_subquery()
    )
    already = exists().where(
        and_(
            m.EligibilityDecision.person_id == m.Application.person_id,
            m.EligibilityDecision.approved.is_(True),
        )
    )
    stmt = (
        _application_rows(already)
        .join(
            m.Assessment,
            and_(
                m.Assessment.application_id == m.Application.application_id,
                m.Assessment.status == "done",
                m.Assessment.sequence == latest_done,
            ),
        )
        .where(m.Application.status == "assessed", m.Person.jurisdiction == jurisdiction)
        .order_by(m.Application.application_id)
    )
    return frame(session, stmt, {**SCHEMAS["apps"], "assessment_sequence": pl.Int64})


def decided_applications(session: Session, jurisdiction: str) -> pl.DataFrame:
    """Every decided application as eligibility saw it, for deciding it again (a what-if): the assessment the
    decision rests on, and whether the person was already a beneficiary by another application decided before."""
    dec, other = m.EligibilityDecision, aliased(m.EligibilityDecision)
    already = exists().where(
        and_(
            other.person_id == dec.person_id,
            other.application_id != dec.application_id,
            other.approved.is_(True),
            other.decided_on <= dec.decided_on,
        )
    )
    stmt = (
        _application_rows(already)
        .join(dec, dec.application_id == m.Application.application_id)
        .join(
            m.Assessment,
            and_(m.Assessment.application_id == dec.application_id, m.Assessment.sequence == dec.assessment_sequence),
        )
        .where(dec.jurisdiction == jurisdiction)
        .order_by(dec.application_id, dec.assessment_sequence)
    )
    return frame(session, stmt, {**SCHEMAS["apps"], "assessment_sequence": pl.Int64})


def _application_rows(already: Any) -> Any:
    """The columns of `SCHEMAS["apps"]` (and the assessment's sequence) for applications joined to their person and
    to one assessment: full contribution months before the month of application, and `already` as said."""
    received_month = func.substr(func.cast(m.Application.received_on, m.Contribution.period.type), 1, 7)
    full_months = (
        select(func.count())
        .where(
            m.Contribution.person_id == m.Application.person_id,
            m.Contribution.paid_fen >= m.Contribution.due_fen,
            m.Contribution.due_fen > 0,
            m.Contribution.period < received_month,
        )
        .correlate(m.Application)
        .scalar_subquery()
    )
    return select(
        m.Application.application_id,
        m.Application.person_id,
        m.Application.received_on,
        m.Application.disabled_since,
        m.Application.care_mode,
        m.Assessment.grade,
        m.Assessment.published_on,
        m.Person.insurance_type,
        m.Person.birth_date,
        m.Person.student,
        m.Person.retired_cadre,
        m.Person.disabled_veteran_grade,
        m.Person.work_injury_care_allowance,
        m.Person.death_date,
        full_months.label("full_contribution_months"),
        already.label("already_beneficiary"),
        m.Assessment.sequence,
    ).join(m.Person, m.Person.person_id == m.Application.person_id)
