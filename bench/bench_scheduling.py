"""Benchmark of assessment scheduling on a synthetic Nanning population.

    uv run python bench/bench_scheduling.py                       # 20,000 applications on SQLite
    uv run python bench/bench_scheduling.py --backend postgresql  # in a database of its own, dropped afterwards

It writes the demo's registry files (ltc/demo.py) for N insured persons who all apply in the same three weeks,
with enough agencies (six assessors each) to place them, loads them, and runs the scheduling steps exactly as
the `schedule-assessments` flow does (the same task functions, without Prefect's bookkeeping). It prints the
seconds of planning (reading the waiting applications and the agencies, choosing each visit), booking (visits,
slot and assessor bookings and notices, in the record) and writing the agencies' schedules (CSV and iCalendar,
and the check of visits outside working hours), then runs the scheduling again, which must book nothing.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PACK = "nanning"


def _agencies_with_capacity(path: Path, capacity: int) -> None:
    """The demo's agencies, each with the given visits per day."""
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({**r, "capacity_per_day": capacity})


def _setup(folder: Path, n: int, agencies: int, capacity: int, seed: int) -> None:
    from ltc.demo import PROFILES, DemoSize, registry_files
    from storage.db import upgrade
    from tasks.intake import load_file

    upgrade()
    size = DemoSize(insured=n, applicants=n, providers=20, agencies=agencies)
    files = registry_files(folder, PACK, PROFILES[PACK].period, size, seed)
    _agencies_with_capacity(files["agencies"], capacity)
    for kind in ("persons", "providers", "agencies", "assessors", "applications"):
        report = load_file(kind, files[kind])
        if not report.clean:
            raise SystemExit(f"{kind}: {report.quarantined} row(s) quarantined")


def _schedule() -> dict[str, float | int]:
    """One scheduling run, step by step as flows/schedule_assessments.py calls them."""
    from flows.naming import today
    from tasks import scheduling as t

    t0 = time.perf_counter()
    apps = t.waiting_applications.fn(PACK)
    resources = t.scheduling_resources.fn(PACK)
    t.capacity_warnings(resources, PACK, today())
    plan = t.plan_slots.fn(apps, resources, PACK)
    t1 = time.perf_counter()
    booked = t.book_slots.fn(plan)
    t2 = time.perf_counter()
    files = t.write_agency_schedules.fn(PACK)
    t.visits_outside_hours.fn(PACK)
    t3 = time.perf_counter()
    return {
        "waiting": apps.height,
        "booked": booked["booked"],
        "flagged": booked["flagged"],
        "files": len(files),
        "planning": t1 - t0,
        "booking": t2 - t1,
        "writing": t3 - t2,
        "total": t3 - t0,
    }


def _report(label: str, r: dict[str, float | int]) -> None:
    print(
        f"{label}: {r['waiting']} waiting, {r['booked']} booked, {r['flagged']} flagged, {r['files']} files | "
        f"planning {r['planning']:.2f} s, booking {r['booking']:.2f} s, writing schedules {r['writing']:.2f} s, "
        f"total {r['total']:.2f} s",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="applications (one per insured person)")
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--agencies", type=int, default=80, help="assessment agencies, six assessors each")
    ap.add_argument("--capacity", type=int, default=15, help="visits per agency and working day")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    pg_name = None
    with tempfile.TemporaryDirectory(dir=os.environ.get("LTC_BENCH_DIR")) as d:
        home = Path(d)
        os.environ["LTC_HOME"] = str(home)
        if args.backend == "postgresql":
            import psycopg

            pg_name = f"ltc_bench_sched_{uuid.uuid4().hex[:10]}"
            with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
                c.execute(f'CREATE DATABASE "{pg_name}"')
            os.environ["LTC_DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_name}"
        else:
            os.environ["LTC_DATABASE_URL"] = f"sqlite:///{home / 'bench.db'}"
        try:
            t = time.perf_counter()
            _setup(home / "inbound", args.n, args.agencies, args.capacity, args.seed)
            print(
                f"setup: {args.n} applications, {args.agencies} agencies x {args.capacity} visits a day, "
                f"{args.backend}: {time.perf_counter() - t:.1f} s",
                flush=True,
            )
            first = _schedule()
            _report("first run", first)
            again = _schedule()
            _report("second run", again)
            if again["booked"]:
                raise SystemExit(f"the second run booked {again['booked']} visits; it must book none")
        finally:
            if pg_name:
                from storage.db import get_engine

                get_engine().dispose()
                import psycopg

                with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
                    c.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
