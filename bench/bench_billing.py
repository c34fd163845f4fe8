"""Benchmark of monthly billing (Nanning rules) on a synthetic month, with an independent DuckDB reference.

    uv run python bench/bench_billing.py --n 10000 --backend sqlite
    uv run python bench/bench_billing.py --n 100000 --backend postgresql

For N beneficiaries (grades 3-5, two thirds in institutions billing every day, one third at home with a service item on
about nine days in ten; late starts, deaths, hospital stays and a few bad rows), it:
  1. writes the month's care days as a CSV and loads it through `ltc load care_days` (parse, validate, quarantine,
     bulk write), and, on PostgreSQL, times a raw COPY of the same file for comparison;
  2. runs the `bill_month` flow through Prefect (read, validate, compute, write, commit) and times it;
  3. times each stage again on its own, outside Prefect;
  4. computes the same bill with a DuckDB SQL implementation of 南府规〔2023〕26号 三(三)3-4 written independently
     of `rules/`, and checks that every claim line's amount matches to the fen;
and prints wall time, rows per second and peak RSS per stage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import select

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

PERIOD = "2026-03"
FIRST, LAST = dt.date(2026, 3, 1), dt.date(2026, 3, 31)
# The clause figures of 南府规〔2023〕26号 三(三)3(2), for the independent reference only.
REF_RATE_FEN = {5: 6600, 4: 6200, 3: 5700}
REF_HOME_QUOTA_FEN = 185000


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic(n: int, seed: int = 7) -> dict[str, pl.DataFrame]:
    """The registry and the month's care days for n beneficiaries, as frames."""
    ids = pl.int_range(0, n, eager=True)
    h = (ids * 2654435761 + seed) % 4294967296
    persons = (
        pl.DataFrame({"i": ids})
        .select(pl.format("P{}", pl.col("i").cast(pl.Utf8).str.zfill(8)).alias("person_id"))
        .with_columns(h=h)
        .with_columns(
            provider_id=pl.format("H{}", (pl.col("h") % max(n // 200, 2)).cast(pl.Utf8).str.zfill(5)),
            grade=(3 + pl.col("h") % 3).cast(pl.Int64),
            mode=pl.when(pl.col("h") % 3 == 0).then(pl.lit("home")).otherwise(pl.lit("institutional")),
            start=pl.lit(FIRST)
            + pl.duration(days=pl.when(pl.col("h") % 17 == 0).then(pl.col("h") % 20).otherwise(-60)),
            death=pl.when(pl.col("h") % 53 == 0)
            .then(pl.lit(FIRST) + pl.duration(days=pl.col("h") % 31))
            .otherwise(None)
            .cast(pl.Date),
        )
    )
    days = pl.DataFrame({"care_date": pl.date_range(FIRST, LAST, "1d", eager=True)})
    care = (
        persons.join(days, how="cross")
        .filter((pl.col("mode") == "institutional") | ((pl.col("h") + pl.col("care_date").dt.day()) % 10 < 9))
        .select(
            "person_id",
            "provider_id",
            pl.lit(PERIOD).alias("period"),
            pl.col("care_date").dt.strftime("%Y-%m-%d"),
            pl.col("mode").alias("care_mode"),
            pl.when(pl.col("mode") == "home").then(pl.lit("JJ01")).otherwise(pl.lit("")).alias("item_code"),
            pl.when(pl.col("mode") == "home")
            .then(((2000 + (pl.col("h") * 7 + pl.col("care_date").dt.day()) % 10000) / 100).round(2).cast(pl.Utf8))
            .otherwise(pl.lit("0.00"))
            .alias("amount"),
        )
    )
    bad = care.head(4).with_columns(
        pl.Series("person_id", ["P_UNKNOWN", care["person_id"][1], care["person_id"][2], care["person_id"][3]]),
        pl.Series("care_date", [care["care_date"][0], "2026-04-01", "2026-03-3x", care["care_date"][3]]),
        pl.Series("amount", ["0.00", "0.00", "0.00", "-5.00"]),
        pl.Series("item_code", ["", "", "", "JJ99"]),  # a key of its own, so that no good row is a duplicate
    )
    stays = persons.filter(pl.col("h") % 20 == 1).select(
        "person_id",
        (pl.lit(FIRST) + pl.duration(days=pl.col("h") % 25)).alias("admitted_on"),
        (pl.lit(FIRST) + pl.duration(days=pl.col("h") % 25 + 2 + pl.col("h") % 5)).alias("discharged_on"),
    )
    return {"persons": persons, "care": pl.concat([care, bad]), "stays": stays}


def load_registry(data: dict[str, pl.DataFrame]) -> None:
    """Persons, providers, applications, assessments and approved decisions, written in bulk."""
    from ltc import idvault
    from storage import models as m
    from storage.bulk import bulk_upsert
    from storage.db import session_scope

    p = data["persons"]
    with session_scope() as s:
        bulk_upsert(
            s,
            m.Person,
            idvault.seal(
                p.select(
                    "person_id",
                    pl.lit("测试").alias("name"),
                    pl.lit("45010319500101123X").alias("id_number"),
                    pl.lit("nanning").alias("jurisdiction"),
                    pl.lit("青秀区").alias("area"),
                    pl.lit("employee").alias("insurance_type"),
                    pl.lit(500000).alias("contribution_base_fen"),
                    pl.col("death").alias("death_date"),
                )
            ),
            ["person_id"],
        )
        provs = p.select("provider_id").unique().sort("provider_id")
        bulk_upsert(
            s,
            m.Provider,
            provs.with_columns(
                name=pl.format("机构{}", "provider_id"),
                jurisdiction=pl.lit("nanning"),
                kind=pl.lit("mixed"),
                contract_start=pl.lit(dt.date(2024, 1, 1)),
                status=pl.lit("active"),
                bank_account=pl.lit("622202000011112222"),
            ),
            ["provider_id"],
        )
        apps = p.select(
            pl.format("A{}", pl.col("person_id").str.slice(1)).alias("application_id"),
            "person_id",
            pl.lit(dt.date(2025, 11, 1)).alias("received_on"),
            pl.lit(dt.date(2025, 1, 1)).alias("disabled_since"),
            pl.col("mode").alias("care_mode"),
            pl.lit("decided").alias("status"),
        )
        bulk_upsert(s, m.Application, apps, ["application_id"])
        bulk_upsert(
            s,
            m.EligibilityDecision,
            p.select(
                pl.format("A{}", pl.col("person_id").str.slice(1)).alias("application_id"),
                pl.lit(1).alias("assessment_sequence"),
                "person_id",
                pl.lit("nanning").alias("jurisdiction"),
                pl.lit(dt.date(2026, 1, 1)).alias("decided_on"),
                pl.lit(True).alias("approved"),
                "grade",
                pl.col("start").alias("start_date"),
                pl.col("death").alias("end_date"),
                pl.lit("[]").alias("reasons"),
                pl.lit("[]").alias("rules"),
            ),
            ["application_id", "assessment_sequence"],
        )
        bulk_upsert(s, m.HospitalStay, data["stays"], ["person_id", "admitted_on"])


def duckdb_reference(inputs: dict[str, pl.DataFrame]) -> tuple[pl.DataFrame, float]:
    """The Nanning month in SQL, written from the clause text, not from rules/."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    for name in ("care", "entitlements", "persons", "stays"):
        con.register(name, inputs[name].to_arrow())
    values = ", ".join(f"({g}, {r})" for g, r in REF_RATE_FEN.items())
    con.execute(f"CREATE TABLE rates AS SELECT * FROM (VALUES {values}) t(grade, rate)")
    sql = f"""
    WITH days AS (
      SELECT person_id, provider_id, care_mode, care_date, sum(amount_fen) AS amount
      FROM care GROUP BY ALL
    ), st AS (
      SELECT d.*, e.grade, e.start_date, e.end_date, p.death_date,
        EXISTS (SELECT 1 FROM stays s WHERE s.person_id = d.person_id AND d.care_date > s.admitted_on
                AND (s.discharged_on IS NULL OR d.care_date <= s.discharged_on)) AS in_hospital
      FROM days d
      LEFT JOIN entitlements e ON e.person_id = d.person_id
      LEFT JOIN persons p ON p.person_id = d.person_id
    ), paid AS (
      SELECT *, (start_date IS NOT NULL AND care_date >= start_date
                 AND (end_date IS NULL OR care_date <= end_date)
                 AND (death_date IS NULL OR care_date <= death_date) AND NOT in_hospital) AS ok
      FROM st
    ), lines AS (
      SELECT person_id, provider_id, care_mode,
        sum(CASE WHEN ok AND care_mode = 'institutional' THEN r.rate
                 WHEN ok AND care_mode = 'home' THEN amount ELSE 0 END) AS gross
      FROM paid LEFT JOIN rates r USING (grade) GROUP BY ALL
    )
    SELECT person_id, provider_id, care_mode,
      CASE WHEN care_mode = 'home'
           THEN greatest(least(sum(gross) OVER w, {REF_HOME_QUOTA_FEN}) - (sum(gross) OVER w - gross), 0)
           ELSE gross END AS payable_fen
    FROM lines
    WINDOW w AS (PARTITION BY person_id, care_mode ORDER BY provider_id ROWS UNBOUNDED PRECEDING)
    """
    t = time.perf_counter()
    out = pl.from_arrow(con.sql(sql).to_arrow_table())
    assert isinstance(out, pl.DataFrame)
    return out.with_columns(pl.col("payable_fen").cast(pl.Int64)), time.perf_counter() - t


def _stage(name: str, seconds: float, rows: int, **extra: Any) -> dict[str, Any]:
    return {"stage": name, "seconds": round(seconds, 3), "rows": rows, "rss_mb": round(peak_rss_mb()), **extra}


def stage_setup(n: int, workdir: Path) -> list[dict[str, Any]]:
    from storage.db import upgrade

    upgrade()
    t = time.perf_counter()
    data = synthetic(n)
    load_registry(data)
    data["care"].write_csv(workdir / "care_days.csv")
    data["care"].head(-4).write_csv(workdir / "care_days_good.csv")  # the same file without its 4 bad rows
    (workdir / "rows").write_text(str(data["care"].height))
    return [_stage("setup (synthetic registry and care-day file)", time.perf_counter() - t, data["care"].height)]


def stage_load(workdir: Path, backend: str) -> list[dict[str, Any]]:
    from storage.db import session_scope
    from tasks.intake import load_file

    csv_path = workdir / "care_days.csv"
    rows = int((workdir / "rows").read_text())
    out = []
    if backend == "postgresql":
        # The same file (less its 4 bad rows, which COPY cannot skip) written by the database alone into a table
        # of care_day's columns, types and indexes, with the amount as the file gives it (yuan): no parsing,
        # checks or quarantine in Python.
        with session_scope() as s:
            raw: Any = s.connection().connection.dbapi_connection
            with raw.cursor() as cur:
                cur.execute("CREATE TABLE raw_copy (LIKE care_day INCLUDING ALL)")
                cur.execute("ALTER TABLE raw_copy DROP COLUMN amount_fen, ADD COLUMN amount numeric(12, 2)")
                cols = "person_id, provider_id, period, care_date, care_mode, item_code, amount"
                t = time.perf_counter()
                with (
                    (workdir / "care_days_good.csv").open("rb") as f,
                    cur.copy(f"COPY raw_copy ({cols}) FROM STDIN WITH (FORMAT csv, HEADER)") as cp,
                ):
                    while chunk := f.read(1 << 20):
                        cp.write(chunk)
                out.append(_stage("raw COPY into an equivalent table (reference)", time.perf_counter() - t, rows))
                cur.execute("DROP TABLE raw_copy")
    t = time.perf_counter()
    report = load_file("care_days", csv_path)
    out.append(_stage("load + validate care days (ltc load)", time.perf_counter() - t, rows))
    assert report.quarantined == 4, report.errors[:5]
    return out


def stage_bill() -> list[dict[str, Any]]:
    from prefect import flow

    from flows.bill_month import bill_month

    @flow
    def warm_up() -> None:
        """Start Prefect's server before the timed flow."""

    warm_up()
    t = time.perf_counter()
    summary = bill_month("nanning", PERIOD)
    wall = time.perf_counter() - t
    busy = summary["task_wall_seconds"]
    return [
        _stage("bill_month through Prefect (read..commit)", wall, summary["care_days"], parts=summary["parts"]),
        *(_stage(f"  {k} (sum over parts)", v, summary["care_days"]) for k, v in summary["task_seconds"].items()),
        _stage("  Prefect overhead (flow wall - task wall)", wall - busy, summary["care_days"]),
    ]


def stage_reference(workdir: Path) -> list[dict[str, Any]]:
    from flows.bill_month import persons_per_part
    from storage import models as m
    from storage.db import session_scope
    from tasks import records
    from tasks.billing import compute_claims, read_inputs

    with session_scope() as s:
        inputs = read_inputs(s, "nanning", PERIOD)
        parts = records.parts(s, "nanning", persons_per_part())
        cl = m.ClaimLine
        stored = records.frame(
            s,
            select(cl.person_id, cl.provider_id, cl.care_mode, cl.payable_fen).where(cl.period == PERIOD),
            {"person_id": pl.Utf8, "provider_id": pl.Utf8, "care_mode": pl.Utf8, "payable_fen": pl.Int64},
        )
    rows = inputs["care"].height
    reference, ref_seconds = duckdb_reference(inputs)
    out = [_stage("DuckDB reference compute (whole month)", ref_seconds, rows)]
    t = time.perf_counter()
    for lo, hi in parts:
        part = {k: (v if k == "providers" else v.filter(records_in(lo, hi))) for k, v in inputs.items()}
        compute_claims(part, "nanning", PERIOD)
    ours = time.perf_counter() - t
    out.append(_stage(f"our compute + validate, same frames ({len(parts)} parts)", ours, rows))
    diff = stored.join(reference, on=["person_id", "provider_id", "care_mode"], how="full", suffix="_ref").filter(
        pl.col("payable_fen").fill_null(-1) != pl.col("payable_fen_ref").fill_null(-1)
    )
    total = int(stored["payable_fen"].sum())
    print(f"claim lines {stored.height}, total {total / 100:,.2f} yuan, mismatches {diff.height}", file=sys.stderr)
    if diff.height:
        print(diff.head(10), file=sys.stderr)
        sys.exit(1)
    out.append(_stage("claim lines matching DuckDB to the fen", 0, stored.height, mismatches=diff.height))
    return out


def records_in(lo: str | None, hi: str | None) -> pl.Expr:
    cond = pl.lit(True)
    if lo is not None:
        cond = cond & (pl.col("person_id") >= lo)
    if hi is not None:
        cond = cond & (pl.col("person_id") < hi)
    return cond


def run(n: int, backend: str, workdir: Path) -> list[dict[str, Any]]:
    """One benchmark run, each stage in a process of its own so that its peak RSS is its own."""
    env = dict(os.environ, LTC_HOME=str(workdir))
    if backend == "postgresql":
        import psycopg

        name = f"ltc_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        env["LTC_DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    else:
        env["LTC_DATABASE_URL"] = f"sqlite:///{workdir / 'bench.db'}"
    os.environ["LTC_DATABASE_URL"] = env["LTC_DATABASE_URL"]
    results: list[dict[str, Any]] = []
    for stage in ("setup", "load", "bill", "reference"):
        cmd = [
            sys.executable,
            __file__,
            "--stage",
            stage,
            "--n",
            str(n),
            "--backend",
            backend,
            "--workdir",
            str(workdir),
        ]
        done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
        if done.returncode:
            raise SystemExit(f"stage {stage} failed ({done.returncode})")
        results.extend(json.loads(line) for line in done.stdout.splitlines() if line.startswith("{"))
    return results


def _drop_bench_database() -> None:
    url = os.environ.get("LTC_DATABASE_URL", "")
    if "/ltc_bench_" not in url:
        return
    import psycopg

    from storage.db import get_engine

    get_engine(url).dispose()
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000, help="beneficiaries")
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--stage", choices=["setup", "load", "bill", "reference"], help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage:
        workdir = Path(args.workdir)
        stages: dict[str, Any] = {
            "setup": lambda: stage_setup(args.n, workdir),
            "load": lambda: stage_load(workdir, args.backend),
            "bill": stage_bill,
            "reference": lambda: stage_reference(workdir),
        }
        for row in stages[args.stage]():
            print(json.dumps(row), flush=True)
        return
    with tempfile.TemporaryDirectory(dir=os.environ.get("LTC_BENCH_DIR")) as d:
        try:
            results = run(args.n, args.backend, Path(d))
        finally:
            _drop_bench_database()
    print(f"\nN = {args.n:,} beneficiaries on {args.backend}")
    print(f"{'stage':52} {'seconds':>9} {'rows/s':>12} {'peak RSS MB':>12}")
    for r in results:
        rate = r["rows"] / r["seconds"] if r["seconds"] else 0
        print(f"{r['stage']:52} {r['seconds']:9.2f} {rate:12,.0f} {r['rss_mb']:12.0f}")


if __name__ == "__main__":
    main()
