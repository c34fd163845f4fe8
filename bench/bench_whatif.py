"""Benchmark of the what-if replay against billing the same months (Nanning rules), on a synthetic year.

    uv run --locked python bench/bench_whatif.py --n 100000 --backend postgresql
    uv run --locked python bench/bench_whatif.py --n 5000 --backend sqlite

For N beneficiaries (the registry of `bench_billing.py`: grades 3-5, two thirds in institutions, one third at home,
late starts, deaths, hospital stays, regradings, providers not designated for part of the year), it:
  1. loads twelve months of care days, 2026-01 to 2026-12, through `ltc load care_days` (untimed here: intake has its
     own benchmark), then vacuums and analyses the tables, as autovacuum would before billing;
  2. bills each month through the `bill_month` flow, one after another, and times the twelve runs;
  3. runs the `whatif` flow over the same twelve months with a variant that changes nothing, and checks that the
     replay under the pack in force gives every billed line as billed and the variant differs in nothing;
  4. runs the `whatif` flow with Nanning's grade-4 institutional rate at 65 yuan a day from 2026-07-01 instead of 62 (a
     variant of 南府规〔2023〕26号 三(三)3(2); grade 4 is a third of the synthetic beneficiaries, all in
     institutions), and checks that only grade-4 institutional lines of July to December change;
  5. prints the seconds of each, the ratio of each replay to the twelve months' billing (target: at most 3×) and the
     peak RSS of the process.

Each replay reads the record and writes its scenario (Parquet, CSV and the HTML report) under the work folder; the
record is not changed (the row counts of every table are compared before and after).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_billing as bb

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

MONTHS = [f"2026-{m:02d}" for m in range(1, 13)]
TARGET = 3.0  # a year's replay / billing the year's twelve months
VARIANT_FROM = "2026-07-01"


def month_care(persons: pl.DataFrame, period: str) -> pl.DataFrame:
    """A month's care days, as `bench_billing.synthetic` writes March's: institutional care every day, home care
    items on about nine days in ten."""
    year, month = int(period[:4]), int(period[5:])
    first = dt.date(year, month, 1)
    last = dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)
    days = pl.DataFrame({"care_date": pl.date_range(first, last, "1d", eager=True)})
    h, day, home = pl.col("h"), pl.col("care_date").dt.day(), pl.col("mode") == "home"
    return (
        persons.join(days, how="cross")
        .filter(~home | ((h + day + month) % 10 < 9))
        .select(
            "person_id",
            "provider_id",
            pl.lit(period).alias("period"),
            pl.col("care_date").dt.strftime("%Y-%m-%d"),
            pl.col("mode").alias("care_mode"),
            pl.when(home).then(pl.lit("JJ01")).otherwise(pl.lit("")).alias("item_code"),
            pl.when(home)
            .then(((2000 + (h * 7 + day) % 10000) / 100).round(2).cast(pl.Utf8))
            .otherwise(pl.lit("0.00"))
            .alias("amount"),
        )
    )


def setup(n: int, workdir: Path, backend: str) -> int:
    from storage.db import upgrade
    from tasks.intake import load_file

    upgrade()
    data = bb.synthetic(n)
    bb.load_registry(data)
    rows = 0
    for period in MONTHS:
        path = workdir / f"care-{period}.csv"
        care = month_care(data["persons"], period)
        care.write_csv(path)
        report = load_file("care_days", path)
        assert report.quarantined == 0, report.errors[:3]
        rows += care.height
        path.unlink()
        print(f"[{time.strftime('%H:%M:%S')}] loaded {period}: {care.height:,} care days", file=sys.stderr)
    if backend == "postgresql":
        import psycopg

        with psycopg.connect(bb.pg_uri(), autocommit=True) as c:
            c.execute("VACUUM (ANALYZE) care_day, person, eligibility_decision, hospital_stay, provider")
    return rows


def counts() -> dict[str, int]:
    from sqlalchemy import inspect, text

    from storage.db import session_scope

    with session_scope() as s:
        conn = s.connection()
        names = sorted(inspect(conn).get_table_names())
        return {t: int(conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar() or 0) for t in names}


def variant(workdir: Path, name: str, parameters: dict[str, Any]) -> Path:
    import yaml

    path = workdir / f"{name}.yaml"
    data = {
        "jurisdiction": bb.JURISDICTION,
        "title": name,
        "description": f"benchmark: {name}",
        "parameters": parameters,
    }
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000, help="beneficiaries")
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("LTC_BENCH_DIR")) as d:
        workdir = Path(d)
        url = bb._database(args.backend, workdir)
        os.environ.update(LTC_HOME=str(workdir), LTC_DATABASE_URL=url)
        try:
            figures = run(args.n, args.backend, workdir)
        finally:
            bb._drop_database(url)
    print(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))


def run(n: int, backend: str, workdir: Path) -> dict[str, Any]:
    from prefect import flow

    from flows.bill_month import bill_month
    from flows.runners import local_run_settings
    from flows.whatif import whatif

    t = time.perf_counter()
    rows = setup(n, workdir, backend)
    loaded = time.perf_counter() - t
    with local_run_settings():

        @flow
        def warm_up() -> None:
            """Start Prefect's server before the timed flows."""

        warm_up()
        t = time.perf_counter()
        billed = [bill_month(bb.JURISDICTION, period) for period in MONTHS]
        bill_s = time.perf_counter() - t
        print(f"[{time.strftime('%H:%M:%S')}] billed 12 months in {bill_s:.1f} s", file=sys.stderr)
        before = counts()
        t = time.perf_counter()
        same = whatif(bb.JURISDICTION, str(variant(workdir, "no-change", {})), MONTHS[0], MONTHS[-1], 10)
        same_s = time.perf_counter() - t
        print(f"[{time.strftime('%H:%M:%S')}] no-change replay in {same_s:.1f} s", file=sys.stderr)
        rate = {
            "billing.institutional_daily_rate.grade_4": {
                "values": {
                    VARIANT_FROM: {"value": 65, "reference": "benchmark variant of 三(三)3(2)", "source": "variant"}
                }
            }
        }
        t = time.perf_counter()
        raised = whatif(bb.JURISDICTION, str(variant(workdir, "grade-4-65", rate)), MONTHS[0], MONTHS[-1], 10)
        raised_s = time.perf_counter() - t
        after = counts()
    assert after == before, "the record changed"
    record_fen = sum(b["payable_fen"] for b in billed)
    assert same["months_billed_on_record"] == 12 and same["record_fen"] == record_fen, same
    assert same["lines_differing_from_record"] == 0 and same["diff_fen"] == 0 and same["lines_changed"] == 0, same
    lines = pl.read_parquet(Path(raised["scenario"]) / "lines.parquet")
    assert lines.height == raised["lines_changed"] > 0
    assert lines.filter(
        (pl.col("care_mode") != "institutional")
        | (pl.col("period") < VARIANT_FROM[:7])
        | (pl.col("variant_grade") != 4)
    ).is_empty(), "a line that the variant does not touch changed"
    return {
        "n": n,
        "backend": backend,
        "care_days": rows,
        "load_seconds_untimed_stage": round(loaded, 1),
        "bill_12_months_seconds": round(bill_s, 2),
        "bill_per_month_seconds": [round(b["task_wall_seconds"], 2) for b in billed],
        "replay_no_change_seconds": round(same_s, 2),
        "replay_grade_4_seconds": round(raised_s, 2),
        "ratio_no_change": round(same_s / bill_s, 2),
        "ratio_grade_4": round(raised_s / bill_s, 2),
        "target": TARGET,
        "record_fen": record_fen,
        "lines_differing_from_record": same["lines_differing_from_record"],
        "grade_4_lines_changed": raised["lines_changed"],
        "grade_4_diff_fen": raised["diff_fen"],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "loadavg": round(os.getloadavg()[0], 2),
    }


if __name__ == "__main__":
    main()
